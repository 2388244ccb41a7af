"""Unit tests of the embed stage with the real int8 all-MiniLM-L6-v2 model."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from conveyor.processors.embed import EmbedProcessor, doc_vector, embed_texts_as_documents
from conveyor.processors.embed.chunking import chunk_text
from conveyor.processors.embed.model import MODEL_SHA256, MiniLMEmbedder, default_model_path
from conveyor.processors.errors import ModelInputError, ModelIntegrityError
from conveyor.schemas import schema_json

REPO = Path(__file__).resolve().parents[3]

LONG_TEXT = " ".join(
    f"Paragraph {i}: the customer reports that the card payment of {i * 7}.50 EUR was declined "
    f"at the supermarket although the balance was sufficient, and asks for a refund of the fee."
    for i in range(40)
)


@pytest.fixture(scope="module")
def embedder() -> MiniLMEmbedder:
    return MiniLMEmbedder(intra_op_threads=2)


@pytest.fixture(scope="module")
def processor(embedder) -> EmbedProcessor:
    return EmbedProcessor(embedder, overlap=32)


def _text_record(doc_id: str, text: str) -> dict:
    return {
        "doc_id": doc_id,
        "trace_id": f"trace-{doc_id}",
        "event_time": 0,
        "producer": "cli",
        "producer_version": "0",
        "text": text,
        "source": None,
        "attributes": {},
    }


def _extracted_record(doc_id: str) -> dict:
    return {
        "doc_id": doc_id,
        "trace_id": doc_id,
        "event_time": 0,
        "producer": "extract",
        "producer_version": "0.1.0",
        "filename": "receipt.jpg",
        "content_type": "image/jpeg",
        "sha256": "0" * 64,
        "text": "LIDL\nMilch 1,29\nBrot 2,49\nSUMME EUR 3,78\n02.03.2020",
        "pages": [
            {"page_number": 1, "text": "LIDL Milch", "method": "ocr", "ocr_confidence": 0.9},
            {"page_number": 2, "text": "SUMME 3,78", "method": "ocr", "ocr_confidence": 0.8},
            {"page_number": 3, "text": "x", "method": "text_layer", "ocr_confidence": None},
        ],
        "page_count": 3,
        "fields": {
            "dates": ["2020-03-02"],
            "total_amount": "3.78",
            "currency": "EUR",
            "document_number": None,
            "vendor": "LIDL",
        },
    }


def test_model_identity(embedder):
    assert embedder.name == "all-MiniLM-L6-v2-int8"
    assert embedder.sha256 == MODEL_SHA256
    assert embedder.version


def test_vectors_are_384d_unit_norm(embedder):
    v = embedder.embed(["How do I activate my card?", "hello", "x " * 400])
    assert v.shape == (3, 384)
    assert v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert embedder.embed([]).shape == (0, 384)


def test_order_and_batching_do_not_change_vectors(embedder):
    texts = ["short", "a much longer sentence about a declined card payment abroad", "medium length text"]
    a = embedder.embed(texts, batch_size=1)
    b = embedder.embed(texts, batch_size=32)
    c = embedder.embed(texts[::-1], batch_size=2)[::-1]
    np.testing.assert_allclose(a, b, atol=1e-5)
    np.testing.assert_allclose(a, c, atol=1e-5)


def test_paraphrases_are_closer_than_unrelated(embedder):
    a, b, c, d = embedder.embed(
        [
            "My card has not arrived yet.",
            "I am still waiting for my new card to be delivered.",
            "The weather in Lisbon is sunny today.",
            "What is the exchange rate for US dollars?",
        ]
    )
    para = float(a @ b)
    assert para > float(a @ c) + 0.3
    assert para > float(a @ d) + 0.2


def test_long_text_is_chunked_within_limits(embedder):
    chunks = chunk_text(LONG_TEXT, embedder.tokenizer, overlap=32)
    assert len(chunks) >= 3
    assert [c.chunk_index for c in chunks] == list(range(len(chunks)))
    for c in chunks:
        assert c.token_count <= 256
        # the chunk text (sliced by char offsets) re-tokenizes to the same count
        assert embedder.count_tokens(c.text) == c.token_count
        assert LONG_TEXT[c.start_char : c.end_char] == c.text
    # consecutive chunks overlap
    for prev, nxt in zip(chunks, chunks[1:]):
        assert nxt.start_char < prev.end_char
    assert chunks[0].start_char == 0 and chunks[-1].end_char == len(LONG_TEXT)
    # short text: one chunk equal to the (stripped) text
    one = chunk_text("  Where is my card?  ", embedder.tokenizer)
    assert len(one) == 1 and one[0].text == "Where is my card?" and one[0].token_count == 7


def test_chunking_rejects_empty_text(embedder):
    for bad in ("", "   \n\t "):
        with pytest.raises(ModelInputError):
            chunk_text(bad, embedder.tokenizer)


def test_long_text_record_has_several_deterministic_chunks(processor):
    rec = _text_record("t-long", LONG_TEXT)
    out1 = processor.process_batch([rec])[0]
    out2 = processor.process_batch([rec])[0]
    assert isinstance(out1, list) and len(out1) == 1
    e1, e2 = out1[0], out2[0]
    assert len(e1["chunks"]) >= 3
    assert [c["chunk_id"] for c in e1["chunks"]] == [f"t-long:{i}" for i in range(len(e1["chunks"]))]
    assert [c["chunk_id"] for c in e1["chunks"]] == [c["chunk_id"] for c in e2["chunks"]]
    assert all(c["token_count"] <= 256 for c in e1["chunks"])
    vecs = np.array([c["vector"] for c in e1["chunks"]], dtype=np.float32)
    np.testing.assert_allclose(np.array(e1["doc_vector"]), doc_vector(vecs), atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(e1["doc_vector"]), 1.0, atol=1e-5)
    assert e1["kind"] == "text" and e1["text_length"] == len(LONG_TEXT) and e1["page_count"] == 0
    assert e1["fields"] is None and e1["filename"] is None and e1["ocr_confidence"] is None
    assert e1["trace_id"] == "trace-t-long" and e1["producer"] == "embed"
    # the helper used by training scripts gives the same doc vector
    np.testing.assert_allclose(
        embed_texts_as_documents(processor.embedder, [LONG_TEXT])[0], np.array(e1["doc_vector"]), atol=1e-5
    )


def test_bad_record_fails_alone(processor):
    records = [
        _text_record("ok-1", "I want to top up my account"),
        _text_record("empty", "   "),
        _extracted_record("doc-1"),
        {"doc_id": "weird", "trace_id": "weird"},
    ]
    outcomes = processor.process_batch(records)
    assert len(outcomes) == 4
    assert isinstance(outcomes[1], ModelInputError)
    assert isinstance(outcomes[3], ModelInputError)
    assert isinstance(outcomes[0], list) and outcomes[0][0]["doc_id"] == "ok-1"
    doc = outcomes[2][0]
    assert doc["kind"] == "document"
    assert doc["filename"] == "receipt.jpg"
    assert doc["page_count"] == 3
    assert doc["ocr_confidence"] == pytest.approx(0.85)
    assert doc["fields"]["total_amount"] == "3.78"
    assert doc["chunks"][0]["chunk_id"] == "doc-1:0"
    assert all(isinstance(x, float) for x in doc["doc_vector"])
    assert len(doc["doc_vector"]) == 384


def test_outputs_validate_against_embedded_schema(processor):
    fastavro = pytest.importorskip("fastavro")
    schema = fastavro.parse_schema(schema_json("embedded.avsc"))
    outcomes = processor.process_batch([_text_record("a", "card declined"), _extracted_record("b")])
    for outcome in outcomes:
        assert fastavro.validation.validate(outcome[0], schema, raise_errors=True)


def test_sha256_mismatch_raises(tmp_path):
    bad = tmp_path / "model.onnx"
    shutil.copyfile(default_model_path(), bad)
    with open(bad, "r+b") as fh:
        fh.seek(1000)
        byte = fh.read(1)
        fh.seek(1000)
        fh.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(ModelIntegrityError):
        MiniLMEmbedder(model_path=bad)
