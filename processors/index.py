"""The ``index`` stage: Embedded records → Milvus chunk rows.

Pure logic: one :data:`~sinks.milvus_schema` row per chunk, validated against the
collection's limits here so that a bad record is dead-lettered on its own instead
of failing the sink's whole batch. The runner hands the rows to
:class:`sinks.milvus.MilvusSink`, which upserts them by ``chunk_id``.
"""
from __future__ import annotations

import datetime as dt
import math
from typing import Any

from processors.base import Processor, Record
from processors.errors import ModelInputError
from sinks.milvus_schema import (
    CHUNK_ID_MAX_BYTES,
    DOC_ID_MAX_BYTES,
    FILENAME_MAX_BYTES,
    KINDS,
    TEXT_MAX_BYTES,
    TRACE_ID_MAX_BYTES,
    VECTOR_DIM,
    chunk_id,
    truncate_utf8,
    utf8_len,
)

__all__ = ["IndexProcessor"]


def _event_time_ms(value: Any) -> int:
    """Epoch milliseconds from an ``int`` (ms) or a ``datetime`` (naive = UTC)."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        return int(value.timestamp() * 1000)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ModelInputError(f"event_time must be epoch milliseconds, got {type(value).__name__}")
    return int(value)


class IndexProcessor(Processor):
    """Turns an ``Embedded`` record into one Milvus row per chunk.

    Row shape (see :mod:`sinks.milvus_schema`): ``chunk_id`` (``"<doc_id>:<chunk_index>"``,
    recomputed, never taken from the input), ``doc_id``, ``kind``, ``chunk_index`` (int),
    ``filename`` (``""`` when null, cut to 1024 UTF-8 bytes), ``text`` (cut to 8192
    UTF-8 bytes on a character boundary), ``trace_id`` (cut to 256 bytes),
    ``event_time`` (int, epoch ms, copied from the record) and ``vector``
    (``dim`` Python floats).

    Args:
        dim: expected vector dimension (default 384).
    """

    name = "index"
    version = "0.1.0"

    def __init__(self, dim: int = VECTOR_DIM):
        if dim <= 0:
            raise ValueError("dim must be positive")
        self.dim = int(dim)

    def process_one(self, record: Record) -> list[Record]:
        """Rows of every chunk of ``record``, in chunk order.

        Args:
            record: a decoded ``Embedded`` record (``schemas/embedded.avsc``).

        Returns:
            One row dict per chunk.

        Raises:
            ModelInputError: no chunks; a chunk vector is not ``dim`` finite floats;
                an unknown ``kind``; a ``doc_id`` that is empty or too long for the
                256-byte ``chunk_id``; two chunks with the same ``chunk_index``.
        """
        doc_id = record.get("doc_id")
        if not isinstance(doc_id, str) or not doc_id:
            raise ModelInputError("record has no doc_id")
        if utf8_len(doc_id) > DOC_ID_MAX_BYTES:
            raise ModelInputError(f"doc_id is longer than {DOC_ID_MAX_BYTES} UTF-8 bytes")
        kind = record.get("kind")
        if kind not in KINDS:
            raise ModelInputError(f"kind must be one of {KINDS}, got {kind!r}")
        chunks = record.get("chunks") or []
        if not chunks:
            raise ModelInputError(f"record {doc_id} has no chunks")
        filename = truncate_utf8(record.get("filename") or "", FILENAME_MAX_BYTES)
        trace_id = truncate_utf8(record.get("trace_id") or doc_id, TRACE_ID_MAX_BYTES)
        event_time = _event_time_ms(record.get("event_time"))

        rows: list[Record] = []
        seen: set[int] = set()
        for position, chunk in enumerate(chunks):
            index = chunk.get("chunk_index", position)
            if isinstance(index, bool) or not isinstance(index, int) or index < 0:
                raise ModelInputError(f"chunk {position} of {doc_id}: bad chunk_index {index!r}")
            if index in seen:
                raise ModelInputError(f"{doc_id}: duplicate chunk_index {index}")
            seen.add(index)
            key = chunk_id(doc_id, index)
            if utf8_len(key) > CHUNK_ID_MAX_BYTES:
                raise ModelInputError(f"chunk_id of {doc_id} is longer than {CHUNK_ID_MAX_BYTES} bytes")
            rows.append({
                "chunk_id": key,
                "doc_id": doc_id,
                "kind": kind,
                "chunk_index": index,
                "filename": filename,
                "text": truncate_utf8(chunk.get("text") or "", TEXT_MAX_BYTES),
                "trace_id": trace_id,
                "event_time": event_time,
                "vector": self._vector(chunk.get("vector"), doc_id, index),
            })
        return rows

    def _vector(self, vector: Any, doc_id: str, index: int) -> list[float]:
        if isinstance(vector, (str, bytes)) or not hasattr(vector, "__len__") or len(vector) != self.dim:
            size = len(vector) if hasattr(vector, "__len__") else "no"
            raise ModelInputError(f"chunk {doc_id}:{index}: vector has {size} values, expected {self.dim}")
        try:
            out = [float(x) for x in vector]
        except (TypeError, ValueError) as exc:
            raise ModelInputError(f"chunk {doc_id}:{index}: vector is not numeric") from exc
        if not all(math.isfinite(x) for x in out):
            raise ModelInputError(f"chunk {doc_id}:{index}: vector has NaN or infinite values")
        return out
