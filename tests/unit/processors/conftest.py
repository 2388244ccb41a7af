"""Fixtures of the extract stage's unit tests (``test_extract*.py``).

Shippable real files live in ``tests/fixtures/extract`` (see its SOURCES.md);
synthetic inputs (encrypted PDF, decompression bomb, multi-page PDF) are built
here in code so no generated binary is checked in.
"""
from __future__ import annotations

import hashlib
import io
import struct
import zlib
from pathlib import Path
from typing import Callable

import pytest

EXTRACT_FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "extract"


@pytest.fixture(scope="session")
def extract_fixture() -> Callable[[str], bytes]:
    """``extract_fixture("oyo.pdf")`` -> the bytes of a shipped fixture."""
    return lambda name: (EXTRACT_FIXTURES / name).read_bytes()


@pytest.fixture(scope="session")
def receipt_jpeg(extract_fixture) -> bytes:
    """Real 300 dpi scan of a toom Baumarkt receipt (softmatic, CC-BY-4.0);
    ground truth from its file name: toom, 2020-04-06, total 49.99 EUR."""
    return extract_fixture("toom_06042020_01_04999.jpg")


@pytest.fixture(scope="session")
def receipt_header_png(receipt_jpeg) -> bytes:
    """The top ~third of the receipt (merchant and address) as PNG: quick to OCR."""
    from PIL import Image

    with Image.open(io.BytesIO(receipt_jpeg)) as im:
        top = im.crop((0, 0, im.width, im.height // 3))
        out = io.BytesIO()
        top.save(out, "PNG")
    return out.getvalue()


# ------------------------------------------------------------ synthetic PDFs/images

_PDF_PAD = bytes.fromhex("28BF4E5E4E758A4164004E56FFFA01082E2E00B6D0683E802F0CA9FE6453697A")


def _rc4(key: bytes, data: bytes) -> bytes:
    s = list(range(256))
    j = 0
    for i in range(256):
        j = (j + s[i] + key[i % len(key)]) % 256
        s[i], s[j] = s[j], s[i]
    i = j = 0
    out = bytearray()
    for byte in data:
        i = (i + 1) % 256
        j = (j + s[i]) % 256
        s[i], s[j] = s[j], s[i]
        out.append(byte ^ s[(s[i] + s[j]) % 256])
    return bytes(out)


def build_encrypted_pdf(user_password: bytes = b"secret", text: bytes = b"Secret invoice total 12.50") -> bytes:
    """A one-page PDF encrypted with the PDF standard security handler (RC4-40, R2)
    whose user password is ``user_password`` (PDF spec 1.7, algorithms 3.1-3.4)."""
    permissions = -4
    file_id = hashlib.md5(b"conveyor-test").digest()
    owner = _rc4(hashlib.md5((b"owner" + _PDF_PAD)[:32]).digest()[:5], (user_password + _PDF_PAD)[:32])
    key = hashlib.md5((user_password + _PDF_PAD)[:32] + owner + struct.pack("<i", permissions) + file_id).digest()[:5]
    user = _rc4(key, _PDF_PAD)
    content = _rc4(
        hashlib.md5(key + (4).to_bytes(3, "little") + (0).to_bytes(2, "little")).digest()[:10],
        b"BT /F1 12 Tf 20 100 Td (" + text + b") Tj ET",
    )
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 300 200] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Filter /Standard /V 1 /R 2 /O <%s> /U <%s> /P %d >>" % (owner.hex().encode(), user.hex().encode(), permissions),
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R /Encrypt 6 0 R /ID [<%s> <%s>] >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1, file_id.hex().encode(), file_id.hex().encode(), xref)
    return bytes(out)


def build_blank_pdf(pages: int) -> bytes:
    """A PDF of ``pages`` empty A4 pages (made with pypdfium2)."""
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument.new()
    for _ in range(pages):
        pdf.new_page(595, 842)
    out = io.BytesIO()
    pdf.save(out)
    pdf.close()
    return out.getvalue()


def build_png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` pixels but carries almost
    no data: a decompression bomb as seen by a decoder trusting the header."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b"")


@pytest.fixture(scope="session")
def make_encrypted_pdf() -> Callable[..., bytes]:
    return build_encrypted_pdf


@pytest.fixture(scope="session")
def make_blank_pdf() -> Callable[[int], bytes]:
    return build_blank_pdf


@pytest.fixture(scope="session")
def make_png_header() -> Callable[[int, int], bytes]:
    return build_png_header
