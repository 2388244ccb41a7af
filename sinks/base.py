"""The sink contract.

Modelled on Quix Streams' ``BatchingSink``: the runner calls :meth:`Sink.write`
with each processed batch and :meth:`Sink.flush` before it commits offsets. A
failed flush blocks the commit, so nothing is acknowledged that was not stored.
A :class:`SinkBackpressureError` makes the runner pause the assigned partitions
for ``retry_after`` seconds and then retry the same batch.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Sequence


class SinkBackpressureError(Exception):
    """The destination is slow or unavailable; retry the flush later.

    Attributes:
        retry_after: seconds to wait (partitions paused) before retrying.
    """

    def __init__(self, message: str, retry_after: float = 1.0):
        super().__init__(message)
        self.retry_after = float(retry_after)


class Sink(ABC):
    """Base class of every sink.

    ``write`` buffers rows (it may flush early when its bounds are hit, and then
    must keep the rows buffered if it raises :class:`SinkBackpressureError`);
    ``flush`` makes every buffered row durable or raises. Both may raise
    :class:`SinkBackpressureError`; any other exception is a permanent failure
    of the rows involved.
    """

    @abstractmethod
    def write(self, batch: Sequence[dict[str, Any]]) -> None:
        """Buffer ``batch`` (rows shaped for the destination)."""

    @abstractmethod
    def flush(self) -> None:
        """Persist all buffered rows; raise to block the offset commit."""

    def discard(self) -> None:
        """Drop every buffered row (the runner dead-lettered their inputs after a
        permanent write/flush failure). Default: nothing."""

    def close(self) -> None:
        """Release connections. Default: nothing."""
