"""The extract processor: document bytes -> text, pages and baseline key fields.

Modules, one job each:

* :mod:`.detect` — file type from magic bytes (never from the file name);
* :mod:`.images` — raster images -> upright RGB pages (limits, damage checks);
* :mod:`.pdf` — PDF pages -> text layer, or render + OCR;
* :mod:`.ocr` — RapidOCR (PP-OCRv4 ONNX, bundled models) per process;
* :mod:`.layout` — OCR boxes -> deskewed reading-order rows with positions;
* :mod:`.postocr` — digit/letter confusion repair of OCR text;
* :mod:`.fields` — key fields (dates, total with layout evidence, currency,
  number, issuer and address) and their normal forms.

:func:`extract_bytes` is the pure function (also used offline, e.g. to build
training data; :func:`extract_pages` and :func:`fields_from_pages` are its two
halves); :class:`ExtractProcessor` wraps it for ``documents`` ->
``extracted`` records (``schemas/document.avsc`` -> ``schemas/extracted.avsc``).
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from conveyor.processors.base import Processor, Record
from conveyor.processors.errors import (
    ConveyorError,
    CorruptDocumentError,
    DocumentLimitError,
    EmptyDocumentError,
    TransientError,
)
from conveyor.processors.extract import kie
from conveyor.processors.extract import ocr as _ocr
from conveyor.processors.extract.detect import detect_type
from conveyor.processors.extract.fields import extract_extra_fields, extract_key_fields
from conveyor.processors.extract.fields.confidence import gate
from conveyor.processors.extract.fields.evidence import locate, locate_rows
from conveyor.processors.extract.images import load_pages
from conveyor.processors.extract.layout import page_layout
from conveyor.processors.extract.pdf import extract_pdf, meaningful_chars, normalise_text
from conveyor.processors.limits import MAX_PAGES, MAX_PIXELS, MAX_TEXT_CHARS

__all__ = ["ExtractProcessor", "extract_bytes", "extract_pages", "fields_from_pages"]

#: Separator between the texts of consecutive pages in ``text``.
PAGE_SEPARATOR = "\n\n"


def extract_pages(
    data: bytes,
    filename: str,
    content_type: str | None = None,
    *,
    max_pages: int = MAX_PAGES,
    max_pixels: int = MAX_PIXELS,
) -> list[dict[str, Any]]:
    """Text of every page of one document, with the OCR layout of OCR-ed pages.

    The type is detected from the bytes (``filename`` and ``content_type`` only
    appear in error messages). PDFs use their text layer per page and OCR for
    pages without one; images (JPEG, PNG, TIFF — one page per frame —, WebP,
    BMP, GIF) are OCR-ed.

    Returns:
        One dict per page: ``{"page_number": int (1-based), "text": str,
        "method": "text_layer" | "ocr", "ocr_confidence": float in [0, 1] | None,
        "lines": [OcrLine, ...] (boxes in pixels of the OCR-ed image; empty for
        text-layer pages), "size": (width, height) pixels | None}``.

    Raises:
        The errors of :func:`extract_bytes`, except the text-length and
        no-text checks, which need the whole document.
    """
    doc_type = detect_type(data, filename, content_type)
    pages: list[dict[str, Any]] = []
    if doc_type.kind == "pdf":
        for page in extract_pdf(data, ocr=_ocr.ocr_image, max_pages=max_pages, max_pixels=max_pixels):
            pages.append({
                "page_number": page.page_number,
                "text": page.text,
                "method": page.method,
                "ocr_confidence": page.ocr_confidence,
                "lines": list(page.lines),
                "size": page.size,
            })
        return pages
    images = load_pages(
        data, formats=[doc_type.format], max_pages=max_pages, max_pixels=max_pixels,
        max_side=_ocr.DEFAULT_MAX_SIDE,
    )
    for number, rgb in enumerate(images, start=1):
        result = _ocr.ocr_image(rgb)
        pages.append({
            "page_number": number,
            "text": normalise_text(result.text),
            "method": "ocr",
            "ocr_confidence": result.confidence,
            "lines": list(result.lines),
            "size": (int(rgb.shape[1]), int(rgb.shape[0])),
        })
    return pages


def fields_from_pages(pages: list[dict[str, Any]], model: kie.KeyFieldModel | None = None,
                      use_model: bool = True) -> dict[str, Any]:
    """``KeyFields`` dict of a document from the page dicts of :func:`extract_pages`.

    The OCR boxes of the first page (``"lines"``, ``"size"``), when present, are
    handed to :func:`conveyor.processors.extract.fields.extract_key_fields` as its layout.
    Each field is then located (:func:`conveyor.processors.extract.fields.evidence.locate`);
    the key-field model (``model``, default the shipped one: :func:`conveyor.processors.extract.kie.apply`)
    chooses the fields it was measured better at; every field is gated by its calibrated
    confidence (:func:`conveyor.processors.extract.fields.confidence.gate`): the dict also holds
    ``confidence``, ``withheld`` and ``evidence``, and ``vendor_address``, the issuer's address.
    ``use_model=False`` gives the rules' fields alone (what the model is compared with).
    """
    text = PAGE_SEPARATOR.join(page["text"] for page in pages).strip("\n")
    first = pages[0] if pages else {}
    layout = page_layout(first.get("lines") or [], first.get("size")) if first.get("lines") else None
    fields = extract_key_fields(text, first_page_text=first.get("text", ""), layout=layout)
    address = fields.pop("address")
    if layout is not None and [" ".join(r.text.split()) for r in layout] != [
            " ".join(x.split()) for x in first.get("text", "").splitlines()]:
        layout = None  # not one row per line of the page text: no boxes as evidence
    evidence = locate(fields, pages, layout)
    extra, extra_evidence = extract_extra_fields(pages, fields, layout)
    values = {**fields, **extra, "vendor_address": address}
    evidence = {**evidence, **extra_evidence}
    if address:
        evidence["vendor_address"] = locate_rows("vendor_address", address, "header rows", pages, layout)
    learned = kie.apply(values, evidence, pages, layout, model) if use_model else {}
    return gate(values, evidence, learned=learned)


def extract_bytes(
    data: bytes,
    filename: str,
    content_type: str | None = None,
    *,
    max_pages: int = MAX_PAGES,
    max_pixels: int = MAX_PIXELS,
    max_text_chars: int = MAX_TEXT_CHARS,
) -> dict[str, Any]:
    """Extract text, per-page text and key fields from one document.

    The type is detected from the bytes (``filename`` and ``content_type`` only
    appear in error messages). PDFs use their text layer per page and OCR for
    pages without one; images (JPEG, PNG, TIFF — one page per frame —, WebP,
    BMP, GIF) are OCR-ed. Key fields use the OCR layout (box positions) of the
    first page when it was OCR-ed (:func:`fields_from_pages`).

    Args:
        data: The document's bytes.
        filename: Original file name (for messages only).
        content_type: Declared MIME type (for messages only).
        max_pages: Most pages (PDF pages or TIFF frames) accepted.
        max_pixels: Most pixels per image page / rendered PDF page.
        max_text_chars: Most characters of the extracted ``text``.
        (Defaults and their reasons: :mod:`conveyor.processors.limits`.)

    Returns:
        ``{"text": str, "pages": [{"page_number": int (1-based), "text": str,
        "method": "text_layer" | "ocr", "ocr_confidence": float in [0, 1] | None}],
        "page_count": int, "fields": KeyFields dict}`` — see
        :func:`conveyor.processors.extract.fields.extract_fields` for ``fields``.
        ``text`` is the page texts joined with a blank line.

    Raises:
        EmptyDocumentError: no bytes, or no text found on any page.
        UnsupportedDocumentError: not a supported type (e.g. HEIC without a plugin).
        CorruptDocumentError: damaged/truncated file.
        EncryptedDocumentError: password-protected PDF.
        DocumentLimitError: too many pages or pixels, or more text than ``max_text_chars``.
    """
    full_pages = extract_pages(data, filename, content_type, max_pages=max_pages, max_pixels=max_pixels)
    check_text(full_pages, filename, detect_type(data, filename, content_type).format, max_text_chars=max_text_chars)
    pages = [{key: page[key] for key in ("page_number", "text", "method", "ocr_confidence")} for page in full_pages]
    return {
        "text": PAGE_SEPARATOR.join(page["text"] for page in pages).strip("\n"),
        "pages": pages,
        "page_count": len(pages),
        "fields": fields_from_pages(full_pages),
    }


def check_text(pages: list[dict[str, Any]], filename: str, fmt: str, *, max_text_chars: int = MAX_TEXT_CHARS) -> None:
    """Refuse a document whose joined page text is too long or has no meaningful character.

    ``fmt`` is the detected format (``"PDF"``, ``"JPEG"``…), for the message.

    Raises:
        DocumentLimitError: more than ``max_text_chars`` characters.
        EmptyDocumentError: no printable non-space character on any page.
    """
    text = PAGE_SEPARATOR.join(page["text"] for page in pages).strip("\n")
    if len(text) > max_text_chars:
        raise DocumentLimitError(
            f"{filename!r} ({fmt}, {len(pages)} page(s)) has {len(text):,} characters of text, "
            f"more than the limit of {max_text_chars:,} (conveyor.processors.limits.MAX_TEXT_CHARS)"
        )
    if meaningful_chars(text) == 0:
        raise EmptyDocumentError(
            f"no text found in {filename!r} ({fmt}, {len(pages)} page(s)): "
            "blank pages, a picture without text, or a contentless/XFA-only PDF"
        )


class ExtractProcessor(Processor):
    """``documents`` -> ``extracted``: one ``Extracted`` record per ``Document``.

    Args:
        blob_reader: Resolves a record's ``blob_uri`` to bytes, for documents
            too large to travel inline. ``None``: only inline ``content`` works.
        max_pages: Page limit passed to :func:`extract_bytes`.
        max_pixels: Pixel limit passed to :func:`extract_bytes`.
        max_text_chars: Text length limit passed to :func:`extract_bytes`.
    """

    name = "extract"
    version = "0.1.0"

    def __init__(
        self,
        blob_reader: Callable[[str], bytes] | None = None,
        *,
        max_pages: int = MAX_PAGES,
        max_pixels: int = MAX_PIXELS,
        max_text_chars: int = MAX_TEXT_CHARS,
    ) -> None:
        self._blob_reader = blob_reader
        self._max_pages = max_pages
        self._max_pixels = max_pixels
        self._max_text_chars = max_text_chars

    def process_one(self, record: Record) -> list[Record]:
        """Extract one ``Document`` record.

        Returns:
            ``[extracted_record]`` with exactly the fields of ``extracted.avsc``;
            ``content_type`` is the MIME type detected from the bytes (the
            produce-time guess comes from the file name and may be wrong).

        Raises:
            EmptyDocumentError: neither ``content`` nor a readable ``blob_uri``,
                the blob does not exist, or no text was found.
            CorruptDocumentError: the bytes' sha256 differs from ``sha256``, or
                the document is damaged.
            TransientError: the blob store failed with an I/O error (retryable).
            DocumentError: any other error of :func:`extract_bytes`.
        """
        data = self._document_bytes(record)
        digest = hashlib.sha256(data).hexdigest()
        expected = str(record.get("sha256") or "").strip().lower()
        if digest != expected:
            raise CorruptDocumentError(
                f"sha256 mismatch for {record.get('filename')!r}: record says {expected or 'nothing'}, "
                f"the {len(data)} bytes hash to {digest}"
            )
        result = extract_bytes(
            data,
            record.get("filename") or "",
            record.get("content_type"),
            max_pages=self._max_pages,
            max_pixels=self._max_pixels,
            max_text_chars=self._max_text_chars,
        )
        return [{
            **self.meta(record),
            "filename": record["filename"],
            "content_type": detect_type(data).mime,
            "sha256": digest,
            **result,
        }]

    def _document_bytes(self, record: Record) -> bytes:
        content = record.get("content")
        if content is not None:
            return bytes(content)
        uri = record.get("blob_uri")
        if not uri:
            raise EmptyDocumentError(f"document {record.get('doc_id')!r} has neither content nor blob_uri")
        if self._blob_reader is None:
            raise EmptyDocumentError(
                f"document {record.get('doc_id')!r} is stored at {uri} but this extract processor has no blob_reader"
            )
        try:
            return bytes(self._blob_reader(uri))
        except ConveyorError:
            raise
        except FileNotFoundError as exc:
            raise EmptyDocumentError(f"blob {uri} not found: {exc}") from None
        except OSError as exc:
            raise TransientError(f"reading blob {uri} failed: {exc}") from exc
