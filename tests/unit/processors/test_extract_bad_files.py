"""Damaged and odd real files from ../shared/corpus/bad_and_edge_files.

Each one either extracts or raises the named ConveyorError subclass with a
clear message: never another exception type, never a hang. These files may
not ship with the project (licences), so they are read from the shared corpus
and the tests skip when it is absent.
"""
from __future__ import annotations

import pytest

from conveyor.processors.errors import (
    ConveyorError,
    CorruptDocumentError,
    EmptyDocumentError,
    UnsupportedDocumentError,
)
from conveyor.processors.extract import extract_bytes

# (path under bad_and_edge_files, expected error class, words expected in the message)
FAILING = [
    ("pillow/truncated_jpeg.jpg", CorruptDocumentError, "truncated"),
    ("pillow/broken.png", CorruptDocumentError, "cannot decode PNG"),
    ("mindee/receipt.heic", UnsupportedDocumentError, "HEIF"),
    ("ocrmypdf/invalid.pdf", CorruptDocumentError, "invalid PDF"),
    ("mindee/blank.pdf", EmptyDocumentError, "no text found"),  # 10 blank pages
    ("mindee/blank_1.pdf", EmptyDocumentError, "no text found"),
    ("ocrmypdf/no_contents.pdf", EmptyDocumentError, "no text found"),  # page without /Contents
    ("ocrmypdf/livecycle.pdf", EmptyDocumentError, "no text found"),  # claims XFA, has none
    ("ocrmypdf/docinfo_latin1_key.pdf", EmptyDocumentError, "no text found"),
]

# Files that need OCR before they can be judged.
FAILING_AFTER_OCR = [
    ("mindee/not_blank_image_only.pdf", EmptyDocumentError, "no text found"),  # a photo of a cat
    ("mindee/broken_fixable.pdf", EmptyDocumentError, "no text found"),  # junk header, same cat
]

# (path, method of page 1, text expected)
EXTRACTING = [
    ("mindee/XfaForm.pdf", "text_layer", "Hello World!!!"),  # XFA template text, not the placeholder
    ("ocrmypdf/missing_docinfo.pdf", "text_layer", "This file has no /DocumentInfo block"),
]

EXTRACTING_AFTER_OCR = [
    ("pillow/junk_jpeg_header.jpg", "ocr", "362569"),  # valid JPEG, a photo with a watermark
    ("ocrmypdf/type3_font_nomapping.pdf", "ocr", ""),  # text layer is unmapped glyph codes
    ("mindee/receipt.tif", "ocr", "Clachan"),
    ("mindee/receipt.webp", "ocr", "Clachan"),
]


def _read(corpus_dir, path: str) -> bytes:
    file = corpus_dir / "bad_and_edge_files" / path
    if not file.is_file():
        pytest.skip(f"{file} not in the shared corpus")
    return file.read_bytes()


def _check_failure(data: bytes, path: str, error: type[ConveyorError], words: str) -> None:
    with pytest.raises(ConveyorError) as caught:
        extract_bytes(data, path.rsplit("/", 1)[-1])
    assert type(caught.value) is error, f"{path}: {type(caught.value).__name__}: {caught.value}"
    assert words in str(caught.value)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("path, error, words", FAILING, ids=[case[0] for case in FAILING])
def test_bad_file_raises_its_error_class(corpus_dir, path, error, words):
    _check_failure(_read(corpus_dir, path), path, error, words)


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.parametrize("path, error, words", FAILING_AFTER_OCR, ids=[case[0] for case in FAILING_AFTER_OCR])
def test_image_only_file_without_text_raises_after_ocr(corpus_dir, path, error, words):
    _check_failure(_read(corpus_dir, path), path, error, words)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("path, method, text", EXTRACTING, ids=[case[0] for case in EXTRACTING])
def test_odd_file_still_extracts(corpus_dir, path, method, text):
    result = extract_bytes(_read(corpus_dir, path), path)
    assert result["pages"][0]["method"] == method
    assert text in result["text"]


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.parametrize("path, method, text", EXTRACTING_AFTER_OCR, ids=[case[0] for case in EXTRACTING_AFTER_OCR])
def test_odd_file_still_extracts_with_ocr(corpus_dir, path, method, text):
    result = extract_bytes(_read(corpus_dir, path), path)
    assert result["pages"][0]["method"] == method
    assert result["text"].strip() and text in result["text"]
