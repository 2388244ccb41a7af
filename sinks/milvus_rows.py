"""Milvus rows: one row per chunk of an ``Embedded`` record, and the collection's limits.

The Milvus sink owns its rows: :func:`chunk_rows` maps a decoded ``Embedded`` record
(``schemas/embedded.avsc``) to rows and validates them against the collection's limits, so a
bad record is dead-lettered on its own (:class:`~conveyor.sinks.base.RowError`) instead of
failing the sink's whole batch. Pure Python (no ``pymilvus`` import).

A row is one chunk of one document/text::

    {"chunk_id": "<doc_id>:<chunk_index>",   # primary key, <= CHUNK_ID_MAX_BYTES
     "doc_id": str,                          # <= DOC_ID_MAX_BYTES
     "kind": "document" | "text",
     "chunk_index": int,
     "filename": str,                        # "" when none, <= FILENAME_MAX_BYTES
     "text": str,                            # <= TEXT_MAX_BYTES (UTF-8)
     "trace_id": str,                        # <= TRACE_ID_MAX_BYTES
     "event_time": int,                      # epoch milliseconds (UTC)
     "vector": list[float]}                  # VECTOR_DIM floats, L2-normalised

VARCHAR limits are in **bytes of UTF-8**: a Milvus server (2.3.5 checked) rejects a
string whose UTF-8 encoding exceeds ``max_length``; Milvus Lite counts characters,
so byte limits are the strict common denominator.
"""
from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from typing import Any

from conveyor.sinks.base import RowError

VECTOR_DIM = 384
"""Dimension of the chunk vectors (all-MiniLM-L6-v2)."""

CHUNK_ID_MAX_BYTES = 256
DOC_ID_MAX_BYTES = 256
KIND_MAX_BYTES = 16
FILENAME_MAX_BYTES = 1024
TEXT_MAX_BYTES = 8192
TRACE_ID_MAX_BYTES = 256

KINDS = ("document", "text")
"""Allowed values of ``kind`` (the Avro ``SourceKind`` enum)."""

VARCHAR_FIELDS: dict[str, int] = {
    "chunk_id": CHUNK_ID_MAX_BYTES,
    "doc_id": DOC_ID_MAX_BYTES,
    "kind": KIND_MAX_BYTES,
    "filename": FILENAME_MAX_BYTES,
    "text": TEXT_MAX_BYTES,
    "trace_id": TRACE_ID_MAX_BYTES,
}
"""VARCHAR field name → ``max_length`` (bytes) in the collection schema."""

INT64_FIELDS = ("chunk_index", "event_time")
VECTOR_FIELD = "vector"
PRIMARY_KEY = "chunk_id"
ROW_FIELDS = tuple(VARCHAR_FIELDS) + INT64_FIELDS + (VECTOR_FIELD,)

_ROW_OVERHEAD_BYTES = 64
"""Rough per-row protocol overhead added by :func:`row_nbytes` (field headers, offsets)."""


def chunk_id(doc_id: str, chunk_index: int) -> str:
    """Deterministic primary key of a chunk: ``"<doc_id>:<chunk_index>"``."""
    return f"{doc_id}:{int(chunk_index)}"


def utf8_len(value: str) -> int:
    """Length of ``value`` in UTF-8 bytes."""
    return len(value.encode("utf-8"))


def truncate_utf8(value: str, max_bytes: int) -> str:
    """Longest prefix of ``value`` whose UTF-8 encoding fits in ``max_bytes`` bytes.

    Never splits a multi-byte character (the cut falls on a character boundary).

    Raises:
        ValueError: ``max_bytes`` is negative.
    """
    if max_bytes < 0:
        raise ValueError("max_bytes must be >= 0")
    data = value.encode("utf-8")
    if len(data) <= max_bytes:
        return value
    # Dropping a partial trailing sequence with errors="ignore" keeps whole characters only.
    return data[:max_bytes].decode("utf-8", errors="ignore")


def row_nbytes(row: Mapping[str, Any]) -> int:
    """Approximate size of ``row`` on the wire, in bytes.

    UTF-8 length of string values, 8 per integer/float scalar, 4 per vector
    component, plus a fixed per-row overhead. Used for the sink's byte bound.
    """
    size = _ROW_OVERHEAD_BYTES
    for value in row.values():
        if isinstance(value, str):
            size += len(value.encode("utf-8"))
        elif isinstance(value, (list, tuple)):
            size += 4 * len(value)
        else:
            size += 8
    return size


def _event_time_ms(value: Any) -> int:
    """Epoch milliseconds from an ``int`` (ms) or a ``datetime`` (naive = UTC)."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return int(value.timestamp() * 1000)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RowError(f"event_time must be epoch milliseconds, got {type(value).__name__}")
    return int(value)


def chunk_rows(record: Mapping[str, Any], dim: int = VECTOR_DIM) -> list[dict[str, Any]]:
    """Rows of every chunk of ``record``, in chunk order.

    Row shape: ``chunk_id`` (``"<doc_id>:<chunk_index>"``, recomputed, never taken from the
    input), ``doc_id``, ``kind``, ``chunk_index`` (int), ``filename`` (``""`` when null, cut to
    1024 UTF-8 bytes), ``text`` (cut to 8192 UTF-8 bytes on a character boundary),
    ``trace_id`` (cut to 256 bytes), ``event_time`` (int, epoch ms, copied from the record)
    and ``vector`` (``dim`` Python floats).

    Args:
        record: a decoded ``Embedded`` record (``schemas/embedded.avsc``).
        dim: expected vector dimension (default 384).

    Raises:
        RowError: no chunks; a chunk vector is not ``dim`` finite floats; an unknown
            ``kind``; a ``doc_id`` that is empty or too long for the 256-byte ``chunk_id``;
            two chunks with the same ``chunk_index``.
        ValueError: ``dim`` is not positive.
    """
    if dim <= 0:
        raise ValueError("dim must be positive")
    doc_id = record.get("doc_id")
    if not isinstance(doc_id, str) or not doc_id:
        raise RowError("record has no doc_id")
    if utf8_len(doc_id) > DOC_ID_MAX_BYTES:
        raise RowError(f"doc_id is longer than {DOC_ID_MAX_BYTES} UTF-8 bytes")
    kind = record.get("kind")
    if kind not in KINDS:
        raise RowError(f"kind must be one of {KINDS}, got {kind!r}")
    chunks = record.get("chunks") or []
    if not chunks:
        raise RowError(f"record {doc_id} has no chunks")
    filename = truncate_utf8(record.get("filename") or "", FILENAME_MAX_BYTES)
    trace_id = truncate_utf8(record.get("trace_id") or doc_id, TRACE_ID_MAX_BYTES)
    event_time = _event_time_ms(record.get("event_time"))

    rows: list[dict[str, Any]] = []
    seen: set[int] = set()
    for position, chunk in enumerate(chunks):
        index = chunk.get("chunk_index", position)
        if isinstance(index, bool) or not isinstance(index, int) or index < 0:
            raise RowError(f"chunk {position} of {doc_id}: bad chunk_index {index!r}")
        if index in seen:
            raise RowError(f"{doc_id}: duplicate chunk_index {index}")
        seen.add(index)
        key = chunk_id(doc_id, index)
        if utf8_len(key) > CHUNK_ID_MAX_BYTES:
            raise RowError(f"chunk_id of {doc_id} is longer than {CHUNK_ID_MAX_BYTES} bytes")
        rows.append({
            "chunk_id": key,
            "doc_id": doc_id,
            "kind": kind,
            "chunk_index": index,
            "filename": filename,
            "text": truncate_utf8(chunk.get("text") or "", TEXT_MAX_BYTES),
            "trace_id": trace_id,
            "event_time": event_time,
            "vector": _vector(chunk.get("vector"), doc_id, index, dim),
        })
    return rows


def _vector(vector: Any, doc_id: str, index: int, dim: int) -> list[float]:
    if isinstance(vector, (str, bytes)) or not hasattr(vector, "__len__") or len(vector) != dim:
        size = len(vector) if hasattr(vector, "__len__") else "no"
        raise RowError(f"chunk {doc_id}:{index}: vector has {size} values, expected {dim}")
    try:
        out = [float(x) for x in vector]
    except (TypeError, ValueError) as exc:
        raise RowError(f"chunk {doc_id}:{index}: vector is not numeric") from exc
    if not all(math.isfinite(x) for x in out):
        raise RowError(f"chunk {doc_id}:{index}: vector has NaN or infinite values")
    return out
