"""Decisions are checked before anything is written: unknown fields and labels, long values,
stale versions and empty corrections are refused with a clear message."""
from __future__ import annotations

import pytest

from conveyor.review.app import decision_from_form
from conveyor.review.feedback import ConflictError, Decision, DecisionError, feedback_record, same_decision, validate
from conveyor.review.queue import ReviewItem
from tests.unit.review.test_queue import prediction

LABELS = ("receipt", "invoice", "tax_form", "other")


def item() -> ReviewItem:
    p = prediction("a")
    p["fields"] = {"dates": ["2024-01-02"], "total_amount": "12.50", "currency": None, "document_number": None,
                   "vendor": None, "confidence": {}, "withheld": {}, "evidence": []}
    return ReviewItem("a", "1:4", p, 0)


def test_a_form_keeps_only_what_the_reviewer_changed():
    d = decision_from_form(item(), {"action": "correct", "version": "1:4", "label": "receipt",
                                    "field.total_amount": "12.60", "field.dates": "2024-01-02", "field.vendor": ""})
    assert d.label == "receipt" and d.fields == (("total_amount", "12.60"),)
    record = feedback_record("ns", item(), d, "alice", now_ms=1)
    assert record["label"] == "receipt" and record["predicted_label"] == "invoice"
    assert record["corrected_fields"] == {"total_amount": "12.60"} and record["item_version"] == "1:4"
    accepted = feedback_record("ns", item(), decision_from_form(item(), {"action": "accept", "version": "1:4"}), "bob")
    assert accepted["label"] == "invoice" and accepted["corrected_fields"] == {}
    assert not same_decision(record, accepted) and same_decision(record, {**record, "reviewer": "bob"})


@pytest.mark.parametrize("decision, error, message", [
    (Decision("accept", version="1:3"), ConflictError, "stale version '1:3'"),
    (Decision("approve", version="1:4"), DecisionError, "unknown action 'approve'"),  # type: ignore[arg-type]  # the bad input under test
    (Decision("correct", version="1:4", fields=(("swift_code", "DE00"),)), DecisionError, "unknown field 'swift_code'"),
    (Decision("correct", version="1:4", fields=(("vendor", "x" * 201),)), DecisionError, "201 characters"),
    (Decision("correct", version="1:4", label="passport"), DecisionError, "unknown label 'passport'"),
    (Decision("correct", version="1:4"), DecisionError, "must change the label or at least one field"),
    (Decision("duplicate", version="1:4"), DecisionError, "needs duplicate_of"),
    (Decision("duplicate", version="1:4", duplicate_of="a"), DecisionError, "duplicate of itself"),
])
def test_bad_decisions_are_refused(decision, error, message):
    with pytest.raises(error, match=message):
        validate(item(), decision, LABELS)


def test_a_form_field_outside_the_schema_is_refused():
    with pytest.raises(DecisionError, match="unknown field 'swift_code'"):
        decision_from_form(item(), {"action": "correct", "version": "1:4", "field.swift_code": "DE00"})
    with pytest.raises(DecisionError, match="version missing"):
        decision_from_form(item(), {"action": "accept"})
