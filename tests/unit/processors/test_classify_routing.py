"""Pure unit tests of the routing rules."""
from __future__ import annotations

from processors.classify.routing import (
    DEFAULT_AUTO_THRESHOLD,
    auto_threshold_from,
    decide,
    duplicate_reasons,
    missing_field_reasons,
    select_duplicates,
)

FULL = {"dates": ["2020-03-02"], "total_amount": "12.50", "currency": "EUR", "document_number": None, "vendor": None}


def test_threshold_source():
    assert auto_threshold_from({}) == DEFAULT_AUTO_THRESHOLD == 0.7
    assert auto_threshold_from({"auto_threshold": 0.55}) == 0.55
    assert auto_threshold_from({"auto_threshold": 0.55}, override=0.9) == 0.9


def test_confident_text_is_auto():
    assert decide(kind="text", label="card_arrival", confidence=0.93, threshold=0.7) == ("auto", [])


def test_low_confidence_goes_to_review():
    routing, reasons = decide(kind="text", label="card_arrival", confidence=0.41, threshold=0.7)
    assert routing == "review"
    assert reasons == ["low confidence 0.41 < 0.70"]
    # at the threshold is not "low"
    assert decide(kind="text", label="x", confidence=0.7, threshold=0.7)[0] == "auto"


def test_texts_ignore_fields_and_duplicates():
    assert decide(kind="text", label="receipt", confidence=0.9, fields=None, duplicates=[("d", 0.99)]) == ("auto", [])


def test_missing_required_fields():
    assert missing_field_reasons("receipt", FULL) == []
    assert missing_field_reasons("invoice", {**FULL, "total_amount": None}) == [
        "missing required field: total_amount"
    ]
    assert missing_field_reasons("receipt", {**FULL, "dates": []}) == ["missing required field: dates"]
    assert missing_field_reasons("invoice", None) == [
        "missing required field: total_amount",
        "missing required field: dates",
    ]
    assert missing_field_reasons("invoice", {**FULL, "total_amount": "  "}) == ["missing required field: total_amount"]
    # other document types need no fields
    assert missing_field_reasons("tax_form", None) == []
    assert missing_field_reasons("other", {}) == []


def test_document_with_fields_is_auto_and_without_is_review():
    assert decide(kind="document", label="receipt", confidence=0.95, fields=FULL) == ("auto", [])
    routing, reasons = decide(
        kind="document", label="receipt", confidence=0.5, threshold=0.7, fields={**FULL, "total_amount": None}
    )
    assert routing == "review"
    assert reasons == ["low confidence 0.50 < 0.70", "missing required field: total_amount"]


def test_duplicates_selection_and_reason():
    matches = [("self", 1.0), ("a", 0.97), ("b", 0.80), ("c", 0.951), ("a", 0.96)]
    dups = select_duplicates(matches, doc_id="self", threshold=0.95)
    assert dups == [("a", 0.97), ("c", 0.951)]
    assert duplicate_reasons([("a", 0.97)]) == ["possible duplicate of a (similarity 0.97)"]
    routing, reasons = decide(kind="document", label="tax_form", confidence=0.99, duplicates=dups)
    assert routing == "review"
    assert reasons == [
        "possible duplicate of a (similarity 0.97)",
        "possible duplicate of c (similarity 0.95)",
    ]
    assert select_duplicates([], doc_id="x") == []
