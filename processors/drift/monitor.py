"""In-memory, event-time windowed drift state: :class:`DriftMonitor`.

Pure Python + numpy (no Kafka, no faust), so the windowing and reference rules
are unit-testable; :mod:`streams.drift_app` feeds it from faust windowed tables.

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
"""
from __future__ import annotations

import json
import math
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Optional, Union

import numpy as np

from processors.drift import stats

PRODUCER = "drift"
"""``producer`` field of the drift reports."""
PRODUCER_VERSION = "0.1.0"
"""``producer_version`` field of the drift reports."""

EMBEDDING = "embedding"
"""Signal name of the mean document embedding."""
TEXT_LENGTH = "text_length"
"""Signal name of the text length histogram."""
LABEL_PREFIX = "label:"
"""Signal name prefix of a model's predicted labels: ``label:<model_name>``."""


def label_signal(model_name: str) -> str:
    """Signal name of ``model_name``'s predicted labels."""
    return f"{LABEL_PREFIX}{model_name}"


def _wall_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class Categorical:
    """Counts per category (labels, length buckets): the state of a PSI signal."""

    counts: dict[str, int] = field(default_factory=dict)

    def add(self, category: str, n: int = 1) -> None:
        self.counts[category] = self.counts.get(category, 0) + int(n)

    def merge(self, other: "Categorical") -> None:
        for k, v in other.counts.items():
            self.add(k, v)

    @property
    def size(self) -> int:
        return sum(v for v in self.counts.values() if v > 0)

    def copy(self) -> "Categorical":
        return Categorical(dict(self.counts))


@dataclass
class VectorMean:
    """Sum and count of vectors: the state of the mean-embedding signal."""

    total: Optional[np.ndarray] = None
    n: int = 0

    def add(self, vector: np.ndarray, n: int = 1) -> None:
        v = np.asarray(vector, dtype=np.float64).reshape(-1)
        if self.total is None:
            self.total = v.copy()
        elif self.total.shape != v.shape:
            raise ValueError(f"vector dimension {v.shape[0]} != {self.total.shape[0]}")
        else:
            self.total = self.total + v
        self.n += int(n)

    def merge(self, other: "VectorMean") -> None:
        if other.total is not None and other.n > 0:
            self.add(other.total, other.n)

    @property
    def size(self) -> int:
        return self.n

    def copy(self) -> "VectorMean":
        return VectorMean(None if self.total is None else self.total.copy(), self.n)


SignalState = Union[Categorical, VectorMean]


@dataclass
class WindowAggregate:
    """Everything observed in one window, per signal. Mergeable.

    ``start_ms``/``end_ms`` bound the window (end exclusive). Build one with
    :meth:`DriftMonitor.new_window` or directly (``streams.drift_app`` builds
    them from faust tables).
    """

    start_ms: int
    end_ms: int
    signals: dict[str, SignalState] = field(default_factory=dict)

    def categorical(self, signal: str) -> Categorical:
        state = self.signals.setdefault(signal, Categorical())
        if not isinstance(state, Categorical):
            raise TypeError(f"signal {signal} is not categorical")
        return state

    def vector(self, signal: str) -> VectorMean:
        state = self.signals.setdefault(signal, VectorMean())
        if not isinstance(state, VectorMean):
            raise TypeError(f"signal {signal} is not a vector mean")
        return state

    def add_embedding(self, doc_vector: Any, text_length: int) -> bool:
        """Add one embedded record; returns False when the vector was unusable
        (empty, non-finite or zero: only its text length is counted then)."""
        self.categorical(TEXT_LENGTH).add(stats.length_bucket(text_length))
        v = np.asarray(doc_vector if doc_vector is not None else [], dtype=np.float64).reshape(-1)
        norm = float(np.linalg.norm(v)) if v.size else 0.0
        if v.size == 0 or not math.isfinite(norm) or norm == 0.0:
            return False
        # doc_vector is L2-normalised by contract; re-normalise so the noise model holds.
        self.vector(EMBEDDING).add(v / norm)
        return True

    def add_prediction(self, model_name: str, label: str) -> None:
        """Add one prediction of ``model_name``."""
        self.categorical(label_signal(model_name)).add(label)

    def merge(self, other: "WindowAggregate") -> None:
        """Add ``other``'s observations to this aggregate (window bounds unchanged)."""
        for name, state in other.signals.items():
            mine = self.signals.get(name)
            if mine is None:
                self.signals[name] = state.copy()
            else:
                mine.merge(state)  # type: ignore[arg-type]

    def size(self, signal: str) -> int:
        state = self.signals.get(signal)
        return state.size if state is not None else 0

    @property
    def empty(self) -> bool:
        return all(s.size == 0 for s in self.signals.values())


@dataclass
class _Reference:
    state: SignalState
    windows: int
    start_ms: int
    end_ms: int


class StreamClock:
    """Event-time watermark for :meth:`DriftMonitor.close_windows`.

    Sources (e.g. ``(topic, partition)``) report the event times they deliver.
    ``now(wall_ms)`` is the smallest "largest event time" over the *active*
    sources - those that delivered a record in the last ``idle_seconds`` - so a
    partition that lags behind holds windows open instead of making its records
    late (the usual per-partition watermark of stream processors, with idle
    sources ignored as in Flink's ``withIdleness``). A source :meth:`register`-ed
    before its first record (an assigned partition) holds the watermark until it
    delivers or turns idle, so a partition fetched a little later at start-up does
    not find its windows closed. When every source is idle the
    watermark is the largest event time seen, advanced with the wall clock from
    ``idle_seconds`` after the last arrival, so the last window of a stream that
    goes quiet still closes. Event times are capped at wall clock +
    ``max_future_seconds`` (a producer with a skewed clock cannot close windows
    early) and the watermark never goes backwards.
    """

    def __init__(self, idle_seconds: float, max_future_seconds: float = 60.0) -> None:
        self.idle_ms = int(idle_seconds * 1000)
        self.max_future_ms = int(max_future_seconds * 1000)
        self._max_event: dict[Any, int] = {}
        self._last_arrival: dict[Any, int] = {}
        self._watermark: Optional[int] = None
        self._last_record_ms: Optional[int] = None

    def register(self, source: Any, wall_ms: Optional[int] = None) -> None:
        """Announce a source (e.g. a newly assigned partition) that has not delivered yet."""
        wall = _wall_ms() if wall_ms is None else int(wall_ms)
        self._last_arrival[source] = max(self._last_arrival.get(source, wall), wall)

    def observe(self, event_ms: int, wall_ms: Optional[int] = None, source: Any = None) -> None:
        """Record that ``source`` delivered event time ``event_ms`` at ``wall_ms`` (default now)."""
        wall = _wall_ms() if wall_ms is None else int(wall_ms)
        ev = min(int(event_ms), wall + self.max_future_ms)
        self._max_event[source] = max(self._max_event.get(source, ev), ev)
        self._last_arrival[source] = max(self._last_arrival.get(source, wall), wall)
        self._last_record_ms = wall if self._last_record_ms is None else max(self._last_record_ms, wall)

    @property
    def max_event_ms(self) -> Optional[int]:
        """Largest event time seen over all sources."""
        return max(self._max_event.values()) if self._max_event else None

    def now(self, wall_ms: Optional[int] = None) -> Optional[int]:
        """The watermark in ms, or None before the first event."""
        if not self._max_event:
            return None
        wall = _wall_ms() if wall_ms is None else int(wall_ms)
        active = [self._max_event.get(s) for s, t in self._last_arrival.items() if wall - t <= self.idle_ms]
        if any(m is None for m in active):
            return self._watermark  # a registered source has not delivered yet: hold
        if active:
            mark = min(active)  # type: ignore[type-var]
        else:
            last = self._last_record_ms or wall
            mark = max(self._max_event.values()) + max(0, wall - last - self.idle_ms)
        if self._watermark is None or mark > self._watermark:
            self._watermark = mark
        return self._watermark


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
        self.clock = clock or _wall_ms
        self._open: dict[int, WindowAggregate] = {}
        self._history: deque[WindowAggregate] = deque(
            maxlen=max(history_windows or 0, self.reference_windows, 10))
        self._references: dict[str, _Reference] = {}
        self._learning: dict[str, _Reference] = {}
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
                    learning = self._learning[signal] = _Reference(state.copy(), 1, agg.start_ms, agg.end_ms)
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
                self._references[signal] = _Reference(state.copy(), windows, aggregate.start_ms, aggregate.end_ms)
                self._learning.pop(signal, None)
                done.append(signal)
        return sorted(done)

    def reset_reference(self) -> None:
        """Forget every reference; the next closed windows are learned as the new one."""
        self._references.clear()
        self._learning.clear()

    # -- statistics ----------------------------------------------------------------------
    def _report(self, signal: str, ref: _Reference, cur: SignalState,
                agg: WindowAggregate) -> Optional[dict[str, Any]]:
        details: dict[str, str] = {
            "reference_windows": str(ref.windows),
            "reference_start": str(ref.start_ms),
            "reference_end": str(ref.end_ms),
            "noise_factor": _fmt(self.noise_factor),
            "min_samples": str(self.min_samples),
        }
        n_ref, n_cur = ref.state.size, cur.size
        try:
            if isinstance(cur, VectorMean):
                assert isinstance(ref.state, VectorMean)
                statistic, configured = "mean_cosine_distance", self.embedding_threshold
                value = stats.mean_cosine_distance(ref.state.total, n_ref, cur.total, n_cur)
                floor = stats.mean_cosine_noise_floor(ref.state.total, n_ref, n_cur)
                details["reference_mean_norm"] = _fmt(float(np.linalg.norm(ref.state.total)) / n_ref)
                details["current_mean_norm"] = _fmt(float(np.linalg.norm(cur.total)) / n_cur)
            else:
                assert isinstance(ref.state, Categorical)
                statistic = "psi"
                configured = self.length_threshold if signal == TEXT_LENGTH else self.psi_threshold
                value = stats.psi(ref.state.counts, cur.counts)
                k = len({c for c, v in ref.state.counts.items() if v > 0} | {c for c, v in cur.counts.items() if v > 0})
                floor = stats.psi_noise_floor(k, n_ref, n_cur)
                details["categories"] = str(k)
                details["severity"] = ("significant" if value > stats.PSI_THRESHOLD
                                       else "moderate" if value > stats.PSI_MODERATE else "none")
                details["top_shifts"] = json.dumps([
                    {"category": c, "p_ref": round(r, 4), "p_cur": round(q, 4), "contribution": round(x, 4)}
                    for c, r, q, x in stats.psi_contributions(ref.state.counts, cur.counts)
                ], separators=(",", ":"))
        except ValueError:  # zero mean vector, dimension change: nothing comparable
            return None
        threshold = stats.effective_threshold(configured, floor, self.noise_factor)
        details["configured_threshold"] = _fmt(configured)
        details["noise_floor"] = _fmt(floor)
        enough = n_cur >= self.min_samples
        if not enough:
            details["insufficient_samples"] = "true"
        alarm = bool(enough and value > threshold)
        return {
            "report_id": str(uuid.uuid4()),
            "trace_id": f"drift:{agg.start_ms}",
            "event_time": int(self.clock()),
            "producer": PRODUCER,
            "producer_version": self.producer_version,
            "signal": signal,
            "statistic": statistic,
            "value": float(value),
            "threshold": float(threshold) if math.isfinite(threshold) else float(configured),
            "alarm": alarm,
            "window_start": int(agg.start_ms),
            "window_end": int(agg.end_ms),
            "sample_size": int(n_cur),
            "reference_size": int(n_ref),
            "details": details,
        }


def _fmt(x: float) -> str:
    return f"{x:.6g}"


def aggregate_from_observations(window_ms: int, embeddings: Iterable[tuple[int, Any, int]] = (),
                                predictions: Iterable[tuple[int, str, str]] = ()) -> dict[int, WindowAggregate]:
    """Group ``(ts_ms, vector, text_length)`` / ``(ts_ms, model, label)`` observations
    into per-window aggregates (helper for tests and offline checks)."""
    out: dict[int, WindowAggregate] = {}

    def win(ts: int) -> WindowAggregate:
        start = (int(ts) // window_ms) * window_ms
        return out.setdefault(start, WindowAggregate(start, start + window_ms))

    for ts, vec, length in embeddings:
        win(ts).add_embedding(vec, length)
    for ts, model, label in predictions:
        win(ts).add_prediction(model, label)
    return out


def summarize(reports: Iterable[Mapping[str, Any]]) -> list[str]:
    """One line per report, for logs."""
    return [f"{r['signal']} {r['statistic']}={r['value']:.4f} thr={r['threshold']:.4f} "
            f"alarm={r['alarm']} n={r['sample_size']}/{r['reference_size']} "
            f"[{r['window_start']},{r['window_end']})" for r in reports]
