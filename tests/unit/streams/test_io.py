import hashlib

import pytest

from conveyor.processors.errors import CorruptDocumentError
from conveyor.streams.config import env
from conveyor.streams.config.settings import Settings
from conveyor.streams.kafka.blobstore import BlobStore
from conveyor.streams.kafka.io import abbreviate, document_record, iter_files, read_texts_csv
from conveyor.tools.accounting import Ledger


def test_small_documents_travel_inline_large_ones_by_blob_reference(tmp_path):
    s = Settings.from_env({env.HOME: str(tmp_path), env.INLINE_MAX_BYTES: "100"})
    small = document_record(b"%PDF-1.4 tiny", "a.pdf", s)
    assert small["content"] == b"%PDF-1.4 tiny" and small["blob_uri"] is None
    assert small["content_type"] == "application/pdf"
    big_bytes = b"x" * 1000
    big = document_record(big_bytes, "b.png", s)
    assert big["content"] is None and big["blob_uri"].startswith("file://")
    assert big["sha256"] == hashlib.sha256(big_bytes).hexdigest()
    assert BlobStore(s.blob_dir).read(big["blob_uri"]) == big_bytes
    outside = tmp_path / "secret.txt"
    outside.write_text("not a blob")
    with pytest.raises(CorruptDocumentError, match="outside the blob store"):
        BlobStore(s.blob_dir).read(outside.as_uri())


def test_missing_paths_are_reported_not_skipped(tmp_path):
    (tmp_path / "d" / "sub").mkdir(parents=True)
    (tmp_path / "d" / "one.txt").write_text("1")
    (tmp_path / "d" / "sub" / "two.txt").write_text("2")
    (tmp_path / "d" / "dangling.pdf").symlink_to(tmp_path / "gone.pdf")
    found = list(iter_files([tmp_path / "d", tmp_path / "nope.pdf"]))
    ok = [p for p, err in found if err is None]
    errors = {p.name: err for p, err in found if err is not None}
    assert ok == [tmp_path / "d" / "one.txt", tmp_path / "d" / "sub" / "two.txt"]
    assert "not a regular file" in errors["dangling.pdf"]
    assert "no such file" in errors["nope.pdf"]


def test_csv_reading_checks_columns(tmp_path):
    f = tmp_path / "t.csv"
    f.write_text("id,text\n1,hello\n2,world\n3,again\n")
    assert list(read_texts_csv(f, "text", "id", limit=2)) == [("1", "hello"), ("2", "world")]
    try:
        list(read_texts_csv(f, "body"))
        raise AssertionError("expected KeyError")
    except KeyError as exc:
        assert "body" in str(exc)


def test_abbreviate_shortens_vectors_and_bytes():
    out = abbreviate({"vector": [0.1] * 384, "content": b"\x00" * 500, "labels": ["a", "b"]})
    assert out["vector"][-1] == "... 384 floats" and len(out["vector"]) == 5
    assert out["content"]["bytes"] == 500
    assert out["labels"] == ["a", "b"]


def test_ledger_counts_missing_duplicates_and_strangers():
    ledger = Ledger({"a", "b", "c"})
    ledger.add_prediction("a", {})
    ledger.add_dead_letter("b", {})
    ledger.add_prediction("b", {})
    ledger.add_prediction("zzz", {})
    ledger.add_side_dead_letter("a", {"processor": "index"})  # reported, not a second result
    assert ledger.missing == {"c"}
    assert ledger.side_dead_letters == {"a": [{"processor": "index"}]}
    assert ledger.duplicated == {"b"}
    assert "a" not in ledger.duplicated
    assert ledger.unexpected == 1
