"""Third-party plugins end to end on the real stack (the example packages in ``examples/``,
installed in the test venv by ``make install``): a processor plugin run by ``conveyor run
langid`` with its own topics, a sink plugin (Qdrant) behind ``index`` and ``classify``, and
one clear line for a name nobody registered."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conveyor.dlq import envelope
from conveyor.streams.kafka.admin import create_topics
from conveyor.streams.kafka.io import InputProducer
from conveyor.streams.kafka.serde import AvroSerde
from conveyor.streams.kafka.topics import catalogue, topic
from conveyor.streams.topology.pipeline import pipeline
from conveyor.tools.demo.run import CORPUS
from tests.integration.helpers import cli_env, read_all

pytest.importorskip("conveyor_langid", reason="example plugin not installed (make install)")
pytest.importorskip("conveyor_qdrant", reason="example plugin not installed (make install)")

CONVEYOR = str(Path(sys.executable).with_name("conveyor"))


def _start(settings, *names: str, **extra_env: str) -> subprocess.Popen:
    env = {**os.environ, **cli_env(settings), **extra_env}
    return subprocess.Popen([CONVEYOR, "run", *names], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)


def _stop(proc: subprocess.Popen) -> str:
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-2000:]
    return err


def test_a_processor_plugin_is_a_stage_with_its_own_topics(settings):
    assert "langid" in pipeline().names
    specs = catalogue(settings)
    assert {"languages", "retry.langid", "dlq.langid"} <= set(specs)
    assert specs["languages"].schema_path.name == "language.avsc"
    create_topics(settings)
    texts = {"en-1": "Where is my new card? It still has not arrived.",
             "de-1": "Wo ist meine neue Karte? Sie ist immer noch nicht angekommen.",
             "fr-1": "Où est ma nouvelle carte ? Elle n'est toujours pas arrivée.",
             "blank-1": "   "}
    with InputProducer(settings) as p:
        for doc_id, text in texts.items():
            p.text(text, doc_id=doc_id)

    proc = _start(settings, "langid")
    try:
        out = read_all(settings, topic(settings, "languages"), expect=3, timeout=90)
        dead = read_all(settings, topic(settings, "dlq.langid"), expect=1, timeout=30)
    finally:
        _stop(proc)
    serde = AvroSerde(settings)
    got = {m.key().decode(): serde.decode(m.topic(), m.value()) for m in out}
    assert {k: v["language"] for k, v in got.items()} == {"en-1": "en", "de-1": "de", "fr-1": "fr"}
    assert all(v["producer"] == "langid" and v["confidence"] > 0.9 for v in got.values())
    [blank] = dead
    h = envelope.decode_headers(blank.headers())
    assert blank.key() == b"blank-1" and h[envelope.PROCESSOR] == "langid"
    assert h[envelope.EXCEPTION_CLASS] == "conveyor.processors.errors.ModelInputError"
    assert h[envelope.GROUP] == settings.group_id("langid")


def test_an_unknown_processor_name_is_one_clear_line(settings):
    res = subprocess.run([CONVEYOR, "run", "translate"], env={**os.environ, **cli_env(settings)},
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 1
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert lines == [f"Error: unknown processor 'translate'; available: {', '.join(pipeline().names)}"]


def test_a_sink_plugin_stores_the_rows_and_finds_duplicates(settings, tmp_path, monkeypatch):
    create_topics(settings)
    qdrant = {"CONVEYOR_VECTOR_SINK": "qdrant", "CONVEYOR_QDRANT_PATH": str(tmp_path / "qdrant")}
    invoice = CORPUS / "invoices" / "Invoice_1.pdf"
    proc = _start(settings, "extract", "embed", "index", "classify", **qdrant)
    try:
        with InputProducer(settings) as p:
            p.document(invoice, doc_id="inv-first")
        [first] = read_all(settings, topic(settings, "predictions"), expect=1, timeout=180)
        time.sleep(3)  # the index stage commits its upsert beside classify: let it land first
        with InputProducer(settings) as p:
            p.document(invoice, doc_id="inv-again")
        preds = read_all(settings, topic(settings, "predictions"), expect=2, timeout=180)
    finally:
        _stop(proc)
    serde = AvroSerde(settings)
    again = next(serde.decode(m.topic(), m.value()) for m in preds if m.key() == b"inv-again")
    assert again["routing"] == "review"
    assert any(r.startswith("possible duplicate of inv-first") for r in again["reasons"]), again["reasons"]
    assert first.key() == b"inv-first"

    from conveyor_qdrant import QdrantSink

    monkeypatch.setenv("CONVEYOR_QDRANT_PATH", qdrant["CONVEYOR_QDRANT_PATH"])
    store = QdrantSink.from_settings(settings)  # the folder the stopped process wrote
    try:
        assert store.count("inv-first") >= 1 and store.count("inv-again") == store.count("inv-first")
    finally:
        store.close()
