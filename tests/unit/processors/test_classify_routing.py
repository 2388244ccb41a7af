"""Pure unit tests of the routing rules."""
from __future__ import annotations

import numpy as np
import pytest

from conveyor.processors.classify.routing import (
    DEFAULT_AUTO_THRESHOLD,
    OUT_OF_SCOPE,
    auto_threshold_from,
    auto_thresholds_from,
    choose_auto_threshold,
    decide,
    duplicate_reasons,
    missing_field_reasons,
    ood_threshold_from,
    out_of_scope_reasons,
    select_duplicates,
    wilson_lower_bound,
)

FULL = {"dates": ["2020-03-02"], "total_amount": "12.50", "currency": "EUR", "document_number": "R-1", "vendor": None}


def test_threshold_source():
    assert auto_threshold_from({}) == DEFAULT_AUTO_THRESHOLD == 0.7
    assert auto_threshold_from({"auto_threshold": 0.55}) == 0.55
    assert auto_threshold_from({"auto_threshold": 0.55}, override=0.9) == 0.9


def test_each_document_type_has_its_own_threshold_and_an_override_never_enables_a_type():
    manifest = {"auto_routing": {"per_type": {"receipt": {"enabled": True, "threshold": 0.66},
                                              "contract": {"enabled": False, "threshold": None}}}}
    thresholds = auto_thresholds_from(manifest, ["receipt", "contract", "invoice"])
    assert thresholds == {"receipt": 0.66, "contract": float("inf"), "invoice": float("inf")}
    overridden = auto_thresholds_from(manifest, ["receipt", "contract"], override=0.9)
    assert overridden == {"receipt": 0.9, "contract": float("inf")}
    assert auto_thresholds_from({"auto_threshold": 0.5}, ["a", "b"]) == {"a": 0.5, "b": 0.5}  # one for every label


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
        "missing required field: document_number",
        "missing required field: dates",
        "missing required field: total_amount",
    ]
    assert missing_field_reasons("contract", {"parties": [], "effective_date": "2020-01-01"}) == [
        "missing required field: parties"]
    assert missing_field_reasons("invoice", {**FULL, "total_amount": "  "}) == ["missing required field: total_amount"]
    # other document types need no fields
    assert missing_field_reasons("tax_form", None) == []
    assert missing_field_reasons("other", {}) == []


def test_document_with_fields_is_auto_and_without_is_review():
    assert decide(kind="document", label="receipt", confidence=0.95, fields=FULL) == ("auto", [])
    # a field the type does not require may be withheld without holding the document back
    withheld = {**FULL, "vendor": None, "withheld": {"vendor": "model confidence 0.80 < 0.95; candidate 'X'"}}
    assert decide(kind="document", label="receipt", confidence=0.95, fields=withheld) == ("auto", [])
    withheld_total = {**FULL, "total_amount": None, "withheld": {"total_amount": "model confidence 0.5 < 0.9"}}
    assert decide(kind="document", label="receipt", confidence=0.95, fields=withheld_total) == (
        "review", ["low-confidence field total_amount"])
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


# ------------------------------------------------------------ auto threshold
def test_wilson_lower_bound():
    assert wilson_lower_bound(0, 0) == 0.0
    # textbook value: 98/100 at z=1.6449 -> about 0.9413
    assert wilson_lower_bound(98, 100) == pytest.approx(0.9413, abs=1e-3)
    assert wilson_lower_bound(980, 1000) < 0.98 < wilson_lower_bound(9950, 10000)
    assert wilson_lower_bound(100, 100) < 1.0


def test_choose_auto_threshold_picks_lowest_precise_enough():
    # 1000 confident right answers at 0.95, 100 wrong ones at 0.55, 100 right ones at 0.60
    conf = np.r_[np.full(1000, 0.95), np.full(100, 0.55), np.full(100, 0.60)]
    correct = np.r_[np.ones(1000, bool), np.zeros(100, bool), np.ones(100, bool)]
    t, table = choose_auto_threshold(conf, correct, 0.98)
    assert t == 0.56  # first grid value above the wrong answers; 0.55 still lets them in
    row = {r["threshold"]: r for r in table}
    assert row[0.56]["auto_rate"] == pytest.approx(1100 / 1200, abs=1e-4) and row[0.56]["precision"] == 1.0
    assert row[0.55]["precision"] == pytest.approx(1100 / 1200, abs=1e-4)
    assert len(table) == 100


def test_choose_auto_threshold_needs_a_margin_not_just_the_sample():
    # 98.0 % precise on 500 samples: the point estimate meets 0.98, the lower bound does not
    conf = np.r_[np.full(490, 0.9), np.full(10, 0.9)]
    correct = np.r_[np.ones(490, bool), np.zeros(10, bool)]
    t, _ = choose_auto_threshold(conf, correct, 0.98)
    assert t == 0.99  # nothing qualifies -> the largest grid value
    t_point, _ = choose_auto_threshold(conf, correct, 0.98, z=0.0)  # z=0: plain precision
    assert t_point == 0.0


def test_choose_auto_threshold_rejects_bad_shapes():
    with pytest.raises(ValueError):
        choose_auto_threshold(np.zeros(3), np.zeros(2, bool))


# ----------------------------------------------------------- out of scope
def test_out_of_scope_reason():
    assert out_of_scope_reasons(1834.24, 1290.5) == ["out_of_scope: distance 1834.2 > 1290.5"]
    assert out_of_scope_reasons(1290.5, 1290.5) == []  # at the threshold is in scope
    assert out_of_scope_reasons(None, 1290.5) == [] and out_of_scope_reasons(5000.0, None) == []
    assert ood_threshold_from({"out_of_scope": {"threshold": 12.5}}) == 12.5
    assert ood_threshold_from({}) is None


def test_out_of_scope_text_goes_to_review_even_when_confident():
    routing, reasons = decide(kind="text", label="card_arrival", confidence=0.99, threshold=0.7,
                              ood_score=2500.0, ood_threshold=1300.0)
    assert routing == "review" and reasons[0].startswith(OUT_OF_SCOPE + ":")
    # both rules fire: out_of_scope first, then low confidence
    routing, reasons = decide(kind="text", label="x", confidence=0.2, threshold=0.7, ood_score=2500.0,
                              ood_threshold=1300.0)
    assert [r.split(":")[0].split(" 0")[0] for r in reasons] == [OUT_OF_SCOPE, "low confidence"]
    # in scope and confident: auto
    assert decide(kind="text", label="x", confidence=0.99, threshold=0.7, ood_score=300.0,
                  ood_threshold=1300.0) == ("auto", [])


def test_required_fields_must_be_jointly_sure_enough_for_auto():
    sure = {**FULL, "confidence": {"dates": 0.99, "total_amount": 0.98}}
    assert decide(kind="document", label="receipt", confidence=0.95, fields=sure, joint_threshold=0.95) == ("auto", [])
    unsure = {**FULL, "confidence": {"dates": 0.99, "total_amount": 0.93}}
    assert decide(kind="document", label="receipt", confidence=0.95, fields=unsure, joint_threshold=0.95) == (
        "review", ["required fields' joint confidence 0.92 < 0.95"])
    # a missing field has its own reason, not a joint one; a type requiring nothing has no joint check
    routing, reasons = decide(kind="document", label="receipt", confidence=0.95, joint_threshold=0.95,
                              fields={**unsure, "total_amount": None})
    assert reasons == ["missing required field: total_amount"]
    assert decide(kind="document", label="form", confidence=0.95, fields=unsure, joint_threshold=0.99)[0] == "auto"


def test_a_contracts_fields_are_dropped_from_other_types_and_kept_on_contracts():
    from conveyor.processors.classify.routing import fields_for_type

    fields = {**FULL, "parties": ["ACME Inc."], "effective_date": "2020-01-01", "confidence": {"effective_date": 0.99},
              "withheld": {"parties": "model confidence 0.50 < 0.90; candidate 'X LLC'"}, "evidence": []}
    receipt = fields_for_type("receipt", fields)
    assert receipt["parties"] == [] and receipt["effective_date"] is None
    assert "parties" not in receipt["withheld"] and "effective_date" not in receipt["confidence"]
    contract = fields_for_type("contract", fields)
    assert contract["parties"] == ["ACME Inc."] and contract["effective_date"] == "2020-01-01"
    assert contract["total_amount"] is None and contract["withheld"]["total_amount"].startswith("not a field of a contract")
