"""``/healthz``, ``/readyz`` and ``/metrics`` of a running stage, on the real stack: readiness
follows a real Milvus server going away and coming back; liveness fails while the loop is stuck."""
from __future__ import annotations

import dataclasses
import json
import threading
import time
import urllib.error
import urllib.request

from conveyor.processors.base import Processor
from conveyor.sinks.milvus import MilvusSink
from conveyor.streams.kafka.admin import create_topics
from conveyor.streams.kafka.io import InputProducer
from conveyor.streams.runtime.health import Health, serve
from conveyor.streams.runtime.runner import Runner, Stage
from conveyor.streams.runtime.stages import SinkRows
from tests.integration.test_milvus_sink import milvus_server  # noqa: F401 - the fixture
from tests.ports import server_port


def _get(port: int, path: str) -> tuple[int, dict | str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            body = r.read().decode()
            return r.status, json.loads(body) if path != "/metrics" else body
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read().decode())


def _until(port: int, path: str, status: int, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        code, body = _get(port, path)
        if code == status:
            return body
        assert time.monotonic() < deadline, f"{path} stayed {code} {body}, expected {status}"
        time.sleep(0.5)


def _start(runner: Runner) -> threading.Thread:
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    return thread


def test_readiness_follows_the_milvus_server(settings, milvus_server):  # noqa: F811 - pytest injects the imported fixture
    settings = dataclasses.replace(settings, milvus_uri=milvus_server.uri)
    create_topics(settings)
    sink = MilvusSink.from_settings(settings)
    health, port = Health(), server_port()
    runner = Runner(settings, Stage(SinkRows("index", sink), ("embedded",), None, sink=sink), health=health)
    server = serve(port, health=health)
    thread = _start(runner)
    try:
        ready = _until(port, "/readyz", 200)
        assert ready["checks"] == {"index: group joined": True, "kafka": True, "schema registry": True,
                                   "index: sink": True}
        milvus_server.stop()
        down = _until(port, "/readyz", 503)
        assert down["checks"]["index: sink"] is False and down["checks"]["kafka"] is True
        assert _get(port, "/healthz")[0] == 200  # not ready, but alive: waiting is not stuck
        milvus_server.start()
        _until(port, "/readyz", 200, timeout=120)
        metrics = _get(port, "/metrics")[1]
        assert 'conveyor_ready{processor="index"} 1.0' in metrics
        assert 'conveyor_dead_lettered_total{error_class="transient",processor="index"} 0.0' in metrics
    finally:
        runner.stop()
        thread.join(60)
        server.shutdown()
        sink.close()


class Stuck(Processor):
    """Blocks on every record until released."""

    name = "classify"
    release = threading.Event()

    def process_one(self, record):
        self.release.wait(60)
        return []


def test_liveness_fails_while_the_loop_is_stuck(settings):
    settings = dataclasses.replace(settings, liveness_seconds=3.0)
    create_topics(settings)
    health, port = Health(), server_port()
    runner = Runner(settings, Stage(Stuck(), ("texts",), "predictions"), health=health)
    server = serve(port, health=health)
    thread = _start(runner)
    try:
        assert _until(port, "/healthz", 200)["live"] is True
        with InputProducer(settings) as p:
            p.text("this one never finishes")
        stuck = _until(port, "/healthz", 503, timeout=90)
        assert stuck["heartbeats_age_s"]["classify: loop"] >= 3.0
        Stuck.release.set()
        _until(port, "/healthz", 200)
    finally:
        Stuck.release.set()
        runner.stop()
        thread.join(60)
        server.shutdown()
