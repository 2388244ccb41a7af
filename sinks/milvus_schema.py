"""Shape of a Milvus chunk row, shared by the ``index`` processor and :mod:`sinks.milvus`.

Pure Python (no ``pymilvus`` import), so processors can validate rows against the
collection's limits without depending on a Milvus client.

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

from typing import Any, Mapping

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
