"""OCR paths of the extract stage, on a real receipt scan (RapidOCR, CPU: slow)."""
from __future__ import annotations

import io
import socket

import numpy as np
import pytest
from PIL import Image

from conveyor.processors.extract import extract_bytes, ocr
from conveyor.processors.extract.images import load_pages

pytestmark = pytest.mark.slow


def test_receipt_jpeg_is_ocred_with_its_merchant_and_total(receipt_jpeg):
    # Ground truth from the file name toom_06042020_01_04999.jpg: toom, 2020-04-06, total 49.99 EUR.
    result = extract_bytes(receipt_jpeg, "toom_06042020_01_04999.jpg", "image/jpeg")

    (page,) = result["pages"]
    assert page["method"] == "ocr" and page["page_number"] == 1
    assert 0.8 < page["ocr_confidence"] <= 1.0
    assert "toom" in result["text"].lower() and "baumarkt" in result["text"].lower()
    assert "49.99" in result["text"]
    assert result["fields"]["total_amount"] == "49.99"
    fields = result["fields"]  # the printed code 'EUR' is a rule seen on too few labelled documents
    assert fields["currency"] == "EUR" or fields["withheld"]["currency"].endswith("candidate 'EUR'")
    # the date has no date label on its line, a rule right only 0.92 of the time; the key-field model
    # chooses it among the page's dates and is sure enough to emit it (docs/documents.md)
    assert result["fields"]["dates"][0] == "2020-04-06" and "dates" not in result["fields"]["withheld"]
    assert result["fields"]["confidence"]["dates"] >= 0.6
    assert result["fields"]["confidence"]["total_amount"] >= 0.9
    [total] = [e for e in result["fields"]["evidence"] if e["field"] == "total_amount"]
    assert total["source"] == "ocr" and total["page"] == 1 and "49" in total["text"] and len(total["bbox"]) == 4


def test_image_only_pdf_goes_to_ocr(receipt_jpeg):
    with Image.open(io.BytesIO(receipt_jpeg)) as im:
        out = io.BytesIO()
        im.save(out, "PDF", resolution=300)  # a scanned-receipt PDF: one JPEG image, no text layer
    result = extract_bytes(out.getvalue(), "scan.pdf", "application/pdf")

    assert [page["method"] for page in result["pages"]] == ["ocr"]
    assert result["pages"][0]["ocr_confidence"] > 0.8
    assert "baumarkt" in result["text"].lower()
    assert result["fields"]["total_amount"] == "49.99"


def test_png_named_pdf_still_works(receipt_header_png):
    result = extract_bytes(receipt_header_png, "receipt.pdf", "application/pdf")
    assert result["pages"][0]["method"] == "ocr"
    assert "toom" in result["text"].lower() and "baumarkt" in result["text"].lower()


def test_ocr_lines_carry_boxes_scores_and_rows(receipt_header_png):
    (rgb,) = load_pages(receipt_header_png)
    result = ocr.ocr_image(rgb)
    height, width = rgb.shape[:2]
    assert result.lines
    for line in result.lines:
        assert len(line.box) == 4
        assert all(0 <= x <= width and 0 <= y <= height for x, y in line.box)
        assert 0.0 <= line.score <= 1.0
    assert result.confidence == pytest.approx(np.mean([line.score for line in result.lines]))
    assert result.text.count("\n") < len(result.lines) or len(result.lines) == 1


def test_huge_images_are_downscaled_and_boxes_mapped_back(receipt_header_png):
    (rgb,) = load_pages(receipt_header_png)
    small = ocr.ocr_image(rgb, max_pixels=rgb.shape[0] * rgb.shape[1] // 4)  # OCR at half width/height
    assert "baumarkt" in small.text.lower()
    xs = [x for line in small.lines for x, _ in line.box]
    assert max(xs) > rgb.shape[1] * 0.6  # coordinates are in the input's pixels, not the downscaled ones


def test_blank_image_skips_the_engine(monkeypatch):
    monkeypatch.setattr(ocr, "get_engine", lambda: pytest.fail("engine used for a blank page"))
    result = ocr.ocr_image(np.full((300, 200, 3), 250, dtype=np.uint8))
    assert (result.lines, result.text, result.confidence) == ([], "", None)


def test_ocr_models_load_from_the_wheel_without_network(monkeypatch, receipt_header_png):
    def no_network(*_args, **_kwargs):
        raise AssertionError("OCR tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    monkeypatch.setattr(ocr, "_engine", None)  # force a fresh engine (models loaded from disk)

    (rgb,) = load_pages(receipt_header_png)
    assert "baumarkt" in ocr.ocr_image(rgb).text.lower()


@pytest.mark.parametrize("bad", [ocr.OcrOptions(rec_batch_num=0), ocr.OcrOptions(det_max_side=16)])
def test_impossible_ocr_options_are_refused(bad):
    with pytest.raises(ValueError):
        ocr.make_engine(bad)


@pytest.mark.parametrize("shape, long_side", [((3300, 900), 1280), ((300, 400), 992), ((1600, 1200), 1280)])
def test_detector_input_is_capped_but_small_pages_still_enlarged(shape, long_side):
    """Capped at 1,280 px on the long side; RapidOCR's min-736 rule still enlarges small pages."""
    engine = ocr.make_engine(ocr.OcrOptions(det_max_side=1280))
    det = engine.text_det.get_preprocess(max(shape)).resize(np.zeros(shape + (3,), dtype=np.uint8))
    assert max(det.shape[:2]) == long_side and det.shape[0] % 32 == det.shape[1] % 32 == 0


def test_capped_detector_still_reads_the_receipt(receipt_header_png):
    (rgb,) = load_pages(receipt_header_png)
    try:
        ocr.configure(ocr.OcrOptions(det_max_side=1280, use_angle_cls=False))
        assert ocr.current_options().det_max_side == 1280
        assert "baumarkt" in ocr.ocr_image(rgb).text.lower()
    finally:
        ocr.configure(ocr.DEFAULT_OPTIONS)
    assert ocr.current_options() == ocr.DEFAULT_OPTIONS
