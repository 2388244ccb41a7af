"""In-memory, event-time windowed drift state: :class:`DriftMonitor`.

Pure Python + numpy (no Kafka, no faust), so the windowing and reference rules
are unit-testable; :mod:`conveyor.streams.drift` feeds it from faust windowed tables.

Windows
-------
Tumbling windows of ``window_seconds`` aligned on the epoch:
``[k*W, (k+1)*W)`` in event time (the records' ``event_time``, ms). A window
is *closed* by :meth:`DriftMonitor.close_windows` once ``now_ms`` (a watermark,
see :class:`StreamClock`) has passed its end by ``allowed_lateness_seconds``;
records that arrive for an already-closed window are dropped and counted in
``late_events``.

Reference
---------
Each signal (``embedding``, ``text_length``, ``ocr_confidence``, ``label:<model>``)
has its own reference. By default the **first closed window that contains the
signal** becomes its reference (``reference_windows=1``); with
``reference_windows=N`` the first N such windows are merged (samples capped at
``reference_sample`` values). Every later closed window yields one drift report
per signal, tested against that reference (:mod:`.report`). Windows without data
for a signal yield no report for it. A signal that first appears later (a new
model) learns its own reference then.

* :meth:`DriftMonitor.pin_reference` - make the most recent closed windows the
  reference (after an accepted, intentional change);
* :meth:`DriftMonitor.set_reference` - an explicit reference (e.g. aggregated
  from a training set);
* :meth:`DriftMonitor.reset_reference` - forget it; the next windows are learned
  again.

:meth:`DriftMonitor.export_references` / :meth:`DriftMonitor.load_references`
turn the references into JSON and back; ``conveyor.streams.drift`` stores them in a
compacted topic so a restarted worker keeps its reference, and
``conveyor drift reference pin|reset|show`` manages it. :attr:`DriftMonitor.revision`
changes whenever a reference does.

Modules: the per-window signal state is :mod:`.aggregate`, the watermark
:mod:`.clock`, the report built per signal and window :mod:`.report`; their
public names are re-exported here.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any, Optional

from conveyor.streams.drift import stats, twosample
from conveyor.streams.drift.aggregate import (
    EMBEDDING,
    LABEL_PREFIX,
    OCR_CONFIDENCE,
    REFERENCE_SAMPLE,
    TEXT_LENGTH,
    WINDOW_SAMPLE,
    Categorical,
    Reference,
    SignalState,
    WindowAggregate,
    aggregate_from_observations,
    label_signal,
)
from conveyor.streams.drift.clock import StreamClock, epoch_ms
from conveyor.streams.drift.report import (
    PRODUCER,
    PRODUCER_VERSION,
    drift_report,
    summarize,
)
from conveyor.streams.drift.sample import Sample

__all__ = [
    "DriftMonitor",
    "StreamClock",
    "WindowAggregate",
    "Categorical",
    "Sample",
    "SignalState",
    "Reference",
    "EMBEDDING",
    "TEXT_LENGTH",
    "OCR_CONFIDENCE",
    "LABEL_PREFIX",
    "PRODUCER",
    "PRODUCER_VERSION",
    "label_signal",
    "aggregate_from_observations",
    "summarize",
]


class DriftMonitor:
    """Tumbling-window drift tests against a learned, pinned or stored reference.

    Args:
        window_seconds: window length (> 0).
        reference_windows: closed windows (containing a signal) merged into that
            signal's reference before reports start (>= 1).
        allowed_lateness_seconds: a window closes when ``now_ms >= end + lateness``.
        alpha: significance level of every test (:data:`stats.ALPHA`, 0.0027).
        min_samples: windows with fewer observations of a signal are reported
            but never alarm (``details["insufficient_samples"] = "true"``).
        window_sample: values kept per window and sampled signal (bottom-k).
        reference_sample: values kept per sampled signal in a reference.
        mmd_permutations, chi2_permutations: permutations of the MMD and chi-squared tests.
        seed: seeds the permutations (with the window start and signal).
        history_windows: closed windows kept for :meth:`pin_reference`.
        producer_version: ``producer_version`` of the reports.
        clock: wall clock in ms for the reports' ``event_time`` (tests).

    Raises:
        ValueError: a parameter out of range.
    """

    def __init__(
        self,
        window_seconds: float,
        *,
        reference_windows: int = 1,
        allowed_lateness_seconds: float = 0.0,
        alpha: float = stats.ALPHA,
        min_samples: int = 30,
        window_sample: int = WINDOW_SAMPLE,
        reference_sample: int = REFERENCE_SAMPLE,
        mmd_permutations: int = twosample.MMD_PERMUTATIONS,
        chi2_permutations: int = stats.CHI2_PERMUTATIONS,
        seed: int = 0,
        history_windows: Optional[int] = None,
        producer_version: str = PRODUCER_VERSION,
        clock: Optional[Callable[[], int]] = None,
    ) -> None:
        if window_seconds <= 0:
            raise ValueError("window_seconds must be > 0")
        if reference_windows < 1:
            raise ValueError("reference_windows must be >= 1")
        if allowed_lateness_seconds < 0:
            raise ValueError("allowed_lateness_seconds must be >= 0")
        if not 0.0 < alpha < 1.0:
            raise ValueError("alpha must be in (0, 1)")
        if min(window_sample, reference_sample) < 2:
            raise ValueError("window_sample and reference_sample must be >= 2")
        for name, b in (("mmd_permutations", mmd_permutations), ("chi2_permutations", chi2_permutations)):
            if (b + 1) * alpha < 1:
                raise ValueError(f"{name}={b} cannot reach alpha={alpha}: need >= {int(1 / alpha) - 1}")
        self.window_ms = int(round(window_seconds * 1000))
        if self.window_ms <= 0:
            raise ValueError("window_seconds must be at least 1 ms")
        self.reference_windows = int(reference_windows)
        self.lateness_ms = int(round(allowed_lateness_seconds * 1000))
        self.alpha = float(alpha)
        self.min_samples = int(min_samples)
        self.window_sample = int(window_sample)
        self.reference_sample = int(reference_sample)
        self.mmd_permutations = int(mmd_permutations)
        self.chi2_permutations = int(chi2_permutations)
        self.seed = int(seed)
        self.producer_version = producer_version
        self.clock = clock or epoch_ms
        self._open: dict[int, WindowAggregate] = {}
        self._history: deque[WindowAggregate] = deque(
            maxlen=max(history_windows or 0, self.reference_windows, 10))
        self._references: dict[str, Reference] = {}
        self._learning: dict[str, Reference] = {}
        #: Every window that ends at or before this (ms) is closed; earlier events are late.
        self.closed_until_ms: Optional[int] = None
        #: Observations dropped because their window was already closed.
        self.late_events = 0
        #: Incremented whenever a reference is learned, pinned, set, loaded or reset.
        self.revision = 0

    # -- windows -----------------------------------------------------------------------
    def window_start(self, ts_ms: int) -> int:
        """Start (ms) of the window containing event time ``ts_ms``."""
        return (int(ts_ms) // self.window_ms) * self.window_ms

    def new_window(self, ts_ms: int) -> WindowAggregate:
        """An empty aggregate for the window containing ``ts_ms``."""
        start = self.window_start(ts_ms)
        return WindowAggregate(start, start + self.window_ms, capacity=self.window_sample)

    def _is_late(self, start_ms: int) -> bool:
        return self.closed_until_ms is not None and start_ms < self.closed_until_ms

    def _window_for(self, ts_ms: int) -> Optional[WindowAggregate]:
        start = self.window_start(ts_ms)
        if self._is_late(start):
            self.late_events += 1
            return None
        agg = self._open.get(start)
        if agg is None:
            agg = self._open[start] = self.new_window(ts_ms)
        return agg

    @property
    def open_windows(self) -> list[int]:
        """Starts (ms) of the windows holding data that are not closed yet."""
        return sorted(self._open)

    def observe_embedding(self, ts_ms: int, doc_vector: Any, text_length: int,
                          ocr_confidence: Optional[float] = None, doc_id: Optional[str] = None) -> bool:
        """Count one embedded record at event time ``ts_ms`` (ms): its unit ``doc_vector``
        (``embedding``), ``text_length`` (characters) and ``ocr_confidence`` ([0, 1], None
        when not OCR'd). ``doc_id`` decides sampling (:func:`conveyor.streams.drift.sample.priority`).

        Returns False if the record was late (its window is closed).

        Raises:
            ValueError: the vector dimension differs from the window's earlier vectors.
        """
        agg = self._window_for(ts_ms)
        if agg is None:
            return False
        agg.add_embedding(doc_vector, text_length, ocr_confidence, doc_id)
        return True

    def observe_prediction(self, ts_ms: int, model_name: str, label: str) -> bool:
        """Count one prediction at event time ``ts_ms`` (ms) in ``label:<model_name>``.

        Returns False if the record was late (its window is closed).
        """
        agg = self._window_for(ts_ms)
        if agg is None:
            return False
        agg.add_prediction(model_name, label)
        return True

    def add_window(self, aggregate: WindowAggregate) -> bool:
        """Merge an externally aggregated window (e.g. read from faust tables).

        ``aggregate.start_ms`` must be a window boundary of this monitor. Returns
        False (and counts the observations as late) if that window is closed.

        Raises:
            ValueError: the aggregate is not aligned on this monitor's windows.
        """
        if aggregate.start_ms != self.window_start(aggregate.start_ms):
            raise ValueError(f"window start {aggregate.start_ms} is not a multiple of {self.window_ms} ms")
        if self._is_late(aggregate.start_ms):
            self.late_events += sum(s.size for s in aggregate.signals.values())
            return False
        mine = self._open.get(aggregate.start_ms)
        if mine is None:
            mine = self._open[aggregate.start_ms] = self.new_window(aggregate.start_ms)
        mine.merge(aggregate)
        return True

    def is_closed(self, start_ms: int) -> bool:
        """Whether the window starting at ``start_ms`` is closed."""
        return self._is_late(start_ms)

    def closable_before(self, now_ms: int) -> int:
        """Windows ending at or before this (ms) close at watermark ``now_ms``."""
        return self.window_start(int(now_ms) - self.lateness_ms)

    def close_windows(self, now_ms: int) -> list[dict[str, Any]]:
        """Close every window that ended at least ``allowed_lateness`` before ``now_ms``.

        Closed windows first complete the references still being learned; each
        later one yields one report per signal it contains (shaped like
        ``schemas/drift_report.avsc``), in window order.
        """
        limit = self.closable_before(now_ms)
        if self.closed_until_ms is not None and limit <= self.closed_until_ms:
            return []
        reports: list[dict[str, Any]] = []
        for start in sorted(s for s in self._open if s + self.window_ms <= limit):
            agg = self._open.pop(start)
            if agg.empty:
                continue
            self._history.append(agg)
            reports.extend(self._close_one(agg))
        self.closed_until_ms = limit
        return reports

    def _close_one(self, agg: WindowAggregate) -> list[dict[str, Any]]:
        out = []
        for signal in sorted(agg.signals):
            state = agg.signals[signal]
            if state.size == 0:
                continue
            ref = self._references.get(signal)
            if ref is None:
                learning = self._learning.get(signal)
                if learning is None:
                    learning = self._learning[signal] = Reference(
                        state.copy(self.reference_sample), 1, agg.start_ms, agg.end_ms, "learned")
                else:
                    learning.state.merge(state)  # type: ignore[arg-type]  # one signal's states share a type
                    learning.windows += 1
                    learning.end_ms = agg.end_ms
                if learning.windows >= self.reference_windows:
                    self._references[signal] = self._learning.pop(signal)
                    self.revision += 1
                continue
            report = drift_report(signal, ref, state, agg, alpha=self.alpha, min_samples=self.min_samples,
                                  mmd_permutations=self.mmd_permutations,
                                  chi2_permutations=self.chi2_permutations, seed=self.seed,
                                  producer_version=self.producer_version, clock=self.clock)
            if report is not None:
                out.append(report)
        return out

    # -- references --------------------------------------------------------------------
    @property
    def references(self) -> dict[str, dict[str, Any]]:
        """Signals with a complete reference:
        ``{signal: {"size", "windows", "start_ms", "end_ms", "source"}}``."""
        return {s: {"size": r.state.size, "windows": r.windows, "start_ms": r.start_ms, "end_ms": r.end_ms,
                    "source": r.source} for s, r in self._references.items()}

    def reference(self, signal: str) -> Optional[Reference]:
        """The complete reference of ``signal``, or None."""
        return self._references.get(signal)

    def pin_reference(self, windows: Optional[int] = None) -> list[str]:
        """Make the last ``windows`` (default ``reference_windows``) closed windows
        the reference of every signal they contain; returns those signals.

        Raises:
            ValueError: no window has been closed yet, or ``windows < 1``.
        """
        n = self.reference_windows if windows is None else int(windows)
        if n < 1:
            raise ValueError("windows must be >= 1")
        recent = list(self._history)[-n:]
        if not recent:
            raise ValueError("no closed window to pin")
        merged = WindowAggregate(recent[0].start_ms, recent[-1].end_ms, capacity=self.reference_sample)
        for agg in recent:
            merged.merge(agg)
        return self.set_reference(merged, windows=len(recent), source="pinned")

    def set_reference(self, aggregate: WindowAggregate, windows: int = 1, source: str = "set") -> list[str]:
        """Use ``aggregate`` as the reference of every signal it contains (others keep
        theirs; samples capped at ``reference_sample``); returns the signals set."""
        done = []
        for signal, state in aggregate.signals.items():
            if state.size > 0:
                self._references[signal] = Reference(state.copy(self.reference_sample), windows,
                                                     aggregate.start_ms, aggregate.end_ms, source)
                self._learning.pop(signal, None)
                done.append(signal)
        if done:
            self.revision += 1
        return sorted(done)

    def reset_reference(self) -> None:
        """Forget every reference; the next closed windows are learned as the new one."""
        self._references.clear()
        self._learning.clear()
        self.revision += 1

    def export_references(self) -> dict[str, Any]:
        """The complete references as JSON-able data (see :meth:`load_references`)."""
        return {"version": 1, "window_ms": self.window_ms,
                "signals": {s: r.to_dict() for s, r in sorted(self._references.items())}}

    def load_references(self, data: dict[str, Any]) -> list[str]:
        """Replace every reference by those of ``data`` (from :meth:`export_references`);
        returns the signals loaded. An empty ``signals`` map is a reset.

        Raises:
            ValueError, KeyError: malformed data.
        """
        if int(data.get("version", 0)) != 1:
            raise ValueError(f"unsupported reference format version {data.get('version')!r}")
        loaded = {s: Reference.from_dict(d) for s, d in data["signals"].items()}
        self._references = loaded
        self._learning.clear()
        self.revision += 1
        return sorted(loaded)
