"""PDF extraction: text layer, limits, encryption, damage (no OCR here: fast)."""
from __future__ import annotations

import json

import pytest

from conveyor.processors.errors import (
    CorruptDocumentError,
    DocumentLimitError,
    EmptyDocumentError,
    EncryptedDocumentError,
)
from conveyor.processors.extract import extract_bytes
from conveyor.processors.extract.pdf import extract_pdf, normalise_text


def _no_ocr(_image):
    raise AssertionError("this page should not need OCR")


@pytest.mark.parametrize("name", ["NetpresseInvoice", "AzureInterior", "oyo"])
def test_text_layer_invoice_matches_invoice2data_ground_truth(name, extract_fixture):
    (expected,) = json.loads(extract_fixture(f"{name}.json"))
    result = extract_bytes(extract_fixture(f"{name}.pdf"), f"{name}.pdf", "application/pdf")

    assert result["page_count"] == 1
    assert result["pages"] == [{"page_number": 1, "text": result["text"], "method": "text_layer", "ocr_confidence": None}]
    assert expected["issuer"].lower() in result["text"].lower()
    fields = result["fields"]
    # chosen by the key-field model: emitted when sure enough, else withheld for review with the
    # right candidate; never another amount
    assert _read(fields, "total_amount") == f"{expected['amount']:.2f}"
    assert _read(fields, "dates") == expected["date"]
    assert _read(fields, "currency") == expected["currency"]


def _read(fields: dict, name: str):
    """The value read for ``name``: emitted, or withheld for review with its candidate."""
    value = fields[name][0] if name == "dates" and fields[name] else fields[name]
    if value is None or value == []:
        reason = fields["withheld"][name]
        return reason.rsplit("candidate '", 1)[1][:-1]
    return value


def test_invoice_numbers_of_the_text_layer_invoices(extract_fixture):
    numbers = {
        name: _read(extract_bytes(extract_fixture(f"{name}.pdf"), f"{name}.pdf")["fields"], "document_number")
        for name in ("NetpresseInvoice", "AzureInterior")
    }
    assert numbers == {"NetpresseInvoice": "2022089083", "AzureInterior": "INV/2023/03/0008"}


def test_text_layer_pages_never_call_ocr(extract_fixture):
    pages = extract_pdf(extract_fixture("NetpresseInvoice.pdf"), ocr=_no_ocr)
    assert [(page.page_number, page.method) for page in pages] == [(1, "text_layer")]
    assert "Total TTC : 56,02 €" in pages[0].text
    assert "\r" not in pages[0].text


def test_password_protected_pdf_is_encrypted_error(make_encrypted_pdf):
    data = make_encrypted_pdf(user_password=b"secret")
    with pytest.raises(EncryptedDocumentError, match="password"):
        extract_bytes(data, "locked.pdf")
    # ...and the same file opens with its password (so the fixture is a real PDF).
    pages = extract_pdf(data, ocr=_no_ocr, password="secret")
    assert pages[0].text == "Secret invoice total 12.50"


def test_page_limit_is_checked_before_any_page_is_read(make_blank_pdf):
    with pytest.raises(DocumentLimitError, match="3 pages, more than the limit of 2"):
        extract_bytes(make_blank_pdf(3), "three.pdf", max_pages=2)


def test_blank_pdf_is_empty_without_running_ocr(make_blank_pdf):
    pages = extract_pdf(make_blank_pdf(2), ocr=_no_ocr_needed_for_blank)
    assert [page.text for page in pages] == ["", ""]
    with pytest.raises(EmptyDocumentError, match="no text found"):
        extract_bytes(make_blank_pdf(2), "blank.pdf")


def _no_ocr_needed_for_blank(image):
    from conveyor.processors.extract.ocr import ocr_image

    return ocr_image(image)  # a blank page returns before the OCR engine is touched


@pytest.mark.parametrize(
    "data",
    [
        b"%PDF-1.7\nthis is not a PDF body at all\n%%EOF\n",
        b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\ntrailer << /Root 1 0 R >>\n",
        b"%PDF-",
    ],
)
def test_damaged_pdfs_are_corrupt(data):
    with pytest.raises(CorruptDocumentError, match="PDF"):
        extract_bytes(data, "damaged.pdf")


def test_truncated_real_pdf_is_corrupt(extract_fixture):
    data = extract_fixture("oyo.pdf")
    with pytest.raises(CorruptDocumentError, match="damaged or invalid PDF"):
        extract_bytes(data[: len(data) // 3], "cut.pdf")


def test_normalise_text_strips_control_characters():
    assert normalise_text("a\r\nb\x00c\x0c\r\n\n") == "a\nbc"
