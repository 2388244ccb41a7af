"""Type detection and image decoding of the extract stage (no OCR: fast)."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from conveyor.processors.errors import (
    CorruptDocumentError,
    DocumentLimitError,
    EmptyDocumentError,
    UnsupportedDocumentError,
)
from conveyor.processors.extract import extract_bytes
from conveyor.processors.extract.detect import detect_type
from conveyor.processors.extract.images import load_pages


def _encode(fmt: str, size=(12, 8), mode="RGB", **save) -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, "white").save(out, fmt, **save)
    return out.getvalue()


# ---------------------------------------------------------------------- detection

@pytest.mark.parametrize(
    "fmt, mime",
    [("JPEG", "image/jpeg"), ("PNG", "image/png"), ("TIFF", "image/tiff"), ("WEBP", "image/webp"),
     ("BMP", "image/bmp"), ("GIF", "image/gif")],
)
def test_detects_image_types_from_magic_bytes_not_the_name(fmt, mime):
    doc_type = detect_type(_encode(fmt), filename="invoice.pdf", content_type="application/pdf")
    assert (doc_type.kind, doc_type.format, doc_type.mime) == ("image", fmt, mime)


def test_detects_pdf_even_after_junk_before_the_header(extract_fixture):
    assert detect_type(extract_fixture("oyo.pdf"), "oyo.jpg").kind == "pdf"
    assert detect_type(b"%broken header\njunk\n%PDF-1.4\n...", "x").kind == "pdf"


def test_empty_bytes_are_an_empty_document():
    with pytest.raises(EmptyDocumentError, match="no bytes"):
        detect_type(b"", "empty.pdf")
    with pytest.raises(EmptyDocumentError):
        extract_bytes(b"", "empty.pdf")


@pytest.mark.parametrize(
    "data",
    [b"hello, plain text is no document", b"PK\x03\x04 zip", b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic"],
)
def test_unknown_types_and_undecodable_heic_are_unsupported(data):
    with pytest.raises(UnsupportedDocumentError, match="unrecognised|HEIF"):
        extract_bytes(data, "mystery.bin")


# ------------------------------------------------------------------------ decoding

def test_exif_orientation_is_honoured(extract_fixture):
    data = extract_fixture("hopper_orientation_6.jpg")  # Pillow's test image, orientation 6
    (page,) = load_pages(data)
    with Image.open(io.BytesIO(data)) as raw:
        assert raw.getexif()[0x0112] == 6
        stored = np.asarray(raw.convert("RGB"), dtype=np.int16)
    upright = np.asarray(Image.fromarray(stored.astype(np.uint8)).transpose(Image.Transpose.ROTATE_270), dtype=np.int16)
    assert np.abs(page.astype(np.int16) - upright).mean() < 1.0  # rotated 90° clockwise for display
    assert np.abs(page.astype(np.int16) - stored).mean() > 10.0  # and not left as stored


def test_exif_rotation_swaps_width_and_height():
    exif = Image.Exif()
    exif[0x0112] = 6
    (page,) = load_pages(_encode("JPEG", size=(40, 20), exif=exif.tobytes()))
    assert page.shape == (40, 20, 3)  # stored 40 wide x 20 high, displayed 20 wide x 40 high


def test_multi_frame_tiff_gives_one_page_per_frame(extract_fixture):
    pages = load_pages(extract_fixture("multipage.tiff"))
    assert [page.shape for page in pages] == [(10, 10, 3), (10, 10, 3), (20, 20, 3)]
    assert all(page.dtype == np.uint8 for page in pages)


def test_page_limit(extract_fixture):
    with pytest.raises(DocumentLimitError, match="3 pages, more than the limit of 2"):
        load_pages(extract_fixture("multipage.tiff"), max_pages=2)


def test_transparent_png_is_composited_on_white():
    im = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    im.putpixel((0, 0), (0, 0, 0, 255))
    out = io.BytesIO()
    im.save(out, "PNG")
    (page,) = load_pages(out.getvalue())
    assert page[0, 0].tolist() == [0, 0, 0] and page[3, 3].tolist() == [255, 255, 255]


def test_sixteen_bit_greyscale_is_scaled_not_clipped():
    im = Image.new("I;16", (2, 1))
    im.putpixel((0, 0), 0)
    im.putpixel((1, 0), 65535)
    out = io.BytesIO()
    im.save(out, "PNG")
    (page,) = load_pages(out.getvalue())
    assert page[0, 0].tolist() == [0, 0, 0] and page[0, 1].tolist() == [255, 255, 255]


def test_decompression_bomb_header_is_a_limit_error(make_png_header):
    bomb = make_png_header(100_000, 100_000)  # 10 gigapixels claimed by an 80-byte file
    with pytest.raises(DocumentLimitError, match="decompression"):
        load_pages(bomb)
    with pytest.raises(DocumentLimitError):
        extract_bytes(bomb, "bomb.png")


def test_configured_pixel_limit_applies_before_decoding(make_png_header):
    with pytest.raises(DocumentLimitError, match="70,000,000 pixels, more than the limit of 60,000,000"):
        load_pages(make_png_header(10_000, 7_000), max_pixels=60_000_000)
    with pytest.raises(DocumentLimitError):
        extract_bytes(_encode("PNG", size=(300, 300)), "small.png", max_pixels=50_000)


def test_truncated_jpeg_is_corrupt(extract_fixture):
    with pytest.raises(CorruptDocumentError, match="truncated"):
        extract_bytes(extract_fixture("truncated_jpeg.jpg"), "truncated_jpeg.jpg")


def test_png_with_damaged_header_is_corrupt(extract_fixture):
    with pytest.raises(CorruptDocumentError, match="cannot decode PNG"):
        extract_bytes(extract_fixture("broken.png"), "broken.png")


def test_cut_off_png_is_corrupt():
    data = _encode("PNG", size=(200, 200), mode="L")
    with pytest.raises(CorruptDocumentError):
        load_pages(data[: len(data) // 2])


def test_jpeg_with_junk_in_its_header_still_decodes(extract_fixture):
    # Pillow's junk_jpeg_header.jpg is an odd but valid JPEG (Pillow issue #630).
    (page,) = load_pages(extract_fixture("junk_jpeg_header.jpg"))
    assert page.shape == (768, 1024, 3)


def test_truncation_detection_is_not_switched_off(extract_fixture):
    from PIL import ImageFile

    with pytest.raises(CorruptDocumentError):
        load_pages(extract_fixture("truncated_jpeg.jpg"))
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
