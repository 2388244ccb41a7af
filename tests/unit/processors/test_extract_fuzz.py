"""Fuzzing the extract processor with damaged real and generated files (Hypothesis).

Seeds: real shipped fixtures (a text-layer invoice PDF, an EXIF-rotated JPEG, a
two-frame TIFF) and generated small files with text (PNG, JPEG, PDF). Each example
flips, overwrites, inserts, deletes or cuts bytes (:func:`tests.hostile.mutated`) and
runs :meth:`ExtractProcessor.process_one` on a well-formed ``Document`` record
carrying the damaged bytes. Allowed outcomes: an ``Extracted`` record that fits its
schema, or a *permanent* :class:`~conveyor.processors.errors.ConveyorError` with a message.
Anything else (a ``ValueError`` from a decoder, a transient error, a hang) fails.

Cost is bounded: OCR runs on pages of at most ``MAX_PIXELS`` (RapidOCR upscales
small pages to 736 px on the short side, ~0.4 s each on 2 cores), at most
``MAX_PAGES`` pages, and a fixed, derandomized number of examples per seed.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import fastavro
import pytest
from hypothesis import HealthCheck, given, settings

from conveyor.processors.errors import ConveyorError
from conveyor.processors.extract import ExtractProcessor
from conveyor.schemas import schema_json
from tests.hostile import mutated, text_image, text_pdf

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "extract"
SCHEMA = fastavro.parse_schema(schema_json("extracted.avsc"))
MAX_PIXELS = 300_000
MAX_PAGES = 3
SEEDS = {
    "oyo.pdf": (FIXTURES / "oyo.pdf").read_bytes(),
    "hopper_orientation_6.jpg": (FIXTURES / "hopper_orientation_6.jpg").read_bytes(),
    "multipage.tiff": (FIXTURES / "multipage.tiff").read_bytes(),
    "text.png": text_image("PNG"),
    "text.jpg": text_image("JPEG"),
    "text.pdf": text_pdf(),
}
#: Examples per seed: fewer where most damaged files still decode and go to OCR (JPEGs).
EXAMPLES = {"oyo.pdf": 60, "hopper_orientation_6.jpg": 20, "multipage.tiff": 60,
            "text.png": 40, "text.jpg": 20, "text.pdf": 60}

PROCESSOR = ExtractProcessor(max_pixels=MAX_PIXELS, max_pages=MAX_PAGES)


def _document(data: bytes, filename: str) -> dict:
    return {"doc_id": "fuzz", "trace_id": "fuzz", "event_time": 0, "producer": "test", "producer_version": "0",
            "filename": filename, "content_type": None, "size_bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest(), "content": data, "blob_uri": None, "attributes": {}}


def _extracts_or_refuses(data: bytes, filename: str) -> None:
    try:
        (out,) = PROCESSOR.process_one(_document(data, filename))
    except ConveyorError as exc:
        assert exc.permanent, f"{type(exc).__name__} is transient: {exc}"
        assert str(exc), type(exc).__name__
        return
    assert fastavro.validation.validate(out, SCHEMA, raise_errors=True)
    assert out["page_count"] == len(out["pages"]) <= MAX_PAGES and out["text"].strip()


@pytest.mark.timeout(120)
@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow's "Corrupt EXIF data" and friends: expected here
@pytest.mark.parametrize("name", sorted(SEEDS))
def test_damaged_files_extract_or_fail_permanently(name):
    seed = SEEDS[name]
    _extracts_or_refuses(seed, name)  # the undamaged seed is valid input

    @settings(max_examples=EXAMPLES[name], deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(data=mutated(seed))
    def fuzz(data):
        _extracts_or_refuses(data, name)

    fuzz()
