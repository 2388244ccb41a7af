"""The sink contract, for the built-in Milvus sink and third-party sinks alike.

Modelled on Quix Streams' ``BatchingSink``: a sink maps each input record to its own rows
(:meth:`Sink.rows`), the runner calls :meth:`Sink.write` with a processed batch's rows and
:meth:`Sink.flush` before it commits offsets. A failed flush blocks the commit, so nothing
is acknowledged that was not stored. A :class:`SinkBackpressureError` makes the runner pause
the assigned partitions for ``retry_after`` seconds and then retry the same batch.

A third-party sink is a :class:`Sink` subclass registered under the ``conveyor.sinks``
entry-point group (name = its ``name``) and chosen with ``CONVEYOR_VECTOR_SINK``; one that
can also answer similarity queries implements :class:`VectorSearch`, which the ``classify``
stage uses to flag near-duplicates.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

Row = dict[str, Any]


class SinkBackpressureError(Exception):
    """The destination is slow or unavailable; retry the flush later.

    Attributes:
        retry_after: seconds to wait (partitions paused) before retrying.
    """

    def __init__(self, message: str, retry_after: float = 1.0):
        super().__init__(message)
        self.retry_after = float(retry_after)


class SinkUnavailableError(Exception):
    """The destination cannot answer a read now (e.g. a similarity search while it is down).
    Transient (``permanent = False``): the record takes the stage's retry path."""

    permanent = False


class RowError(ValueError):
    """An input record cannot be mapped to this sink's rows (permanent: it is dead-lettered
    alone, never failing its batch)."""


class Sink(ABC):
    """Base class of every sink.

    ``rows`` maps one input record (a decoded Avro dict) to the rows this sink stores, or
    raises :class:`RowError`; ``write`` buffers rows (it may flush early when its bounds are
    hit, and then must keep the rows buffered if it raises :class:`SinkBackpressureError`);
    ``flush`` makes every buffered row durable or raises. Both may raise
    :class:`SinkBackpressureError`; any other exception is a permanent failure of the rows
    involved.
    """

    name: str = "sink"
    """Registry name (``CONVEYOR_VECTOR_SINK``)."""
    version: str = "0.1.0"
    """Reported in dead-letter headers of the stage that writes to it."""

    @classmethod
    def from_settings(cls, settings: Any) -> Sink:
        """A sink configured from Conveyor's settings object (``conveyor.streams.config.settings.Settings``:
        namespace, URIs, tokens).

        Raises:
            NotImplementedError: the sink cannot be built from settings alone.
        """
        raise NotImplementedError(f"{cls.__name__} does not implement from_settings")

    @classmethod
    def single_process(cls, settings: Any) -> bool:
        """Whether only one process may open the sink with these settings (an embedded store
        in a local file): the stages that use it then share one process. Default False."""
        return False

    def rows(self, record: Mapping[str, Any]) -> list[Row]:
        """The rows of one input record.

        Raises:
            RowError: the record cannot be stored (its own dead letter).
        """
        return [dict(record)]

    @abstractmethod
    def write(self, batch: Sequence[Row]) -> None:
        """Buffer ``batch`` (rows from :meth:`rows`)."""

    @abstractmethod
    def flush(self) -> None:
        """Persist all buffered rows; raise to block the offset commit."""

    def discard(self) -> None:  # noqa: B027 - an optional hook, deliberately empty
        """Drop every buffered row (the runner dead-lettered their inputs after a
        permanent write/flush failure). Default: nothing."""

    def ready(self) -> bool:
        """Whether the destination answers now (the stage's readiness probe; keep it under a
        few seconds). Default: True."""
        return True

    def close(self) -> None:  # noqa: B027 - an optional hook, deliberately empty
        """Release connections. Default: nothing."""


@runtime_checkable
class VectorSearch(Protocol):
    """Similarity search over stored document vectors (the ``classify`` stage's near-duplicate
    check). Implemented by :class:`conveyor.sinks.milvus.MilvusSink`; any vector store can."""

    def search_similar(self, vector: Sequence[float], *, kind: str | None = None, exclude_doc_id: str | None = None,
                       limit: int = 5, min_score: float = 0.0) -> list[tuple[str, float]]:
        """``[(doc_id, cosine similarity)]`` of the stored rows most similar to ``vector``
        (one entry per document, best first), at least ``min_score``, at most ``limit``.

        Raises:
            SinkUnavailableError: the store cannot answer now (transient).
        """
        ...
