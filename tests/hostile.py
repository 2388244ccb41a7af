"""Hostile and odd inputs built in code, shared by unit and integration tests.

Nothing here is a checked-in binary: each builder makes its bytes from a spec
(PDF 1.7 for the hand-written PDFs, PNG for the bomb header, the Confluent wire
format for framed values) or with pypdfium2/Pillow. :func:`mutated` is the
Hypothesis strategy of the fuzz tests: a valid seed file with bytes flipped,
overwritten, inserted, deleted or cut off.
"""
from __future__ import annotations

import hashlib
import io
import random
import struct
import zlib

from hypothesis import strategies as st

# ------------------------------------------------------------------ framing and raw bytes


def framed(schema_id: int, body: bytes) -> bytes:
    """A Confluent wire-format value: magic byte 0, 4-byte big-endian ``schema_id``, ``body``."""
    return b"\x00" + struct.pack(">I", schema_id) + body


def not_avro(size: int, seed: int) -> bytes:
    """``size`` reproducible random bytes whose first byte is not the magic byte 0, so
    they are certainly not Confluent-framed (and need no registry to be refused)."""
    data = bytearray(random.Random(seed).randbytes(size))
    data[0] = data[0] or 0x9C
    return bytes(data)


UNKNOWN_SCHEMA_ID = 2_000_000_001
"""A schema id no registry of the test stack hands out (ids count up from 1)."""

# ------------------------------------------------------------------ images


def png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` pixels but carries almost
    no data: a decompression bomb as seen by a decoder trusting the header."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b"")


def gif_header(width: int, height: int) -> bytes:
    """A 30-byte GIF89a whose screen and image descriptor claim ``width`` x ``height``
    (at most 65,535 each) with a one-pixel LZW stream: a decompression bomb."""
    return (b"GIF89a" + struct.pack("<HHBBB", width, height, 0, 0, 0)
            + b"," + struct.pack("<HHHHB", 0, 0, width, height, 0) + b"\x02\x02\x44\x01\x00;")


def jpeg_claiming(width: int, height: int) -> bytes:
    """A real small JPEG (:func:`text_image`) whose SOF0 header is patched to claim
    ``width`` x ``height`` pixels (at most 65,535 each)."""
    data = bytearray(text_image("JPEG"))
    sof = data.find(b"\xff\xc0")  # baseline SOF0: marker, length (2), precision (1), height, width
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def text_image(fmt: str, text: str = "INVOICE 42", size: tuple[int, int] = (300, 300)) -> bytes:
    """A small image (default 300 x 300 px, square: the cheapest shape for RapidOCR, which
    scales the short side to 736 px) with ``text`` in black on white, saved as ``fmt``."""
    from PIL import Image, ImageDraw, ImageFont

    im = Image.new("RGB", size, "white")
    ImageDraw.Draw(im).text((12, 24), text, fill="black", font=ImageFont.load_default(size=28))
    out = io.BytesIO()
    im.save(out, fmt, **({"quality": 85} if fmt == "JPEG" else {}))
    return out.getvalue()

# ------------------------------------------------------------------ PDFs


def _pdf(objects: list[bytes], trailer_extra: bytes = b"") -> bytes:
    """A PDF with ``objects`` numbered from 1 (object 1 the catalog) and a correct xref table."""
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R %s>>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, trailer_extra, xref)
    return bytes(out)


def text_pdf(text: str = "Invoice 42 total 12.50 EUR dated 2024-03-01", size: tuple[int, int] = (216, 216)) -> bytes:
    """A one-page PDF (default 3 x 3 inch) whose text layer holds ``text`` in Helvetica."""
    content = b"BT /F1 9 Tf 12 100 Td (" + text.encode("latin-1") + b") Tj ET"
    return _pdf([
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %d %d] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>" % size,
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ])


def blank_pdf(pages: int) -> bytes:
    """A PDF of ``pages`` empty A4 pages, written by pypdfium2 (10,000 pages: 1.3 MB, 0.3 s)."""
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument.new()
    for _ in range(pages):
        pdf.new_page(595, 842)
    out = io.BytesIO()
    pdf.save(out)
    pdf.close()
    return out.getvalue()


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


def encrypted_pdf(user_password: bytes = b"secret", text: bytes = b"Secret invoice total 12.50") -> bytes:
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
    return _pdf([
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 300 200] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Filter /Standard /V 1 /R 2 /O <%s> /U <%s> /P %d >>" % (owner.hex().encode(), user.hex().encode(), permissions),
    ], b"/Encrypt 6 0 R /ID [<%s> <%s>] " % (file_id.hex().encode(), file_id.hex().encode()))

# ------------------------------------------------------------------ mutation strategy


EDITS = ("flip", "set", "insert", "delete", "duplicate", "truncate")
"""Kinds of byte edits :func:`mutated` makes."""


@st.composite
def mutated(draw, seed: bytes, max_edits: int = 4, keep_head: int = 16) -> bytes:
    """``seed`` with 1 to ``max_edits`` edits, each one of :data:`EDITS`: flip bits of a
    byte, overwrite a byte with 0x00/0x01/0x7F/0x80/0xFF, insert 1-16 random bytes, delete
    a run of 1-64 bytes, duplicate a run of 1-64 bytes, or cut the file off.

    Positions are uniform over the file (a seeded ``random.Random`` drawn from Hypothesis,
    so runs are reproducible), and 85 % of edits spare the first ``keep_head`` bytes, so
    most damaged files still carry their magic bytes and reach the decoders rather than
    stopping at type detection.
    """
    rnd = draw(st.randoms(use_true_random=False))
    data = bytearray(seed)
    for _ in range(rnd.randint(1, max_edits)):
        if len(data) < 2:
            break
        low = 0 if rnd.random() < 0.15 else min(keep_head, len(data) - 1)
        pos = rnd.randrange(low, len(data))
        edit = rnd.choice(EDITS)
        if edit == "flip":
            data[pos] ^= rnd.randint(1, 255)
        elif edit == "set":
            data[pos] = rnd.choice([0x00, 0x01, 0x7F, 0x80, 0xFF])
        elif edit == "insert":
            data[pos:pos] = rnd.randbytes(rnd.randint(1, 16))
        elif edit == "delete":
            del data[pos:pos + rnd.randint(1, 64)]
        elif edit == "duplicate":
            data[pos:pos] = data[pos:pos + rnd.randint(1, 64)]
        else:
            del data[pos:]
    return bytes(data)
