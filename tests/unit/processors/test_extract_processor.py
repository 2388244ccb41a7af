"""ExtractProcessor: Document records in, Extracted records out (no Kafka)."""
from __future__ import annotations

import hashlib

import fastavro
import pytest

from conveyor.processors.errors import CorruptDocumentError, EmptyDocumentError, TransientError
from conveyor.processors.extract import ExtractProcessor
from conveyor.schemas import schema_json


@pytest.fixture(scope="module")
def extracted_schema():
    return fastavro.parse_schema(schema_json("extracted.avsc"))


@pytest.fixture(scope="module")
def invoice(extract_fixture) -> bytes:
    return extract_fixture("NetpresseInvoice.pdf")


def _document(data: bytes | None, *, sha256: str | None = None, blob_uri: str | None = None, doc_id="doc-1") -> dict:
    return {
        "doc_id": doc_id,
        "trace_id": f"trace-{doc_id}",
        "event_time": 0,
        "producer": "cli",
        "producer_version": "0.1.0",
        "filename": "NetpresseInvoice.jpg",  # wrong extension on purpose
        "content_type": "image/jpeg",
        "size_bytes": len(data or b""),
        "sha256": sha256 if sha256 is not None else hashlib.sha256(data or b"").hexdigest(),
        "content": None if blob_uri else data,
        "blob_uri": blob_uri,
        "attributes": {},
    }


def test_inline_document_becomes_a_valid_extracted_record(invoice, extracted_schema):
    (out,) = ExtractProcessor().process_one(_document(invoice))

    assert fastavro.validation.validate(out, extracted_schema, raise_errors=True)
    assert set(out) == {field["name"] for field in schema_json("extracted.avsc")["fields"]}
    assert (out["doc_id"], out["trace_id"], out["producer"], out["producer_version"]) == (
        "doc-1", "trace-doc-1", "extract", "0.1.0")
    assert out["filename"] == "NetpresseInvoice.jpg"
    assert out["content_type"] == "application/pdf"  # detected from the bytes, not the name
    assert out["sha256"] == hashlib.sha256(invoice).hexdigest()
    assert out["page_count"] == 1 and out["pages"][0]["method"] == "text_layer"
    fields = out["fields"]  # the key-field model's total: emitted, or withheld with its candidate
    assert fields["total_amount"] == "56.02" or fields["withheld"]["total_amount"].endswith("candidate '56.02'")


def test_blob_reader_resolves_blob_uri(invoice):
    calls = []

    def reader(uri: str) -> bytes:
        calls.append(uri)
        return invoice

    record = _document(invoice, blob_uri="file:///blobs/ab/abcdef")
    (out,) = ExtractProcessor(blob_reader=reader).process_one(record)
    assert calls == ["file:///blobs/ab/abcdef"]
    assert "Total TTC" in out["text"]


def test_sha256_mismatch_is_corrupt(invoice):
    with pytest.raises(CorruptDocumentError, match="sha256 mismatch"):
        ExtractProcessor().process_one(_document(invoice, sha256="0" * 64))


def test_neither_content_nor_blob_is_empty():
    record = _document(None)
    with pytest.raises(EmptyDocumentError, match="neither content nor blob_uri"):
        ExtractProcessor().process_one(record)


def test_blob_without_reader_or_missing_blob_is_empty(invoice):
    record = _document(invoice, blob_uri="file:///blobs/missing")
    with pytest.raises(EmptyDocumentError, match="no blob_reader"):
        ExtractProcessor().process_one(record)

    def missing(uri):
        raise FileNotFoundError(uri)

    with pytest.raises(EmptyDocumentError, match="not found"):
        ExtractProcessor(blob_reader=missing).process_one(record)


def test_blob_store_io_error_is_transient(invoice):
    def flaky(uri):
        raise OSError("NFS timeout")

    with pytest.raises(TransientError, match="NFS timeout"):
        ExtractProcessor(blob_reader=flaky).process_one(_document(invoice, blob_uri="file:///blobs/x"))


def test_batch_keeps_order_and_isolates_failures(invoice):
    outcomes = ExtractProcessor().process_batch([
        _document(invoice, doc_id="good"),
        _document(invoice, sha256="f" * 64, doc_id="tampered"),
        _document(b"", doc_id="empty"),
    ])
    assert outcomes[0][0]["doc_id"] == "good"
    assert isinstance(outcomes[1], CorruptDocumentError)
    assert isinstance(outcomes[2], EmptyDocumentError)


def test_processor_limits_are_configurable(make_blank_pdf):
    from conveyor.processors.errors import DocumentLimitError

    data = make_blank_pdf(3)
    with pytest.raises(DocumentLimitError):
        ExtractProcessor(max_pages=2).process_one(_document(data))
