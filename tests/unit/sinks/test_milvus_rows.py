"""Unit tests of the Milvus sink's row mapping (:mod:`conveyor.sinks.milvus_rows`; pure, no Milvus)."""
from __future__ import annotations

import datetime as dt
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conveyor.sinks.base import RowError
from conveyor.sinks.milvus_rows import (
    FILENAME_MAX_BYTES,
    ROW_FIELDS,
    TEXT_MAX_BYTES,
    VECTOR_DIM,
    chunk_rows,
    row_nbytes,
    truncate_utf8,
)


def _vec(seed: int, dim: int = VECTOR_DIM) -> list[float]:
    raw = [math.sin(seed * 31 + i) for i in range(dim)]
    norm = math.sqrt(sum(x * x for x in raw))
    return [x / norm for x in raw]


def _embedded(doc_id: str = "doc-1", n_chunks: int = 3, **over) -> dict:
    record = {
        "doc_id": doc_id,
        "trace_id": f"trace-{doc_id}",
        "event_time": 1_700_000_000_123,
        "producer": "embed",
        "producer_version": "0.1.0",
        "kind": "document",
        "filename": "invoice.pdf",
        "text_length": 100,
        "ocr_confidence": None,
        "page_count": 1,
        "fields": None,
        "model_name": "all-MiniLM-L6-v2",
        "model_version": "1",
        "model_sha256": "0" * 64,
        "chunks": [
            {"chunk_id": f"{doc_id}:{i}", "chunk_index": i, "text": f"chunk {i} text",
             "token_count": 4, "vector": _vec(i)}
            for i in range(n_chunks)
        ],
        "doc_vector": _vec(99),
    }
    record.update(over)
    return record


def test_the_index_stage_is_named_after_the_stage_and_versioned_by_its_sink():
    from conveyor.sinks.milvus import MilvusSink
    from conveyor.streams.runtime.stages import SinkRows

    p = SinkRows("index", MilvusSink.__new__(MilvusSink))
    assert (p.name, p.version) == ("index", MilvusSink.version)


def test_one_row_per_chunk_with_exact_shape():
    rows = chunk_rows(_embedded(n_chunks=3))
    assert len(rows) == 3
    for i, row in enumerate(rows):
        assert tuple(sorted(row)) == tuple(sorted(ROW_FIELDS))
        assert row["chunk_id"] == f"doc-1:{i}"
        assert row["doc_id"] == "doc-1"
        assert row["kind"] == "document"
        assert row["chunk_index"] == i and type(row["chunk_index"]) is int
        assert row["filename"] == "invoice.pdf"
        assert row["text"] == f"chunk {i} text"
        assert row["trace_id"] == "trace-doc-1"
        assert row["event_time"] == 1_700_000_000_123 and type(row["event_time"]) is int
        assert len(row["vector"]) == VECTOR_DIM
        assert all(type(x) is float for x in row["vector"])
        assert row["vector"] == pytest.approx(_vec(i))


def test_chunk_id_is_recomputed_and_deterministic():
    record = _embedded(n_chunks=2)
    record["chunks"][1]["chunk_id"] = "something-else"
    first = chunk_rows(record)
    second = chunk_rows(record)
    assert [r["chunk_id"] for r in first] == ["doc-1:0", "doc-1:1"]
    assert first == second


def test_text_kind_and_null_filename():
    rows = chunk_rows(_embedded(kind="text", filename=None, n_chunks=1))
    assert rows[0]["kind"] == "text"
    assert rows[0]["filename"] == ""


def test_missing_trace_id_falls_back_to_doc_id():
    rows = chunk_rows(_embedded(trace_id="", n_chunks=1))
    assert rows[0]["trace_id"] == "doc-1"


def test_datetime_event_time_becomes_epoch_ms():
    when = dt.datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=dt.UTC)
    rows = chunk_rows(_embedded(event_time=when, n_chunks=1))
    assert rows[0]["event_time"] == int(when.timestamp() * 1000)


def test_long_text_is_cut_to_the_varchar_bytes_on_a_character_boundary():
    record = _embedded(n_chunks=2)
    record["chunks"][0]["text"] = "é" * 5000          # 2 bytes each: 10000 bytes
    record["chunks"][1]["text"] = "a" + "€" * 4000    # 1 + 3 bytes each: 12001 bytes
    rows = chunk_rows(record)
    for row in rows:
        data = row["text"].encode("utf-8")
        assert len(data) <= TEXT_MAX_BYTES
        data.decode("utf-8")  # whole characters only
    assert rows[0]["text"] == "é" * (TEXT_MAX_BYTES // 2)
    assert rows[1]["text"] == "a" + "€" * ((TEXT_MAX_BYTES - 1) // 3)


def test_text_at_the_limit_is_kept_whole():
    record = _embedded(n_chunks=1)
    record["chunks"][0]["text"] = "x" * TEXT_MAX_BYTES
    assert chunk_rows(record)[0]["text"] == "x" * TEXT_MAX_BYTES


def test_long_filename_is_cut():
    rows = chunk_rows(_embedded(filename="ü" * 2000, n_chunks=1))
    assert len(rows[0]["filename"].encode()) <= FILENAME_MAX_BYTES


def test_truncate_utf8_never_splits_characters():
    s = "a€b😀c"
    for n in range(len(s.encode()) + 2):
        cut = truncate_utf8(s, n)
        assert len(cut.encode()) <= n and s.startswith(cut)
    with pytest.raises(ValueError):
        truncate_utf8("x", -1)


def test_zero_chunks_is_model_input_error():
    with pytest.raises(RowError, match="no chunks"):
        chunk_rows(_embedded(n_chunks=0))


@pytest.mark.parametrize("size", [0, 383, 385, 768])
def test_wrong_vector_size_is_model_input_error(size):
    record = _embedded(n_chunks=2)
    record["chunks"][1]["vector"] = [0.1] * size
    with pytest.raises(RowError, match="expected 384"):
        chunk_rows(record)


@pytest.mark.parametrize("bad", [None, "abc", 3.0])
def test_missing_or_non_list_vector_is_model_input_error(bad):
    record = _embedded(n_chunks=1)
    record["chunks"][0]["vector"] = bad
    with pytest.raises(RowError):
        chunk_rows(record)


def test_non_finite_vector_is_model_input_error():
    record = _embedded(n_chunks=1)
    record["chunks"][0]["vector"][5] = float("nan")
    with pytest.raises(RowError, match="NaN"):
        chunk_rows(record)


def test_custom_dim():
    record = _embedded(n_chunks=1)
    record["chunks"][0]["vector"] = [0.5] * 8
    assert len(chunk_rows(record, dim=8)[0]["vector"]) == 8


def test_duplicate_chunk_index_is_model_input_error():
    record = _embedded(n_chunks=2)
    record["chunks"][1]["chunk_index"] = 0
    with pytest.raises(RowError, match="duplicate"):
        chunk_rows(record)


def test_doc_id_too_long_for_the_primary_key():
    with pytest.raises(RowError):
        chunk_rows(_embedded(doc_id="d" * 256, n_chunks=1))
    rows = chunk_rows(_embedded(doc_id="d" * 200, n_chunks=1))
    assert rows[0]["chunk_id"] == "d" * 200 + ":0"


@pytest.mark.parametrize("over", [{"kind": "audio"}, {"doc_id": ""}, {"event_time": "yesterday"}])
def test_invalid_envelope_is_model_input_error(over):
    with pytest.raises(RowError):
        chunk_rows(_embedded(n_chunks=1, **over))


def test_the_index_stage_isolates_bad_records():
    from conveyor.sinks.milvus import MilvusSink
    from conveyor.streams.runtime.stages import SinkRows

    sink = MilvusSink.__new__(MilvusSink)  # rows() needs only the dimension: no connection
    sink.dim = VECTOR_DIM
    outcomes = SinkRows("index", sink).process_batch([_embedded("a", 2), _embedded("b", 0), _embedded("c", 1)])
    assert [len(o) for o in outcomes if isinstance(o, list)] == [2, 1]
    assert isinstance(outcomes[1], RowError)


def test_row_nbytes_counts_vector_and_utf8_text():
    row = chunk_rows(_embedded(n_chunks=1))[0]
    base = row_nbytes(row)
    assert base >= VECTOR_DIM * 4
    assert row_nbytes({**row, "text": row["text"] + "é"}) == base + 2


def test_row_module_imports_no_milvus_or_kafka():
    code = ("import sys, conveyor.sinks.milvus_rows; "
            "bad = [m for m in ('pymilvus', 'milvus_lite', 'grpc', 'confluent_kafka', 'faust') if m in sys.modules]; "
            "assert not bad, bad")
    repo = Path(__file__).resolve().parents[3]
    subprocess.run([sys.executable, "-c", code], cwd=repo, check=True,
                   env={**os.environ, "PYTHONPATH": str(repo)})
