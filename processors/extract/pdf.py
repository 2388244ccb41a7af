"""Text of PDF pages: the text layer where there is one, OCR where there is not.

Per page: PDFium's text layer is used when it holds at least
``min_text_chars`` printable non-space characters; otherwise the page is
rendered (``dpi``, long side capped at ``max_side`` pixels) and OCR-ed, and
the OCR text replaces the text layer when it is longer.

Dynamic XFA forms (whose pages only carry Adobe's "Please wait..." placeholder)
contribute the text of their XFA template and data packets instead. The values of
filled AcroForm fields (not part of the text layer) are appended to their page's
text (:func:`form_field_lines`).

PDFium is not thread-safe, so every PDFium call here runs under one
process-wide lock; OCR runs outside it.
"""
from __future__ import annotations

import ctypes
import html
import logging
import re
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

from conveyor.processors.errors import (
    CorruptDocumentError,
    DocumentLimitError,
    EmptyDocumentError,
    EncryptedDocumentError,
)
from conveyor.processors.extract.ocr import OcrLine, OcrResult
from conveyor.processors.limits import MAX_PAGES, MAX_PIXELS

_pdfium_lock = threading.RLock()

#: Pages with fewer printable non-space characters than this are OCR-ed.
DEFAULT_MIN_TEXT_CHARS = 20
DEFAULT_DPI = 200
#: Long-side cap (pixels) of a rendered page; bounds memory and OCR time.
DEFAULT_MAX_SIDE = 2500
#: Largest XFA packet read (bytes).
_MAX_XFA_PACKET = 20_000_000

_XFA_PLACEHOLDER = re.compile(
    r"please\s+wait\.*\s*if\s+this\s+message\s+is\s+not\s+eventually\s+replaced\s+by\s+the\s+proper\s+contents"
    r"\s+of\s+the\s+document,?\s+your\s+pdf\s+viewer\s+may\s+not\s+be\s+able\s+to\s+display\s+this\s+type\s+of\s+document\.?",
    re.IGNORECASE,
)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\ufffe\uffff]")
_ODD_SPACE = re.compile(r"[^\S\n\t ]")  # NBSP, en/em spaces, line separators...


@dataclass(frozen=True)
class PdfPageText:
    """Text of one PDF page.

    Attributes:
        page_number: 1-based.
        text: Normalised text (``"\\n"`` line ends, no control characters).
        method: ``"text_layer"`` or ``"ocr"``.
        ocr_confidence: Mean OCR line score in ``[0, 1]`` for OCR pages, else ``None``.
        lines: The OCR text boxes of an OCR page (pixel coordinates of ``size``), else ``()``.
        size: ``(width, height)`` in pixels of the OCR-ed rendering, else ``None``.
    """

    page_number: int
    text: str
    method: str
    ocr_confidence: float | None
    lines: tuple[OcrLine, ...] = ()
    size: tuple[int, int] | None = None


def meaningful_chars(text: str) -> int:
    """Number of printable, non-whitespace characters in ``text``."""
    return sum(1 for ch in text if ch.isprintable() and not ch.isspace())


def normalise_text(text: str) -> str:
    """``\\r\\n``/``\\r`` -> ``\\n``, control characters dropped, other whitespace
    (NBSP, en spaces...) -> a space, lines right-stripped, surrounding blank lines removed."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _ODD_SPACE.sub(" ", _CONTROL.sub("", text))
    return "\n".join(line.rstrip() for line in text.split("\n")).strip("\n")


def extract_pdf(
    data: bytes,
    *,
    ocr: Callable[[np.ndarray], OcrResult],
    max_pages: int = MAX_PAGES,
    max_pixels: int = MAX_PIXELS,
    min_text_chars: int = DEFAULT_MIN_TEXT_CHARS,
    dpi: int = DEFAULT_DPI,
    max_side: int = DEFAULT_MAX_SIDE,
    password: str | None = None,
) -> list[PdfPageText]:
    """Extract the text of every page of a PDF.

    Args:
        data: The PDF bytes.
        ocr: Function OCR-ing an RGB ``uint8`` ``(h, w, 3)`` array
            (normally :func:`conveyor.processors.extract.ocr.ocr_image`).
        max_pages: Most pages accepted.
        max_pixels: Most pixels of one rendered page (the render scale is
            lowered to stay under it).
        min_text_chars: Text-layer pages below this many meaningful characters are OCR-ed.
        dpi: Render resolution for OCR (pixels per inch).
        max_side: Long-side cap of a rendered page, in pixels.
        password: Password to open an encrypted PDF.

    Returns:
        One :class:`PdfPageText` per page, in order. Pages may have empty text;
        the caller decides whether a document without any text is an error.

    Raises:
        EncryptedDocumentError: the PDF needs a password (or uses an
            unsupported security handler).
        CorruptDocumentError: PDFium cannot parse the file or one of its pages.
        DocumentLimitError: more than ``max_pages`` pages.
        EmptyDocumentError: the PDF has no pages.
    """
    with _pdfium_lock:
        pdf = _open(data, password)
    try:
        with _pdfium_lock:
            n_pages = len(pdf)
            if n_pages == 0:
                raise EmptyDocumentError("PDF has no pages")
            if n_pages > max_pages:
                raise DocumentLimitError(f"PDF has {n_pages} pages, more than the limit of {max_pages}")
            form_type = pdf.get_formtype()
            xfa_text = _xfa_text(pdf) if form_type in (
                pdfium_c.FORMTYPE_XFA_FULL, pdfium_c.FORMTYPE_XFA_FOREGROUND) else ""
            has_fields = form_type in (pdfium_c.FORMTYPE_ACRO_FORM, pdfium_c.FORMTYPE_XFA_FOREGROUND)
            if has_fields:
                pdfium_log = logging.getLogger("pypdfium2._helpers.document")
                was_disabled, pdfium_log.disabled = pdfium_log.disabled, True  # "XFA not supported" notice
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        pdf.init_forms()  # filled AcroForm fields are drawn when rendering and read below
                except Exception:  # noqa: BLE001 - forms are optional; render without them
                    has_fields = False
                finally:
                    pdfium_log.disabled = was_disabled

        results = []
        for index in range(n_pages):
            with _pdfium_lock:
                text, image = _page_text_or_image(pdf, index, min_text_chars, dpi, max_side, max_pixels)
                fields = form_field_lines(pdf, index) if has_fields else []
            if fields and image is None:
                text = (text + "\n" + "\n".join(fields)).strip("\n")
            if image is None and _XFA_PLACEHOLDER.search(" ".join(text.split())):
                text = normalise_text(_XFA_PLACEHOLDER.sub("", " ".join(text.split()))) or ""
                if index == 0 and xfa_text:
                    text = xfa_text
                results.append(PdfPageText(index + 1, text, "text_layer", None))
                continue
            if image is None:
                results.append(PdfPageText(index + 1, text, "text_layer", None))
                continue
            result = ocr(image)
            ocr_text = normalise_text(result.text)
            if meaningful_chars(ocr_text) > meaningful_chars(text):
                size = (int(image.shape[1]), int(image.shape[0]))
                results.append(PdfPageText(index + 1, ocr_text, "ocr", result.confidence, tuple(result.lines), size))
            else:
                results.append(PdfPageText(index + 1, text, "text_layer", None))
        return results
    finally:
        with _pdfium_lock:
            pdf.close()


def form_field_lines(pdf: pdfium.PdfDocument, index: int) -> list[str]:
    """Values of the filled AcroForm text and choice fields of page ``index``, top to
    bottom, as ``"<field tooltip>: <value>"`` (or the value alone without a tooltip).

    Filled form values are widget annotations, not page content, so the text layer
    lacks them (a filled W-9 reads like a blank one). ``pdf.init_forms()`` must have
    been called. Returns ``[]`` when the page has no filled field or on any PDFium error.
    """
    form = getattr(pdf.formenv, "raw", pdf.formenv)
    if not form:
        return []
    found: list[tuple[float, float, str]] = []
    page = None
    try:
        page = pdf[index]
        for i in range(pdfium_c.FPDFPage_GetAnnotCount(page.raw)):
            annot = pdfium_c.FPDFPage_GetAnnot(page.raw, i)
            try:
                if pdfium_c.FPDFAnnot_GetSubtype(annot) != pdfium_c.FPDF_ANNOT_WIDGET or \
                        pdfium_c.FPDFAnnot_GetFormFieldType(form, annot) not in _VALUE_FIELD_TYPES:
                    continue
                value = " ".join(_annot_string(pdfium_c.FPDFAnnot_GetFormFieldValue, form, annot).split())
                if not value:
                    continue
                label = " ".join(_annot_string(pdfium_c.FPDFAnnot_GetFormFieldAlternateName, form, annot).split())
                rect = pdfium_c.FS_RECTF()
                pdfium_c.FPDFAnnot_GetRect(annot, rect)
                found.append((-rect.top, rect.left, f"{label}: {value}" if label else value))
            finally:
                pdfium_c.FPDFPage_CloseAnnot(annot)
    except Exception:  # noqa: BLE001 - field values are a bonus
        return []
    finally:
        if page is not None:
            page.close()
    return [text for _top, _left, text in sorted(found)]


#: FPDF_FORMFIELD_* types whose value is text: text fields, combo and list boxes.
_VALUE_FIELD_TYPES = {pdfium_c.FPDF_FORMFIELD_TEXTFIELD, pdfium_c.FPDF_FORMFIELD_COMBOBOX,
                      pdfium_c.FPDF_FORMFIELD_LISTBOX}
#: Longest field value or tooltip read (UTF-16 bytes).
_MAX_FIELD_BYTES = 64_000


def _annot_string(func: Callable[..., int], form: Any, annot: Any) -> str:
    size = func(form, annot, None, 0)
    if not 2 < size <= _MAX_FIELD_BYTES:
        return ""
    buf = ctypes.create_string_buffer(size)
    func(form, annot, ctypes.cast(buf, ctypes.POINTER(pdfium_c.FPDF_WCHAR)), size)
    return buf.raw[:size].decode("utf-16-le", errors="replace").rstrip("\x00")


def _open(data: bytes, password: str | None) -> pdfium.PdfDocument:
    try:
        return pdfium.PdfDocument(data, password=password)
    except pdfium.PdfiumError as exc:
        code = getattr(exc, "err_code", None)
        if code in (pdfium_c.FPDF_ERR_PASSWORD, pdfium_c.FPDF_ERR_SECURITY):
            raise EncryptedDocumentError(
                "PDF is password-protected" if code == pdfium_c.FPDF_ERR_PASSWORD
                else f"PDF uses an unsupported security handler: {exc}"
            ) from None
        raise CorruptDocumentError(f"damaged or invalid PDF: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - anything else from the parser is damage too
        raise CorruptDocumentError(f"damaged or invalid PDF: {exc}") from None


def _page_text_or_image(
    pdf: pdfium.PdfDocument, index: int, min_text_chars: int, dpi: int, max_side: int, max_pixels: int
) -> tuple[str, np.ndarray | None]:
    """``(text_layer_text, None)`` or, for a page needing OCR, ``(text, rgb)``."""
    page = textpage = bitmap = None
    try:
        page = pdf[index]
        textpage = page.get_textpage()
        text = normalise_text(textpage.get_text_range())
        if meaningful_chars(text) >= min_text_chars or _XFA_PLACEHOLDER.search(" ".join(text.split())):
            return text, None
        width, height = page.get_size()
        if not (width > 0 and height > 0):
            raise CorruptDocumentError(f"PDF page {index + 1} has an invalid size {width}x{height} pt")
        scale = min(dpi / 72.0, max_side / max(width, height))
        scale = min(scale, (max_pixels / (width * height)) ** 0.5)
        bitmap = page.render(scale=scale, rev_byteorder=True, may_draw_forms=True)
        rgb = np.array(bitmap.to_numpy()[:, :, :3], dtype=np.uint8, copy=True)
        return text, rgb
    except CorruptDocumentError:
        raise
    except MemoryError:
        raise DocumentLimitError(f"PDF page {index + 1} is too large to render in memory") from None
    except Exception as exc:  # noqa: BLE001 - PdfiumError or anything else from a damaged page
        raise CorruptDocumentError(f"damaged PDF page {index + 1}: {exc}") from None
    finally:
        for obj in (bitmap, textpage, page):
            if obj is not None:
                try:
                    obj.close()
                except Exception:  # noqa: BLE001 - closing must not mask the real error
                    pass


def _xfa_text(pdf: pdfium.PdfDocument) -> str:
    """Static texts of an XFA form's ``template`` packet and values of its
    ``datasets`` packet, one per line; ``""`` when there are none."""
    parts: list[str] = []
    try:
        count = pdfium_c.FPDF_GetXFAPacketCount(pdf)
        for index in range(max(count, 0)):
            name = _xfa_packet_name(pdf, index)
            if name not in ("template", "datasets"):
                continue
            xml = _xfa_packet_content(pdf, index)
            if name == "template":
                chunks = re.findall(r"<(?:text|exData)\b[^>]*>(.*?)</(?:text|exData)>", xml, re.DOTALL)
            else:
                chunks = re.findall(r">([^<]+)<", xml)
            for chunk in chunks:
                value = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", chunk)).split())
                if value:
                    parts.append(value)
    except Exception:  # noqa: BLE001 - XFA is a bonus; a broken packet yields no text
        return ""
    return "\n".join(parts)


def _xfa_packet_name(pdf: pdfium.PdfDocument, index: int) -> str:
    size = pdfium_c.FPDF_GetXFAPacketName(pdf, index, None, 0)
    if size <= 0:
        return ""
    buf = ctypes.create_string_buffer(size)
    pdfium_c.FPDF_GetXFAPacketName(pdf, index, buf, size)
    return buf.value.decode("latin-1")


def _xfa_packet_content(pdf: pdfium.PdfDocument, index: int) -> str:
    size = ctypes.c_ulong(0)
    if not pdfium_c.FPDF_GetXFAPacketContent(pdf, index, None, 0, ctypes.byref(size)) or not 0 < size.value <= _MAX_XFA_PACKET:
        return ""
    buf = ctypes.create_string_buffer(size.value)
    pdfium_c.FPDF_GetXFAPacketContent(pdf, index, buf, size.value, ctypes.byref(size))
    return buf.raw[: size.value].decode("utf-8", errors="replace")
