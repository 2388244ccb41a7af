"""The drift app's faust windowed tables: what the agents write, and reading closed
windows back for :class:`conveyor.streams.drift.DriftMonitor`.

* State lives in faust **windowed tables** (tumbling, event time = the records'
  ``event_time`` via ``relative_to``), backed by changelog topics
  ``<ns>.drift-{labels,counts,samples}-changelog`` that faust creates itself. Table keys
  carry the source partition (a faust table partition is its source partition), the
  timer sums the partitions:

  - ``labels``: ``[partition, model, label]`` -> count;
  - ``counts``: ``[partition, signal]`` -> records seen per sampled signal;
  - ``samples``: ``[partition, doc_id]`` -> :func:`sample_entry` (priority, text length,
    OCR confidence, unit doc vector as base64 float32) of the documents admitted by
    :class:`Admission` - the bottom-k priorities of their partition and window, so a
    window writes O(k log n) entries, not n, and the harvested bottom-k over all
    partitions is the window's sample (:mod:`conveyor.streams.drift.sample`).
* The timer runs every ``tick_seconds``: it computes the watermark
  (:class:`conveyor.streams.drift.StreamClock`, per source partition), reads every
  window of the tables that the watermark closed (:func:`harvest`), hands them to the
  :class:`conveyor.streams.drift.DriftMonitor` and publishes its reports. The monitor
  holds the reference (first closed window by default) in memory.
"""
from __future__ import annotations

import base64
import contextlib
import contextvars
import heapq
import json
import logging
import math
from collections.abc import Iterator, Sequence
from typing import Any, Optional

import numpy as np

from conveyor.streams.drift.monitor import (
    EMBEDDING,
    OCR_CONFIDENCE,
    TEXT_LENGTH,
    DriftMonitor,
    WindowAggregate,
    label_signal,
)
from conveyor.streams.drift.sample import Sample

log = logging.getLogger(__name__)

# Event time (seconds) of the record being aggregated; read by the windowed
# tables' ``relative_to`` handler. Set and read synchronously inside an agent.
_EVENT_TS: contextvars.ContextVar[float] = contextvars.ContextVar("conveyor_drift_event_ts")


def event_timestamp(event: Any = None) -> float:
    """The windowed tables' ``relative_to`` handler: the event time (seconds) set by
    :func:`event_time` for the record being aggregated."""
    return _EVENT_TS.get()


@contextlib.contextmanager
def event_time(ts_ms: int) -> Iterator[None]:
    """Within the block, table writes go to the windows of event time ``ts_ms`` (ms)."""
    token = _EVENT_TS.set(ts_ms / 1000.0)
    try:
        yield
    finally:
        _EVENT_TS.reset(token)


class Admission:
    """Which documents a partition writes to the ``samples`` table: per ``(partition,
    window start)`` the ``k`` smallest priorities seen so far (a max-heap). In memory only:
    after a restart more documents are admitted, never fewer, and the harvest keeps the
    bottom-k anyway."""

    def __init__(self, k: int) -> None:
        self.k = int(k)
        self._heaps: dict[tuple[int, int], list[float]] = {}

    def admit(self, partition: int, window_start_ms: int, prio: float) -> bool:
        """Whether ``prio`` is among the ``k`` smallest priorities of its partition and window."""
        heap = self._heaps.setdefault((int(partition), int(window_start_ms)), [])
        if len(heap) < self.k:
            heapq.heappush(heap, -prio)
            return True
        if prio < -heap[0]:
            heapq.heapreplace(heap, -prio)
            return True
        return False

    def forget_before(self, start_ms: int) -> None:
        """Drop the state of windows starting before ``start_ms`` (closed ones)."""
        for key in [k for k in self._heaps if k[1] < start_ms]:
            del self._heaps[key]


def sample_entry(prio: float, text_length: int, ocr_confidence: Optional[float],
                 unit: Optional[Sequence[float]]) -> dict[str, Any]:
    """The ``samples`` table value of one document: ``{"p", "len", "ocr", "v"}`` (``v``:
    base64 little-endian float32 of the unit vector, or None)."""
    v = None if unit is None else base64.b64encode(np.asarray(unit, dtype="<f4").tobytes()).decode("ascii")
    ocr = float(ocr_confidence) if ocr_confidence is not None and math.isfinite(float(ocr_confidence)) else None
    return {"p": float(prio), "len": int(text_length), "ocr": ocr, "v": v}


def entry_vector(entry: dict[str, Any]) -> Optional[np.ndarray]:
    """The vector of a :func:`sample_entry`, or None."""
    v = entry.get("v")
    return None if not v else np.frombuffer(base64.b64decode(v), dtype="<f4").astype(np.float64)


def unit_vector(vector: Sequence[float]) -> Optional[list[float]]:
    """``vector`` scaled to L2 norm 1, or None when it is empty, zero or not finite."""
    norm = math.sqrt(sum(float(x) * float(x) for x in vector)) if vector else 0.0
    if not vector or norm == 0.0 or not math.isfinite(norm):
        return None
    return [float(x) / norm for x in vector]


def window_key(key: Any) -> Optional[tuple[Any, float]]:
    """``(table_key, window_start_seconds)`` of a raw windowed-table key ``(key, (start, end))``
    (lists after a changelog recovery), or None."""
    try:
        k, rng = key
        return k, float(rng[0])
    except (TypeError, ValueError, IndexError):
        return None


def harvest(monitor: DriftMonitor, labels_table: Any, counts_table: Any, samples_table: Any,
            limit_ms: int) -> list[WindowAggregate]:
    """Aggregates of every window in the tables that ends at or before ``limit_ms``
    and is not closed yet in ``monitor`` (partitions summed), in window order.

    Sampled signals keep the bottom-k (``monitor.window_sample``) of the admitted entries;
    their ``count`` is the ``counts`` table's. Unreadable table entries are logged and skipped.
    """
    w_ms = monitor.window_ms
    out: dict[int, WindowAggregate] = {}
    counts: dict[tuple[int, str], int] = {}

    def window(start_s: float) -> Optional[WindowAggregate]:
        start = int(round(start_s * 1000))
        if start + w_ms > limit_ms or monitor.is_closed(start):
            return None
        agg = out.get(start)
        if agg is None:
            agg = out[start] = monitor.new_window(start)
        return agg

    def entries(table: Any) -> Iterator[tuple[WindowAggregate, Any, Any]]:
        for key, value in list(table.data.items()):
            parsed = window_key(key)
            if parsed is None or not value:
                continue
            agg = window(parsed[1])
            if agg is not None:
                yield agg, parsed[0], value

    for agg, key, value in entries(labels_table):
        try:
            _, model, label = json.loads(key)
            agg.categorical(label_signal(str(model))).add(str(label), int(value))
        except (TypeError, ValueError) as exc:
            log.warning("drift: ignoring label table entry %r: %s", key, exc)
    for agg, key, value in entries(counts_table):
        try:
            _, signal = json.loads(key)
            counts[(agg.start_ms, str(signal))] = counts.get((agg.start_ms, str(signal)), 0) + int(value)
        except (TypeError, ValueError) as exc:
            log.warning("drift: ignoring count table entry %r: %s", key, exc)
    for agg, key, value in entries(samples_table):
        try:
            agg.add_embedding(entry_vector(value), int(value["len"]), value.get("ocr"), prio=float(value["p"]))
        except (AttributeError, KeyError, TypeError, ValueError) as exc:  # e.g. dimension change
            log.warning("drift: ignoring sample table entry %r: %s", key, exc)
    for agg in out.values():
        for signal in (EMBEDDING, TEXT_LENGTH, OCR_CONFIDENCE):
            state = agg.signals.get(signal)
            if isinstance(state, Sample):  # the sampled signals' state (never Categorical)
                state.count = max(counts.get((agg.start_ms, signal), 0), len(state))
    return [out[s] for s in sorted(out)]
