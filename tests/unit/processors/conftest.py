"""Fixtures of the extract stage's unit tests (``test_extract*.py``).

Shippable real files live in ``tests/fixtures/extract`` (see its SOURCES.md);
synthetic inputs (encrypted PDF, decompression bomb, multi-page PDF) are built
in code by :mod:`tests.hostile` so no generated binary is checked in.
"""
from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.hostile import blank_pdf, encrypted_pdf, png_header

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
# (builders in tests/hostile.py, shared with the integration tests)


@pytest.fixture(scope="session")
def make_encrypted_pdf() -> Callable[..., bytes]:
    return encrypted_pdf


@pytest.fixture(scope="session")
def make_blank_pdf() -> Callable[[int], bytes]:
    return blank_pdf


@pytest.fixture(scope="session")
def make_png_header() -> Callable[[int, int], bytes]:
    return png_header
