"""Identify a document's type from its magic bytes.

The file name and the declared content type are *never* trusted for the
decision: a PNG uploaded as ``scan.pdf`` is a PNG. They only appear in error
messages to help whoever reads the dead letter.
"""
from __future__ import annotations

import io
from dataclasses import dataclass

from conveyor.processors.errors import EmptyDocumentError, UnsupportedDocumentError

#: How far into the file a PDF header may start. Acrobat accepts junk before
#: ``%PDF`` within the first 1024 bytes, and so does PDFium.
PDF_HEADER_WINDOW = 1024

#: ISO-BMFF brands of HEIF/HEIC/AVIF containers (``....ftyp<brand>``).
_HEIF_BRANDS = {
    b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs",
    b"mif1", b"msf1", b"avif", b"avis",
}

#: Sizes of the BMP info headers Pillow knows (BITMAPCOREHEADER … BITMAPV5HEADER).
_BMP_HEADER_SIZES = {12, 16, 40, 52, 56, 64, 108, 124}


@dataclass(frozen=True)
class DocType:
    """A detected document type.

    Attributes:
        kind: ``"pdf"`` or ``"image"``.
        format: Pillow format name for images (``"JPEG"``, ``"PNG"``, ``"TIFF"``,
            ``"WEBP"``, ``"BMP"``, ``"GIF"``, or what Pillow reports for a HEIF
            it can open), ``"PDF"`` for PDFs.
        mime: The canonical MIME type, e.g. ``"image/png"``.
    """

    kind: str
    format: str
    mime: str


PDF = DocType("pdf", "PDF", "application/pdf")
JPEG = DocType("image", "JPEG", "image/jpeg")
PNG = DocType("image", "PNG", "image/png")
TIFF = DocType("image", "TIFF", "image/tiff")
WEBP = DocType("image", "WEBP", "image/webp")
BMP = DocType("image", "BMP", "image/bmp")
GIF = DocType("image", "GIF", "image/gif")


def detect_type(data: bytes, filename: str = "", content_type: str | None = None) -> DocType:
    """Return the :class:`DocType` of ``data`` from its leading bytes.

    Args:
        data: The whole document.
        filename: Only used in error messages.
        content_type: Only used in error messages.

    Raises:
        EmptyDocumentError: ``data`` has no bytes.
        UnsupportedDocumentError: the bytes match no supported signature, or
            they are a HEIF/HEIC/AVIF container that this Pillow cannot open.
    """
    if not data:
        raise EmptyDocumentError(f"document {filename!r} has no bytes")

    head = data[:32]
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return TIFF
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return WEBP
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return GIF
    if head[:2] == b"BM" and len(head) >= 18 and int.from_bytes(head[14:18], "little") in _BMP_HEADER_SIZES:
        return BMP
    if b"%PDF" in data[:PDF_HEADER_WINDOW]:
        return PDF
    if head[4:8] == b"ftyp" and head[8:12] in _HEIF_BRANDS:
        return _heif_if_openable(data, head[8:12].decode("ascii"), filename)

    raise UnsupportedDocumentError(
        f"unrecognised file type for {filename!r} (declared {content_type or 'no content type'}; "
        f"first bytes {data[:8]!r}); supported: PDF, JPEG, PNG, TIFF, WebP, BMP, GIF"
    )


def _heif_if_openable(data: bytes, brand: str, filename: str) -> DocType:
    """HEIF/HEIC/AVIF: accept only when an installed Pillow plugin reads it."""
    from PIL import Image  # local: detection of the common types needs no Pillow

    try:
        with Image.open(io.BytesIO(data)) as im:
            fmt = im.format or "HEIF"
    except Exception as exc:  # noqa: BLE001 - any failure means "cannot open"
        raise UnsupportedDocumentError(
            f"{filename!r} is a HEIF/HEIC container (brand {brand!r}) that this "
            f"Pillow cannot decode (no HEIF plugin installed): {exc}"
        ) from None
    return DocType("image", fmt, f"image/{fmt.lower()}")
