"""The review queue is a fold of the topics: predictions routed to review are items, the
newest prediction of a doc id replaces an older one, feedback decides the version it names."""
from __future__ import annotations

from conveyor.review.feedback import Decision, decision_id, feedback_record
from conveyor.review.queue import ReviewState


def prediction(doc_id: str, routing: str = "review", label: str = "invoice", reasons=("low confidence",)) -> dict:
    return {"doc_id": doc_id, "trace_id": f"tr-{doc_id}", "label": label, "confidence": 0.5, "routing": routing,
            "reasons": list(reasons), "model_name": "doctype", "model_version": "2.0.0", "model_sha256": "ab" * 32,
            "kind": "document", "top_labels": [], "duplicates": [], "fields": None}


def apply(state: ReviewState, role: str, doc_id: str, value, offset: int, ts: int = 1_000) -> None:
    state.apply(role, doc_id, value, topic=role, partition=0, offset=offset, timestamp_ms=ts)


def test_review_items_waiting_and_the_review_rate():
    state = ReviewState()
    apply(state, "predictions", "a", prediction("a"), 0, ts=1_000)
    apply(state, "predictions", "b", prediction("b", routing="auto"), 1)
    apply(state, "predictions", "c", prediction("c", label="receipt", reasons=("low-confidence field vendor",)), 2,
          ts=500)
    assert [i.doc_id for i in state.waiting()] == ["c", "a"]  # oldest first
    assert [i.doc_id for i in state.waiting(label="invoice")] == ["a"]
    assert [i.doc_id for i in state.waiting(reason="low-confidence field")] == ["c"]
    assert [i.doc_id for i in state.waiting(min_age_s=0.7, now_ms=1_600)] == ["c"]
    assert [i.doc_id for i in state.waiting(max_age_s=0.7, now_ms=1_600)] == ["a"]
    assert state.counts() == {"waiting": 2, "decided": 0, "predictions": 3, "routed_review": 2,
                              "review_rate": 2 / 3}


def test_feedback_decides_only_the_version_it_names():
    state = ReviewState()
    apply(state, "predictions", "a", prediction("a"), 0)
    old = state.item("a")
    record = feedback_record("ns", old, Decision("accept", version="0:0"), "alice", now_ms=5)
    apply(state, "predictions", "a", prediction("a"), 7)  # reprocessed: a newer result replaces the item
    apply(state, "feedback", "a", record, 0)
    assert state.item("a").version == "0:7" and state.item("a").waiting
    assert record["decision_id"] == decision_id("ns", "a", "0:0") != decision_id("ns", "a", "0:7")


def test_a_decision_read_before_its_prediction_still_decides_it():
    state = ReviewState()
    apply(state, "predictions", "a", prediction("a"), 3)
    record = feedback_record("ns", state.item("a"), Decision("accept", version="0:3"), "alice")
    rebuilt = ReviewState()  # topics are read in parallel: feedback may come first
    apply(rebuilt, "feedback", "a", record, 0)
    apply(rebuilt, "predictions", "a", prediction("a"), 3)
    assert rebuilt.item("a").decision == record and rebuilt.waiting() == []
    assert rebuilt.counts()["decided"] == 1


def test_sources_are_indexed_without_their_bytes():
    state = ReviewState()
    state.apply("documents", "a", None, topic="ns.documents", partition=2, offset=11, timestamp_ms=0)
    assert state.sources[("documents", "a")] == ("ns.documents", 2, 11)
