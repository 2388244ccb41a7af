"""Event-time watermark of the drift monitor: :class:`StreamClock`.

Pure Python (no Kafka, no faust). :meth:`conveyor.streams.drift.DriftMonitor.close_windows`
closes the windows that this watermark has passed; :mod:`conveyor.streams.drift` feeds it
one source per ``(topic, partition)``.
"""
from __future__ import annotations

import time
from typing import Any, Optional


def epoch_ms() -> int:
    """Wall clock: milliseconds since the Unix epoch."""
    return int(time.time() * 1000)


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
        wall = epoch_ms() if wall_ms is None else int(wall_ms)
        self._last_arrival[source] = max(self._last_arrival.get(source, wall), wall)

    def observe(self, event_ms: int, wall_ms: Optional[int] = None, source: Any = None) -> None:
        """Record that ``source`` delivered event time ``event_ms`` at ``wall_ms`` (default now)."""
        wall = epoch_ms() if wall_ms is None else int(wall_ms)
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
        wall = epoch_ms() if wall_ms is None else int(wall_ms)
        active = [self._max_event.get(s) for s, t in self._last_arrival.items() if wall - t <= self.idle_ms]
        delivered = [m for m in active if m is not None]
        if len(delivered) < len(active):
            return self._watermark  # a registered source has not delivered yet: hold
        if delivered:
            mark = min(delivered)
        else:
            last = self._last_record_ms or wall
            mark = max(self._max_event.values()) + max(0, wall - last - self.idle_ms)
        if self._watermark is None or mark > self._watermark:
            self._watermark = mark
        return self._watermark
