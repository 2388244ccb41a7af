"""Tuning of the drift app: :class:`DriftConfig` (window length and what derives from it)."""
from __future__ import annotations

import dataclasses
from typing import Any, Optional

from processors.drift import stats
from processors.drift.monitor import DriftMonitor
from streams.settings import Settings

PROCESSOR = "drift"
"""Processor name: metrics label and group id suffix (``<namespace>.drift``)."""


@dataclasses.dataclass(frozen=True)
class DriftConfig:
    """Tuning of the drift app; defaults derive from ``window_seconds``.

    Attributes:
        window_seconds: tumbling window length; faust windows need whole seconds (>= 1).
        reference_windows: windows merged into each signal's reference.
        allowed_lateness_seconds: a window closes this long after the watermark passed
            its end (default ``min(10, window/2)``).
        idle_seconds: a source partition with no record for this long no longer holds
            the watermark back (default one window).
        tick_seconds: timer interval (default ``min(1, window/4)``).
        expires_seconds: faust drops table windows this long after they ended, by
            wall clock (default ``max(10 windows, 300 s)``); windows replayed from
            further back than this are not reported.
        min_samples, psi_threshold, length_threshold, embedding_threshold,
        noise_factor: see :class:`processors.drift.DriftMonitor`.
    """

    window_seconds: int = 60
    reference_windows: int = 1
    allowed_lateness_seconds: Optional[float] = None
    idle_seconds: Optional[float] = None
    tick_seconds: Optional[float] = None
    expires_seconds: Optional[float] = None
    min_samples: int = 30
    psi_threshold: float = stats.PSI_THRESHOLD
    length_threshold: float = stats.PSI_THRESHOLD
    embedding_threshold: float = stats.EMBEDDING_THRESHOLD
    noise_factor: float = stats.NOISE_FACTOR

    def __post_init__(self) -> None:
        if int(self.window_seconds) != self.window_seconds or self.window_seconds < 1:
            raise ValueError(f"drift window must be a whole number of seconds >= 1 "
                             f"(faust tumbling windows), got {self.window_seconds}")

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> "DriftConfig":
        """Config with ``window_seconds`` from ``CONVEYOR_DRIFT_WINDOW_SECONDS``, rounded
        to whole seconds (at least 1)."""
        window = max(1, int(round(settings.drift_window_seconds)))
        return cls(window_seconds=window, **overrides)

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
        return DriftMonitor(
            self.window_seconds,
            reference_windows=self.reference_windows,
            allowed_lateness_seconds=self.lateness,
            psi_threshold=self.psi_threshold,
            length_threshold=self.length_threshold,
            embedding_threshold=self.embedding_threshold,
            noise_factor=self.noise_factor,
            min_samples=self.min_samples,
        )
