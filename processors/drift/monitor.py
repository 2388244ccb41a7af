"""In-memory, event-time windowed drift state: :class:`DriftMonitor`.

Pure Python + numpy (no Kafka, no faust), so the windowing and reference rules
are unit-testable; :mod:`streams.drift` feeds it from faust windowed tables.

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
Each signal (``embedding``, ``text_length``, ``label:<model>``) has its own
reference. By default the **first closed window that contains the signal**
becomes its reference (``reference_windows=1``); with ``reference_windows=N``
the first N such windows are merged. Every later closed window yields one drift
report per signal, compared to that reference. Windows without data for a signal
yield no report for it. A signal that first appears later (a new model) learns
its own reference then.

* :meth:`DriftMonitor.pin_reference` - make the most recent closed windows the
  reference (after an accepted, intentional change);
* :meth:`DriftMonitor.set_reference` - an explicit reference (e.g. aggregated
  from a training set);
* :meth:`DriftMonitor.reset_reference` - forget it; the next windows are learned
  again.

The reference lives in memory only: a restarted monitor learns it again from the
first window it closes.

Modules: the per-window signal state is :mod:`.aggregate`, the watermark
:mod:`.clock`, the report built per signal and window :mod:`.report`; their
public names are re-exported here.
"""
from __future__ import annotations

from collections import deque
from typing import Any, Callable, Optional

from processors.drift import stats
from processors.drift.aggregate import (
    EMBEDDING,
    LABEL_PREFIX,
    TEXT_LENGTH,
    Categorical,
    Reference,
    SignalState,
    VectorMean,
    WindowAggregate,
    aggregate_from_observations,
    label_signal,
)
from processors.drift.clock import StreamClock, epoch_ms
from processors.drift.report import PRODUCER, PRODUCER_VERSION, drift_report, summarize

__all__ = [
    "DriftMonitor",
    "StreamClock",
    "WindowAggregate",
    "Categorical",
    "VectorMean",
    "SignalState",
    "EMBEDDING",
    "TEXT_LENGTH",
    "LABEL_PREFIX",
    "PRODUCER",
    "PRODUCER_VERSION",
    "label_signal",
    "aggregate_from_observations",
    "summarize",
]


class DriftMonitor:
    """Tumbling-window drift statistics against a learned reference.

    Args:
        window_seconds: window length (> 0).
        reference_windows: closed windows (containing a signal) merged into that
            signal's reference before reports start (>= 1).
        allowed_lateness_seconds: a window closes when ``now_ms >= end + lateness``.
        psi_threshold: PSI alarm threshold of the label signals.
        length_threshold: PSI alarm threshold of the text length signal.
        embedding_threshold: alarm threshold of the mean cosine distance.
        noise_factor: alarm only above ``noise_factor x`` the expected no-drift
            value at the window's sample sizes (:func:`stats.effective_threshold`).
        min_samples: windows with fewer observations of a signal are reported
            but never alarm (``details["insufficient_samples"] = "true"``).
        history_windows: closed windows kept for :meth:`pin_reference`.
        producer_version: ``producer_version`` of the reports.
        clock: wall clock in ms for the reports' ``event_time`` (tests).
    """

    def __init__(
        self,
        window_seconds: float,
        *,
        reference_windows: int = 1,
        allowed_lateness_seconds: float = 0.0,
        psi_threshold: float = stats.PSI_THRESHOLD,
        length_threshold: float = stats.PSI_THRESHOLD,
        embedding_threshold: float = stats.EMBEDDING_THRESHOLD,
        noise_factor: float = stats.NOISE_FACTOR,
        min_samples: int = 30,
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
        self.window_ms = int(round(window_seconds * 1000))
        if self.window_ms <= 0:
            raise ValueError("window_seconds must be at least 1 ms")
        self.reference_windows = int(reference_windows)
        self.lateness_ms = int(round(allowed_lateness_seconds * 1000))
        self.psi_threshold = float(psi_threshold)
        self.length_threshold = float(length_threshold)
        self.embedding_threshold = float(embedding_threshold)
        self.noise_factor = float(noise_factor)
        self.min_samples = int(min_samples)
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

    # -- windows -----------------------------------------------------------------------
    def window_start(self, ts_ms: int) -> int:
        """Start (ms) of the window containing event time ``ts_ms``."""
        return (int(ts_ms) // self.window_ms) * self.window_ms

    def new_window(self, ts_ms: int) -> WindowAggregate:
        """An empty aggregate for the window containing ``ts_ms``."""
        start = self.window_start(ts_ms)
        return WindowAggregate(start, start + self.window_ms)

    def _is_late(self, start_ms: int) -> bool:
        return self.closed_until_ms is not None and start_ms < self.closed_until_ms

    def _window_for(self, ts_ms: int) -> Optional[WindowAggregate]:
        start = self.window_start(ts_ms)
        if self._is_late(start):
            self.late_events += 1
            return None
        agg = self._open.get(start)
        if agg is None:
            agg = self._open[start] = WindowAggregate(start, start + self.window_ms)
        return agg

    @property
    def open_windows(self) -> list[int]:
        """Starts (ms) of the windows holding data that are not closed yet."""
        return sorted(self._open)

    def observe_embedding(self, ts_ms: int, doc_vector: Any, text_length: int) -> bool:
        """Count one embedded record at event time ``ts_ms`` (ms).

        Feeds the ``embedding`` (unit-normalised ``doc_vector``) and ``text_length``
        signals. Returns False if the record was late (its window is closed).
        """
        agg = self._window_for(ts_ms)
        if agg is None:
            return False
        agg.add_embedding(doc_vector, text_length)
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
            mine = self._open[aggregate.start_ms] = WindowAggregate(
                aggregate.start_ms, aggregate.start_ms + self.window_ms)
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
                    learning = self._learning[signal] = Reference(state.copy(), 1, agg.start_ms, agg.end_ms)
                else:
                    learning.state.merge(state)  # type: ignore[arg-type]
                    learning.windows += 1
                    learning.end_ms = agg.end_ms
                if learning.windows >= self.reference_windows:
                    self._references[signal] = self._learning.pop(signal)
                continue
            report = self._report(signal, ref, state, agg)
            if report is not None:
                out.append(report)
        return out

    # -- references --------------------------------------------------------------------
    @property
    def references(self) -> dict[str, dict[str, int]]:
        """Signals with a complete reference: ``{signal: {"size", "windows", "start_ms", "end_ms"}}``."""
        return {s: {"size": r.state.size, "windows": r.windows, "start_ms": r.start_ms, "end_ms": r.end_ms}
                for s, r in self._references.items()}

    def pin_reference(self, windows: Optional[int] = None) -> list[str]:
        """Make the last ``windows`` (default ``reference_windows``) closed windows
        the reference of every signal they contain; returns those signals.

        Raises:
            ValueError: no window has been closed yet.
        """
        n = self.reference_windows if windows is None else int(windows)
        if n < 1:
            raise ValueError("windows must be >= 1")
        recent = list(self._history)[-n:]
        if not recent:
            raise ValueError("no closed window to pin")
        merged = WindowAggregate(recent[0].start_ms, recent[-1].end_ms)
        for agg in recent:
            merged.merge(agg)
        return self.set_reference(merged, windows=len(recent))

    def set_reference(self, aggregate: WindowAggregate, windows: int = 1) -> list[str]:
        """Use ``aggregate`` as the reference of every signal it contains (others keep
        theirs); returns the signals set."""
        done = []
        for signal, state in aggregate.signals.items():
            if state.size > 0:
                self._references[signal] = Reference(state.copy(), windows, aggregate.start_ms, aggregate.end_ms)
                self._learning.pop(signal, None)
                done.append(signal)
        return sorted(done)

    def reset_reference(self) -> None:
        """Forget every reference; the next closed windows are learned as the new one."""
        self._references.clear()
        self._learning.clear()

    # -- statistics ----------------------------------------------------------------------
    def _report(self, signal: str, ref: Reference, cur: SignalState,
                agg: WindowAggregate) -> Optional[dict[str, Any]]:
        if isinstance(cur, VectorMean):
            configured = self.embedding_threshold
        else:
            configured = self.length_threshold if signal == TEXT_LENGTH else self.psi_threshold
        return drift_report(signal, ref, cur, agg, configured_threshold=configured,
                            noise_factor=self.noise_factor, min_samples=self.min_samples,
                            producer_version=self.producer_version, clock=self.clock)
