"""The retrain gate promotes a candidate only when it beats the live model on the held-out
sources (lower mean log loss), loses no document on any of them, and meets the floors."""
from __future__ import annotations

from conveyor.tools.training.retrain import gate

FLOORS = {"cv_accuracy": 0.91}


def rows(*rights, loss=(0.5, 0.5)):
    return [{"source": s, "documents": 10, "right": r, "accuracy": r / 10, "log_loss": lo}
            for s, r, lo in zip(("mindee", "feedback"), rights, loss)]


def test_better_everywhere_is_promoted():
    assert gate(rows(7, 8), rows(7, 10, loss=(0.5, 0.2)), {"cv_accuracy": 0.95}, FLOORS) == ("promoted", [])


def test_surer_of_the_same_right_answers_is_better():
    """Reviewers who confirm what the model already says make it surer: same counts, lower log loss."""
    assert gate(rows(7, 10, loss=(0.6, 0.9)), rows(7, 10, loss=(0.6, 0.4)), {"cv_accuracy": 0.95}, FLOORS) == \
        ("promoted", [])


def test_a_tie_a_lost_document_or_a_missed_floor_is_rejected():
    decision, reasons = gate(rows(7, 8), rows(7, 8), {"cv_accuracy": 0.95}, FLOORS)
    assert decision == "rejected" and reasons == ["does not beat the live model: mean held-out log loss 0.5000 vs 0.5000"]
    decision, reasons = gate(rows(7, 2, loss=(0.5, 2.0)), rows(5, 10, loss=(0.7, 0.1)), {"cv_accuracy": 0.95}, FLOORS)
    assert decision == "rejected" and reasons == ["worse on mindee: 5/10 right, live 7/10"]
    decision, reasons = gate(rows(7, 8), rows(7, 10, loss=(0.5, 0.6)), {"cv_accuracy": 0.95}, FLOORS)
    assert decision == "rejected" and reasons[0].startswith("does not beat the live model")  # more right, less sure
    decision, reasons = gate(rows(7, 8), rows(7, 10, loss=(0.5, 0.2)), {"cv_accuracy": 0.90}, FLOORS)
    assert decision == "rejected" and reasons == ["cv_accuracy = 0.9000 < floor 0.91"]


def test_a_candidate_that_cannot_name_a_type_the_live_model_names_is_rejected():
    decision, reasons = gate(rows(7, 8), rows(7, 10, loss=(0.5, 0.2)), {"cv_accuracy": 0.95}, FLOORS,
                             lost_types=["contract", "credit_note"])
    assert decision == "rejected" and reasons == [
        "cannot name contract, credit_note, which the live model names: no training document of them "
        "(the datasets not built? make datasets)"]
