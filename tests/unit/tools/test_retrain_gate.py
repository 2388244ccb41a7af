"""The retrain gate promotes a candidate only when it beats the live model on the held-out
sources, loses no document on any of them, and meets the floors."""
from __future__ import annotations

from conveyor.tools.training.retrain import gate

FLOORS = {"cv_accuracy": 0.91}


def rows(*rights):
    return [{"source": s, "documents": 10, "right": r, "accuracy": r / 10} for s, r in zip(("mindee", "feedback"), rights)]


def test_better_everywhere_is_promoted():
    assert gate(rows(7, 8), rows(7, 10), {"cv_accuracy": 0.95}, FLOORS) == ("promoted", [])


def test_a_tie_a_lost_document_or_a_missed_floor_is_rejected():
    decision, reasons = gate(rows(7, 8), rows(7, 8), {"cv_accuracy": 0.95}, FLOORS)
    assert decision == "rejected" and reasons == ["does not beat the live model: mean held-out accuracy 0.7500 vs 0.7500"]
    decision, reasons = gate(rows(7, 2), rows(5, 10), {"cv_accuracy": 0.95}, FLOORS)
    assert decision == "rejected" and reasons == ["worse on mindee: 5/10 right, live 7/10"]
    decision, reasons = gate(rows(7, 8), rows(7, 10), {"cv_accuracy": 0.90}, FLOORS)
    assert decision == "rejected" and reasons == ["cv_accuracy = 0.9000 < floor 0.91"]
