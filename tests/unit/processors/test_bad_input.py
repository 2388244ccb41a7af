"""Hostile inputs to the processors that first see raw bytes and raw texts (extract, embed):
each case ends in one exact, permanent error class whose message says why — or, for a
wrong file name, in a normal result. Damaged real files from the shared corpus are in
``test_extract_bad_files.py``; undecodable record values in ``tests/unit/streams``.
"""
from __future__ import annotations

import hashlib
import time

import numpy as np
import pytest

from conveyor.processors.embed import EmbedProcessor
from conveyor.processors.errors import (
    ConveyorError,
    CorruptDocumentError,
    DocumentLimitError,
    EmptyDocumentError,
    EncryptedDocumentError,
    ModelInputError,
    TextLimitError,
    UnsupportedDocumentError,
)
from conveyor.processors.extract import ExtractProcessor
from conveyor.processors.extract.ocr import ENGINE_MAX_RATIO, _pad_for_engine, get_engine
from conveyor.processors.limits import MAX_PAGES, MAX_TEXT_CHARS
from tests.hostile import (
    blank_pdf,
    encrypted_pdf,
    gif_header,
    jpeg_claiming,
    not_avro,
    png_header,
    text_image,
    text_pdf,
)


def _document(data: bytes, filename: str, content_type: str | None = None) -> dict:
    """A well-formed ``Document`` record carrying ``data`` inline."""
    return {"doc_id": "doc-bad", "trace_id": "trace-bad", "event_time": 0, "producer": "test",
            "producer_version": "0", "filename": filename, "content_type": content_type,
            "size_bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(), "content": data,
            "blob_uri": None, "attributes": {}}


def _refused(processor, record: dict) -> ConveyorError:
    """The error ``processor`` raises for ``record`` (which must be a permanent ConveyorError)."""
    with pytest.raises(ConveyorError) as caught:
        processor.process_one(record)
    assert caught.value.permanent, caught.value
    return caught.value


# (case, bytes, file name, declared type, error class, words the message must contain)
EXTRACT_CASES = [
    ("empty file", lambda: b"", "scan.pdf", "application/pdf", EmptyDocumentError, "'scan.pdf' has no bytes"),
    ("random bytes named .pdf", lambda: not_avro(2048, seed=7), "invoice.pdf", "application/pdf",
     UnsupportedDocumentError, "unrecognised file type for 'invoice.pdf' (declared application/pdf"),
    ("PNG signature then junk", lambda: b"\x89PNG\r\n\x1a\n" + not_avro(200, seed=3), "photo.png", "image/png",
     CorruptDocumentError, "cannot decode PNG data"),
    ("PNG header claiming 100000 x 100000", lambda: png_header(100_000, 100_000), "bomb.png", "image/png",
     DocumentLimitError, "decompression-bomb"),
    ("GIF claiming 65535 x 65535", lambda: gif_header(65_535, 65_535), "bomb.gif", "image/gif",
     DocumentLimitError, "decompression-bomb"),
    ("JPEG claiming 60000 x 60000", lambda: jpeg_claiming(60_000, 60_000), "bomb.jpg", "image/jpeg",
     DocumentLimitError, "decompression-bomb"),
    ("PNG of 10000 x 7000 (over MAX_PIXELS)", lambda: png_header(10_000, 7_000), "big.png", "image/png",
     DocumentLimitError, "70,000,000 pixels, more than the limit of 60,000,000"),
    ("PDF of 10,000 pages", lambda: blank_pdf(10_000), "huge.pdf", "application/pdf",
     DocumentLimitError, f"10000 pages, more than the limit of {MAX_PAGES}"),
    ("password-protected PDF", encrypted_pdf, "locked.pdf", "application/pdf",
     EncryptedDocumentError, "password-protected"),
    ("PDF cut in half", lambda: text_pdf()[:150], "cut.pdf", "application/pdf",
     CorruptDocumentError, "damaged or invalid PDF"),
    ("blank PDF pages", lambda: blank_pdf(3), "blank.pdf", "application/pdf",
     EmptyDocumentError, "no text found in 'blank.pdf' (PDF, 3 page(s))"),
]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("case, make, filename, declared, error, words", EXTRACT_CASES,
                         ids=[c[0] for c in EXTRACT_CASES])
def test_extract_refuses_hostile_documents(case, make, filename, declared, error, words):
    started = time.monotonic()
    exc = _refused(ExtractProcessor(), _document(make(), filename, declared))
    assert type(exc) is error, f"{case}: {type(exc).__name__}: {exc}"
    assert words in str(exc), str(exc)
    assert time.monotonic() - started < 20, "limits must be checked before the expensive work"


def test_document_with_more_text_than_the_limit_is_refused():
    exc = _refused(ExtractProcessor(max_text_chars=30), _document(text_pdf(), "long.pdf"))
    assert type(exc) is DocumentLimitError
    assert "'long.pdf' (PDF, 1 page(s)) has 43 characters of text, more than the limit of 30" in str(exc)


def test_pdf_named_png_is_extracted_as_a_pdf():
    (out,) = ExtractProcessor().process_one(_document(text_pdf(), "scan.png", "image/png"))
    assert out["content_type"] == "application/pdf" and out["filename"] == "scan.png"
    assert out["pages"][0]["method"] == "text_layer" and "Invoice 42" in out["text"]


@pytest.mark.timeout(60)
def test_jpeg_named_pdf_is_ocred_as_a_jpeg():
    (out,) = ExtractProcessor().process_one(_document(text_image("JPEG"), "invoice.pdf", "application/pdf"))
    assert out["content_type"] == "image/jpeg" and out["filename"] == "invoice.pdf"
    assert out["pages"][0]["method"] == "ocr" and "INVOICE" in out["text"]


# ------------------------------------------------------------------ OCR engine input bound

@pytest.mark.parametrize("shape", [(3, 4000), (4000, 3), (2, 2), (20, 200), (29, 3999), (1200, 900)])
def test_thin_strips_cannot_blow_up_the_ocr_engine(shape):
    """RapidOCR upscales thin strips (a 3 x 4000 page became a 4.5 GiB tensor); padded
    first, the detector's input stays within 736 x (736 x 8) px, whatever the shape."""
    engine = get_engine()
    page = _pad_for_engine(np.zeros(shape + (3,), dtype=np.uint8))
    assert page.shape[:2] >= shape and max(page.shape[:2]) <= ENGINE_MAX_RATIO * min(page.shape[:2])
    img, _, _ = engine.preprocess(page)  # RapidOCR's own steps, without running a model
    img, _ = engine.maybe_add_letterbox(img, {})
    det = engine.text_det.get_preprocess(max(img.shape[:2])).resize(img)
    assert det.shape[0] * det.shape[1] <= 736 * 736 * ENGINE_MAX_RATIO * 1.05, det.shape


# ------------------------------------------------------------------ embed: raw texts

@pytest.fixture(scope="module")
def embed() -> EmbedProcessor:
    return EmbedProcessor()


def _text(text: str) -> dict:
    return {"doc_id": "txt-bad", "trace_id": "trace-txt", "event_time": 0, "producer": "test",
            "producer_version": "0", "text": text, "source": None, "attributes": {}}


def test_text_over_the_limit_is_refused_before_tokenizing(embed):
    started = time.monotonic()
    (outcome,) = embed.process_batch([_text("a" * (MAX_TEXT_CHARS + 1))])
    assert type(outcome) is TextLimitError and outcome.permanent
    assert isinstance(outcome, ModelInputError)
    assert f"text 'txt-bad' has {MAX_TEXT_CHARS + 1:,} characters, more than the limit of {MAX_TEXT_CHARS:,}" in str(outcome)
    assert time.monotonic() - started < 2.0


def test_text_limit_is_inclusive_and_applies_to_documents_too(embed):
    limited = EmbedProcessor(embed.embedder, max_text_chars=40)
    document = {**_text("x" * 41), "pages": [], "page_count": 0, "fields": None, "filename": "a.pdf"}
    at_limit, over, doc_over = limited.process_batch([_text("card " * 8), _text("card " * 8 + "!"), document])
    assert at_limit[0]["text_length"] == 40
    assert type(over) is TextLimitError and "41 characters, more than the limit of 40" in str(over)
    assert type(doc_over) is TextLimitError and str(doc_over).startswith("document 'txt-bad'")


@pytest.mark.parametrize("text", ["", "   \n\t "])
def test_empty_text_is_a_model_input_error(embed, text):
    (outcome,) = embed.process_batch([_text(text)])
    assert type(outcome) is ModelInputError and "has no text to embed" in str(outcome)
