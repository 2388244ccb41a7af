"""The drift app's faust windowed tables: what the agents write, and reading closed
windows back for :class:`processors.drift.DriftMonitor`.

* State lives in faust **windowed tables** (tumbling, event time = the records'
  ``event_time`` via ``relative_to``), backed by changelog topics
  ``<ns>.drift-{labels,lengths,embeddings}-changelog`` that faust creates itself. Table keys carry the
  source partition (a faust table partition is its source partition), the timer
  sums the partitions. Values: label/length counts (``int``) and embedding
  ``{"n", "sum"}`` (unit vectors summed).
* The timer runs every ``tick_seconds``: it computes the watermark
  (:class:`processors.drift.StreamClock`, per source partition), reads every
  window of the tables that the watermark closed (:func:`harvest`), hands them to the
  :class:`processors.drift.DriftMonitor` and publishes its reports. The monitor
  holds the reference (first closed window by default) in memory.
"""
from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import math
from typing import Any, Iterator, Optional, Sequence

from processors.drift.monitor import EMBEDDING, TEXT_LENGTH, DriftMonitor, WindowAggregate, label_signal

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


def vec_add(acc: Any, item: dict) -> dict:
    """Table op: add ``{"n", "sum"}`` to an accumulated ``{"n", "sum"}`` (or the default ``{}``).

    Raises:
        ValueError: the vector dimension differs from the accumulated one.
    """
    if not acc:
        return {"n": int(item["n"]), "sum": list(item["sum"])}
    total = acc["sum"]
    if len(total) != len(item["sum"]):
        raise ValueError(f"embedding dimension changed: {len(item['sum'])} != {len(total)}")
    return {"n": int(acc["n"]) + int(item["n"]), "sum": [a + b for a, b in zip(total, item["sum"])]}


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


def harvest(monitor: DriftMonitor, labels_table: Any, lengths_table: Any, embeddings_table: Any,
            limit_ms: int) -> list[WindowAggregate]:
    """Aggregates of every window in the tables that ends at or before ``limit_ms``
    and is not closed yet in ``monitor`` (partitions summed), in window order.

    Unreadable table entries are logged and skipped.
    """
    w_ms = monitor.window_ms
    out: dict[int, WindowAggregate] = {}

    def window(start_s: float) -> Optional[WindowAggregate]:
        start = int(round(start_s * 1000))
        if start + w_ms > limit_ms or monitor.is_closed(start):
            return None
        agg = out.get(start)
        if agg is None:
            agg = out[start] = WindowAggregate(start, start + w_ms)
        return agg

    def entries(table):
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
    for agg, key, value in entries(lengths_table):
        try:
            _, bucket = json.loads(key)
            agg.categorical(TEXT_LENGTH).add(str(bucket), int(value))
        except (TypeError, ValueError) as exc:
            log.warning("drift: ignoring length table entry %r: %s", key, exc)
    for agg, key, value in entries(embeddings_table):
        try:
            if value.get("n"):
                agg.vector(EMBEDDING).add(value["sum"], int(value["n"]))
        except (AttributeError, KeyError, TypeError, ValueError) as exc:  # e.g. dimension change
            log.warning("drift: ignoring embedding table entry %r: %s", key, exc)
    return [out[s] for s in sorted(out)]
