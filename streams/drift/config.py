"""Tuning of the drift app: :class:`DriftConfig` (window length and what derives from it).

Environment (read by :meth:`DriftConfig.from_settings`; names in :data:`ENV`):

=====================================  =========  ==============================================
variable                               default    meaning
=====================================  =========  ==============================================
``CONVEYOR_DRIFT_WINDOW_SECONDS``      ``60``     tumbling window length (whole seconds)
``CONVEYOR_DRIFT_ALPHA``               ``0.0027`` significance level of every test
``CONVEYOR_DRIFT_REFERENCE_WINDOWS``   ``1``      windows learned as the reference
``CONVEYOR_DRIFT_MIN_SAMPLES``         ``30``     fewer records in a window: reported, no alarm
``CONVEYOR_DRIFT_WINDOW_SAMPLE``       ``200``    values kept per window and signal
``CONVEYOR_DRIFT_STORE_REFERENCE``     ``1``      ``0``: keep the reference in memory only
=====================================  =========  ==============================================
"""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any, Optional

from conveyor.streams.config import env
from conveyor.streams.config.settings import Settings
from conveyor.streams.drift import stats, twosample
from conveyor.streams.drift.aggregate import REFERENCE_SAMPLE, WINDOW_SAMPLE
from conveyor.streams.drift.monitor import DriftMonitor

PROCESSOR = "drift"
"""Processor name: metrics label and group id suffix (``<namespace>.drift``)."""

ENV = {
    "alpha": env.DRIFT_ALPHA,
    "reference_windows": env.DRIFT_REFERENCE_WINDOWS,
    "min_samples": env.DRIFT_MIN_SAMPLES,
    "window_sample": env.DRIFT_WINDOW_SAMPLE,
    "store_reference": env.DRIFT_STORE_REFERENCE,
}
"""Environment variables of the drift tuning (names from :mod:`conveyor.streams.config.env` once defined there)."""


@dataclasses.dataclass(frozen=True)
class DriftConfig:
    """Tuning of the drift app; defaults derive from ``window_seconds``.

    Attributes:
        window_seconds: tumbling window length; faust windows need whole seconds (>= 1).
        reference_windows: windows merged into each signal's learned reference.
        allowed_lateness_seconds: a window closes this long after the watermark passed
            its end (default ``min(10, window/2)``).
        idle_seconds: a source partition with no record for this long no longer holds
            the watermark back (default one window).
        tick_seconds: timer interval (default ``min(1, window/4)``).
        expires_seconds: faust drops table windows this long after they ended, by
            wall clock (default ``max(10 windows, 300 s)``); windows replayed from
            further back than this are not reported.
        store_reference: keep the reference in ``<ns>.drift-reference`` (load it at start,
            follow ``conveyor drift reference`` commands).
        alpha, min_samples, window_sample, reference_sample, mmd_permutations,
        chi2_permutations: see :class:`conveyor.streams.drift.DriftMonitor`.
    """

    window_seconds: int = 60
    reference_windows: int = 1
    allowed_lateness_seconds: Optional[float] = None
    idle_seconds: Optional[float] = None
    tick_seconds: Optional[float] = None
    expires_seconds: Optional[float] = None
    store_reference: bool = True
    alpha: float = stats.ALPHA
    min_samples: int = 30
    window_sample: int = WINDOW_SAMPLE
    reference_sample: int = REFERENCE_SAMPLE
    mmd_permutations: int = twosample.MMD_PERMUTATIONS
    chi2_permutations: int = stats.CHI2_PERMUTATIONS

    def __post_init__(self) -> None:
        if int(self.window_seconds) != self.window_seconds or self.window_seconds < 1:
            raise ValueError(f"drift window must be a whole number of seconds >= 1 "
                             f"(faust tumbling windows), got {self.window_seconds}")
        self.monitor()  # validates the statistical parameters

    @classmethod
    def from_settings(cls, settings: Settings, environ: Optional[Mapping[str, str]] = None,
                      **overrides: Any) -> DriftConfig:
        """Config with ``window_seconds`` from ``CONVEYOR_DRIFT_WINDOW_SECONDS`` (rounded to
        whole seconds, at least 1), the other :data:`ENV` variables when set, then ``overrides``
        (None values ignored).

        Raises:
            ValueError: a variable is not a number, or a value is out of range.
        """
        e = os.environ if environ is None else environ
        kw: dict[str, Any] = {"window_seconds": max(1, int(round(settings.drift_window_seconds)))}
        for field, cast in (("alpha", float), ("reference_windows", int), ("min_samples", int),
                            ("window_sample", int)):
            raw = e.get(ENV[field])
            if raw not in (None, ""):
                try:
                    kw[field] = cast(raw)
                except ValueError:
                    raise ValueError(f"{ENV[field]}={raw!r} is not a number") from None
        raw = e.get(ENV["store_reference"])
        if raw not in (None, ""):
            kw["store_reference"] = raw.strip().lower() not in ("0", "false", "no", "off")
        kw.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**kw)

    @property
    def lateness(self) -> float:
        if self.allowed_lateness_seconds is not None:
            return float(self.allowed_lateness_seconds)
        return min(10.0, self.window_seconds / 2)

    @property
    def idle(self) -> float:
        return float(self.idle_seconds) if self.idle_seconds is not None else float(self.window_seconds)

    @property
    def tick(self) -> float:
        return float(self.tick_seconds) if self.tick_seconds is not None else min(1.0, self.window_seconds / 4)

    @property
    def expires(self) -> float:
        if self.expires_seconds is not None:
            return float(self.expires_seconds)
        return max(10.0 * self.window_seconds, 300.0)

    def monitor(self) -> DriftMonitor:
        """A :class:`DriftMonitor` with this tuning.

        Raises:
            ValueError: a statistical parameter is out of range.
        """
        return DriftMonitor(
            self.window_seconds,
            reference_windows=self.reference_windows,
            allowed_lateness_seconds=self.lateness,
            alpha=self.alpha,
            min_samples=self.min_samples,
            window_sample=self.window_sample,
            reference_sample=self.reference_sample,
            mmd_permutations=self.mmd_permutations,
            chi2_permutations=self.chi2_permutations,
        )
