"""The faust drift app against the real local stack: a label shift raises an alarm.

Records are produced first (event times of four 2-second windows, 20 s in the
past): windows 0-1 with one set of labels, windows 2-3 with another, embeddings
and lengths unchanged, plus one undecodable record. The drift worker runs as
``python -m conveyor.streams.drift`` in a subprocess (as ``conveyor run drift`` would)
and is stopped with SIGTERM. Every wait is bounded.
"""
from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from confluent_kafka import KafkaError

from conveyor.dlq import envelope
from conveyor.streams.config import env
from conveyor.streams.drift import run_drift
from conveyor.streams.drift.monitor import EMBEDDING, TEXT_LENGTH, label_signal
from conveyor.streams.kafka.admin import create_topics, delete_topics
from conveyor.streams.kafka.clients import make_admin, make_consumer, make_producer
from conveyor.streams.kafka.serde import AvroSerde, key_bytes
from conveyor.streams.kafka.topics import catalogue
from tests.integration.helpers import read_all

REPO = Path(__file__).resolve().parents[2]
WINDOW_S = 2
W = WINDOW_S * 1000
PER_WINDOW = 40
MODEL = "test-clf"
LABELS_REF = ["card_arrival", "card_linking", "exchange_rate"]
LABELS_SHIFTED = ["lost_or_stolen_card", "pin_blocked"]
DEADLINE_S = 90


def _envelope(doc_id: str, ts: int) -> dict:
    return {"doc_id": doc_id, "trace_id": doc_id, "event_time": ts, "producer": "test",
            "producer_version": "0", "kind": "text", "filename": None}


def _embedded(doc_id: str, ts: int, vector: list[float], length: int) -> dict:
    return {**_envelope(doc_id, ts), "text_length": length, "ocr_confidence": None, "page_count": 0,
            "fields": None, "model_name": "minilm", "model_version": "0", "model_sha256": "0" * 64,
            "chunks": [], "doc_vector": vector}


def _prediction(doc_id: str, ts: int, label: str) -> dict:
    return {**_envelope(doc_id, ts), "label": label, "confidence": 0.9, "top_labels": [],
            "model_name": MODEL, "model_version": "0", "model_sha256": "0" * 64, "routing": "auto",
            "reasons": [], "duplicates": [], "fields": None}


def _produce_inputs(settings, t0: int) -> None:
    specs = catalogue(settings)
    serde = AvroSerde(settings)
    producer = make_producer(settings)
    rng = np.random.default_rng(5)
    centre = rng.normal(size=384)
    for w in range(4):
        labels = LABELS_REF if w < 2 else LABELS_SHIFTED
        for i in range(PER_WINDOW):
            ts = t0 + w * W + i * (W // PER_WINDOW)
            doc_id = f"d{w}-{i}"
            v = centre + rng.normal(size=384) * 0.5
            v = (v / np.linalg.norm(v)).astype(float).tolist()
            producer.produce(specs["embedded"].name, key=key_bytes(doc_id), timestamp=ts,
                             value=serde.encode(specs["embedded"].name,
                                                _embedded(doc_id, ts, v, 60 + int(rng.integers(0, 40)))))
            producer.produce(specs["predictions"].name, key=key_bytes(doc_id), timestamp=ts,
                             value=serde.encode(specs["predictions"].name,
                                                _prediction(doc_id, ts, labels[i % len(labels)])))
            producer.poll(0)
        if w == 0:  # not Avro: must be logged, counted and skipped
            producer.produce(specs["predictions"].name, key=b"junk", value=b"not avro at all", timestamp=ts)
    assert producer.flush(30) == 0


def _read_reports(settings, topic: str, serde: AvroSerde, done, timeout: float,
                  alive=lambda: True) -> list[tuple[bytes, dict]]:
    consumer = make_consumer(settings, f"{settings.namespace}.test-reader", **{"statistics.interval.ms": 0})
    consumer.subscribe([topic])
    out: list[tuple[bytes, dict]] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and not done(out) and alive():
            msg = consumer.poll(0.5)
            if msg is None or (msg.error() and msg.error().code() == KafkaError._PARTITION_EOF):
                continue
            assert msg.error() is None, msg.error()
            out.append((msg.key(), serde.decode(topic, msg.value())))
    finally:
        consumer.close()
    return out


@pytest.fixture
def drift_settings(settings):
    """Per-test settings with 2-second windows; the namespace's topics (and faust's
    changelog topics) are deleted afterwards."""
    s = dataclasses.replace(settings, drift_window_seconds=WINDOW_S)
    yield s
    delete_topics(s)
    admin = make_admin(s)
    changelogs = [t for t in admin.list_topics(timeout=10).topics if t.startswith(f"{s.namespace}.drift-")]
    if changelogs:
        for fut in admin.delete_topics(changelogs, operation_timeout=30).values():
            try:
                fut.result()
            except Exception:  # noqa: BLE001 - best-effort cleanup
                pass


def test_run_drift_refuses_missing_topics(drift_settings):
    with pytest.raises(RuntimeError, match="does not exist"):
        run_drift(drift_settings)


def test_label_shift_raises_drift_alarm(drift_settings, tmp_path):
    check_label_shift_alarm(drift_settings, tmp_path)


def check_label_shift_alarm(s, tmp_path: Path) -> None:
    """The label-shift scenario on the stack ``s`` names (security settings from ``os.environ``,
    as the worker subprocess inherits them)."""
    create_topics(s)
    specs = catalogue(s)
    now = int(time.time() * 1000)
    t0 = (now // W) * W - 10 * W
    _produce_inputs(s, t0)

    child_env = {**os.environ,
                 env.NAMESPACE: s.namespace,
                 env.BOOTSTRAP_SERVERS: s.bootstrap_servers,
                 env.SCHEMA_REGISTRY_URL: s.schema_registry_url,
                 env.DRIFT_WINDOW_SECONDS: str(WINDOW_S),
                 env.HOME: str(tmp_path / "home"),
                 env.LOG_LEVEL: "INFO",
                 env.METRICS_PORT: "0",
                 "PYTHONPATH": str(REPO)}
    log_path = tmp_path / "drift.log"
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "conveyor.streams.drift", "--min-samples", "10",
             "--idle", "5", "--lateness", "0.5", "--tick", "0.5"],
            cwd=REPO, env=child_env, stdout=log_file, stderr=subprocess.STDOUT)
        try:
            label = label_signal(MODEL)

            def done(reports):
                windows = {(r["signal"], r["window_start"]) for _, r in reports}
                return all((sig, t0 + k * W) in windows
                           for sig in (label, EMBEDDING, TEXT_LENGTH) for k in (1, 2, 3))

            serde = AvroSerde(s)
            reports = _read_reports(s, specs["drift"].name, serde, done, timeout=DEADLINE_S,
                                    alive=lambda: proc.poll() is None)
            assert proc.poll() is None, "drift worker died:\n" + log_path.read_text()[-4000:]
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                rc = proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
                rc = None
    log_text = log_path.read_text()
    assert done(reports), f"missing reports, got {[(r['signal'], r['window_start'] - t0) for _, r in reports]}\n" \
                          + log_text[-4000:]
    by_key = {(r["signal"], r["window_start"]): (k, r) for k, r in reports}

    # window 0 is the reference: not reported
    assert all(r["window_start"] >= t0 + W for _, r in reports)
    # unchanged labels in window 1, shifted in windows 2 and 3
    key, calm = by_key[(label, t0 + W)]
    assert key == label.encode() and calm["statistic"] == "chi2" and calm["alarm"] is False
    for k in (2, 3):
        _, shifted = by_key[(label, t0 + k * W)]
        assert shifted["alarm"] is True, shifted
        assert shifted["statistic"] == "chi2" and shifted["value"] > shifted["threshold"]
        assert shifted["p_value"] <= shifted["alpha"]
        assert shifted["sample_size"] == PER_WINDOW and shifted["reference_size"] == PER_WINDOW
        assert shifted["window_end"] == shifted["window_start"] + W
        assert shifted["producer"] == "drift"
    # embeddings and lengths did not move
    for sig, statistic in ((EMBEDDING, "mmd2"), (TEXT_LENGTH, "ks")):
        for k in (1, 2, 3):
            report = by_key[(sig, t0 + k * W)][1]
            assert report["alarm"] is False and report["statistic"] == statistic, report
            assert report["sample_size"] == PER_WINDOW
    # the junk record was dead-lettered unchanged, not fatal; SIGTERM stopped the worker cleanly
    assert "undecodable" in log_text
    dead = read_all(s, specs["dlq.drift"].name, expect=1, timeout=20)
    assert [(m.key(), m.value()) for m in dead] == [(b"junk", b"not avro at all")]
    headers = envelope.decode_headers(dead[0].headers())
    assert headers[envelope.PROCESSOR] == "drift" and headers[envelope.ORIGIN_TOPIC] == specs["predictions"].name
    assert headers[envelope.EXCEPTION_CLASS] == "conveyor.streams.kafka.serde.DecodeError"
    assert rc == 0, log_text[-4000:]
