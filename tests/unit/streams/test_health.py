"""Liveness heartbeats, readiness checks and their HTTP answers (no network: the WSGI app is
called directly), and the JSON log format."""
from __future__ import annotations

import io
import json
import logging
import time

from prometheus_client import REGISTRY

from conveyor.streams.runtime.health import Health
from conveyor.streams.telemetry.logs import bind_processor, configure, record_context


def _call(app, path: str) -> tuple[str, dict]:
    seen = {}
    body = app({"PATH_INFO": path, "REQUEST_METHOD": "GET"}, lambda status, headers: seen.update(status=status))
    return seen["status"], json.loads(b"".join(body))


def test_a_stale_heartbeat_fails_liveness():
    h = Health()
    beat = h.heartbeat("embed: loop", bound=0.2)
    assert _call(h.wsgi_app(), "/healthz") == ("200 OK", {"live": True, "heartbeats_age_s": {"embed: loop": 0.0}})
    time.sleep(0.3)
    status, body = _call(h.wsgi_app(), "/healthz")
    assert status.startswith("503") and body["heartbeats_age_s"]["embed: loop"] >= 0.2
    beat.beat()
    assert _call(h.wsgi_app(), "/healthz")[0] == "200 OK"


def test_ready_only_when_every_check_ran_and_passed_and_exported_per_stage():
    h = Health()
    sink_up = [True]
    h.check("index: group joined", lambda: True)
    h.check("index: sink", lambda: sink_up[0])
    h.check("kafka", lambda: True)
    assert _call(h.wsgi_app(), "/readyz")[0].startswith("503")  # nothing ran yet
    h.run_checks()
    assert _call(h.wsgi_app(), "/readyz") == ("200 OK", {"ready": True, "checks": {
        "index: group joined": True, "index: sink": True, "kafka": True}})
    assert REGISTRY.get_sample_value("conveyor_ready", {"processor": "index"}) == 1.0
    sink_up[0] = False
    h.run_checks()
    status, body = _call(h.wsgi_app(), "/readyz")
    assert status.startswith("503") and body["checks"]["index: sink"] is False
    assert REGISTRY.get_sample_value("conveyor_ready", {"processor": "index"}) == 0.0
    h.check("index: boom", lambda: 1 / 0)  # a check that raises is "not ready", not a crash
    h.run_checks()
    assert _call(h.wsgi_app(), "/readyz")[1]["checks"]["index: boom"] is False
    h.remove("index: ")
    assert set(h.ready()[1]) == {"kafka"}


def test_json_logs_carry_processor_doc_and_trace_ids():
    configure("INFO", "json")
    stream = io.StringIO()
    root = logging.getLogger()
    root.handlers[0].setStream(stream)
    bind_processor("classify")
    logging.getLogger("conveyor.test").warning("dead-lettering it", extra=record_context(b"doc-1", "t-9"))
    logging.getLogger("httpx").info("GET /subjects 200")  # third-party INFO stays quiet
    [line] = stream.getvalue().splitlines()
    entry = json.loads(line)
    assert {k: entry[k] for k in ("level", "logger", "message", "processor", "doc_id", "trace_id")} == {
        "level": "WARNING", "logger": "conveyor.test", "message": "dead-lettering it", "processor": "classify",
        "doc_id": "doc-1", "trace_id": "t-9"}
    configure("INFO", "text")
