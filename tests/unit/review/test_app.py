"""The review app's HTTP surface without a broker: sign-in, escaping of what documents carry,
unknown items, readiness."""
from __future__ import annotations

from fastapi.testclient import TestClient
from pydantic import SecretStr

from conveyor.review.app import create_app
from conveyor.review.queue import ReviewState
from conveyor.review.settings import ReviewSettings
from conveyor.streams.config.settings import Settings
from tests.unit.review.test_queue import apply, prediction


class NoSources:
    """The app's source reader when the topics hold no document bytes or text."""

    def record(self, role, doc_id):
        return None


def client() -> TestClient:
    state = ReviewState()
    hostile = prediction("a", reasons=("<script>alert(1)</script>",))
    hostile["filename"] = "<img src=x onerror=alert(2)>.pdf"
    apply(state, "predictions", "a", hostile, 0)
    app = create_app(Settings(namespace="ns"), ReviewSettings(users=(("alice", SecretStr("pw")),)), state,
                     writer=None, reader=NoSources())
    return TestClient(app)


def test_every_page_needs_a_reviewer():
    c = client()
    assert c.get("/healthz").status_code == 200
    for path in ("/", "/api/queue", "/items/a", "/metrics"):
        assert c.get(path).status_code == 401
        assert c.get(path, auth=("alice", "wrong")).status_code == 401
    assert c.get("/", auth=("alice", "pw")).status_code == 200


def test_what_a_document_carries_is_escaped():
    c = client()
    for path in ("/", "/items/a"):
        page = c.get(path, auth=("alice", "pw")).text
        assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)" in page
        assert "<img src=x" not in page


def test_unknown_items_and_oversized_bodies_are_refused():
    c = client()
    r = c.get("/items/nope", auth=("alice", "pw"))
    assert r.status_code == 404 and "no prediction routed to review" in r.json()["error"]
    r = c.post("/items/a/decision", auth=("alice", "pw"), data={"action": "accept", "version": "0:0",
                                                                 "comment": "x" * 70_000})
    assert r.status_code == 413
    assert c.get("/readyz").json() == {"ready": True, "error": None}


def test_a_decision_posted_from_another_site_is_refused():
    c = client()
    form = {"action": "accept", "version": "0:0"}
    for headers in ({"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
        r = c.post("/items/a/decision", auth=("alice", "pw"), data=form, headers=headers)
        assert r.status_code == 403 and "cross-site request refused" in r.json()["error"]


def test_the_queue_filter_form_as_a_browser_submits_it():
    c = client()
    blank = c.get("/", params={"reason": "", "label": "", "min_age_h": "", "max_age_h": ""}, auth=("alice", "pw"))
    assert blank.status_code == 200 and 'data-doc-id="a"' in blank.text
    assert c.get("/api/queue", params={"label": "receipt"}, auth=("alice", "pw")).json()["items"] == []
    bad = c.get("/api/queue", params={"min_age_h": "soon"}, auth=("alice", "pw"))
    assert bad.status_code == 422 and "min_age_h must be a number of hours" in bad.json()["error"]


def test_the_reason_filter_lists_kinds_of_reasons():
    from conveyor.review.app import reason_kind

    assert reason_kind("not validated for auto routing (confidence 0.86)") == "not validated for auto routing"
    assert reason_kind("out_of_scope: distance 4000.1 > 3627.3") == "out_of_scope"
    assert reason_kind("low-confidence field vendor") == "low-confidence field vendor"
