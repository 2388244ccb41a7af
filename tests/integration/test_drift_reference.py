"""A real domain shift through the faust drift app, against a stored reference managed with
``conveyor drift reference pin|show|reset`` (the click group ``conveyor.streams.drift.cli.drift``).

1. ``pin --texts``: 300 BANKING77 train queries, embedded with the shipped MiniLM and
   classified with the shipped intent model, become the stored reference;
2. four 2-second windows of real ``embedded`` + ``predictions`` records: BANKING77 test
   queries, then CLINC150 queries of other domains (real vectors, lengths, predicted labels);
3. the worker (``python -m conveyor.streams.drift``) loads the stored reference at start, so window
   0 is already reported; windows 2-3 must alarm on ``embedding`` (MMD), and the label test's
   p-value must be small there;
4. ``pin --windows 1`` while it runs (answered by the worker), ``show``, ``reset``.

Skipped without ``../shared/corpus``. Every wait is bounded.
"""
from __future__ import annotations

import csv
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from conveyor.streams.config import env
from conveyor.streams.drift.cli import drift
from conveyor.streams.drift.monitor import EMBEDDING, TEXT_LENGTH, label_signal
from conveyor.streams.kafka.admin import create_topics
from conveyor.streams.kafka.clients import make_producer
from conveyor.streams.kafka.serde import AvroSerde, key_bytes
from conveyor.streams.kafka.topics import catalogue
from conveyor.tools.drift_validation.corpus import DEFAULT_CORPUS, corpus_available
from tests.integration.test_drift_app import (  # noqa: F401 - drift_settings is a fixture
    WINDOW_S,
    W,
    _embedded,
    _prediction,
    _read_reports,
    drift_settings,
)

pytestmark = pytest.mark.skipif(not corpus_available(DEFAULT_CORPUS), reason="../shared/corpus is absent")

REPO = Path(__file__).resolve().parents[2]
MODEL_DIR = REPO / "processors" / "models" / "intent-banking77"
MODEL = "intent-banking77"
PER_WINDOW = 40


def _cli(s, args, runner):
    result = runner.invoke(drift, args, env={env.NAMESPACE: s.namespace, env.BOOTSTRAP_SERVERS: s.bootstrap_servers,
                                             env.SCHEMA_REGISTRY_URL: s.schema_registry_url,
                                             env.PRINCIPAL: "User:drift-ops"},
                           catch_exceptions=False)
    lines = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    return result.exit_code, (lines[-1] if lines else {}), result.output


def _produce(s, sets, t0: int) -> None:
    specs = catalogue(s)
    serde = AvroSerde(s)
    producer = make_producer(s)
    order = {name: random.Random(1).sample(range(len(sets[name])), 2 * PER_WINDOW)
             for name in ("b77_test", "clinc_other")}  # the files are grouped by intent
    for w in range(4):
        name = "b77_test" if w < 2 else "clinc_other"
        ts_set = sets[name]
        for i in range(PER_WINDOW):
            j = order[name][(w % 2) * PER_WINDOW + i]
            ts = t0 + w * W + i * (W // PER_WINDOW)
            doc_id = f"{ts_set.name}-{j}"
            emb = _embedded(doc_id, ts, [float(x) for x in ts_set.vectors[j]], len(ts_set.texts[j]))
            pred = {**_prediction(doc_id, ts, ts_set.predicted[j]), "model_name": MODEL}
            producer.produce(specs["embedded"].name, key=key_bytes(doc_id), timestamp=ts,
                             value=serde.encode(specs["embedded"].name, emb))
            producer.produce(specs["predictions"].name, key=key_bytes(doc_id), timestamp=ts,
                             value=serde.encode(specs["predictions"].name, pred))
            producer.poll(0)
    assert producer.flush(30) == 0


def test_domain_shift_alarms_against_a_pinned_reference(drift_settings, tmp_path):  # noqa: F811 - pytest injects the imported fixture
    from conveyor.tools.drift_validation.corpus import load_texts

    s = drift_settings
    create_topics(s)
    sets = load_texts(DEFAULT_CORPUS, n_train=2000, n_test=None, n_other=600)
    runner = CliRunner()
    ref_csv = tmp_path / "reference.csv"
    with open(ref_csv, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text"])
        train = sets["b77_train"].texts  # grouped by intent in the file: sample across it
        writer.writerows([train[i]] for i in random.Random(0).sample(range(len(train)), 300))

    code, out, raw = _cli(s, ["reference", "pin", "--texts", str(ref_csv), "--model", str(MODEL_DIR)], runner)
    assert code == 0, raw
    signals = out["reference"]["signals"]
    assert set(signals) == {EMBEDDING, TEXT_LENGTH, label_signal(MODEL)}
    assert signals[EMBEDDING]["source"] == "set" and signals[EMBEDDING]["size"] == 300
    assert out["reference"]["by"] == "User:drift-ops"  # audit: who set it

    t0 = (int(time.time() * 1000) // W) * W - 10 * W
    _produce(s, sets, t0)
    child_env = {**os.environ, env.NAMESPACE: s.namespace, env.BOOTSTRAP_SERVERS: s.bootstrap_servers,
                 env.SCHEMA_REGISTRY_URL: s.schema_registry_url, env.DRIFT_WINDOW_SECONDS: str(WINDOW_S),
                 env.HOME: str(tmp_path / "home"), env.LOG_LEVEL: "INFO", env.METRICS_PORT: "0",
                 "PYTHONPATH": str(REPO)}
    log_path = tmp_path / "drift.log"
    wanted = {(sig, t0 + k * W) for sig in (EMBEDDING, label_signal(MODEL)) for k in range(4)}
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen([sys.executable, "-m", "conveyor.streams.drift", "--min-samples", "10", "--idle", "5",
                                 "--lateness", "0.5", "--tick", "0.5"],
                                cwd=REPO, env=child_env, stdout=log_file, stderr=subprocess.STDOUT)
        try:
            reports = _read_reports(s, catalogue(s)["drift"].name, AvroSerde(s),
                                    lambda rs: wanted <= {(r["signal"], r["window_start"]) for _, r in rs},
                                    timeout=90, alive=lambda: proc.poll() is None)
            assert proc.poll() is None, "drift worker died:\n" + log_path.read_text()[-4000:]
            # while it runs: pin its last closed window, show, reset
            code, pinned, raw = _cli(s, ["reference", "pin", "--windows", "1", "--timeout", "30"], runner)
            assert code == 0 and pinned["pinned"] == "windows", raw
            assert {r["source"] for r in pinned["reference"]["signals"].values()} == {"pinned"}
            assert pinned["reference"]["by"] == "User:drift-ops"  # the worker records who asked for the pin
            code, shown, raw = _cli(s, ["reference", "show"], runner)
            assert code == 0 and shown["reference"]["signals"][EMBEDDING]["source"] == "pinned", raw
            code, out, raw = _cli(s, ["reference", "reset"], runner)
            assert code == 0 and out == {"reset": True}, raw
            code, shown, raw = _cli(s, ["reference", "show"], runner)
            assert shown["reference"]["signals"] == {}, raw
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                rc = proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
                rc = None
    log_text = log_path.read_text()
    by_key = {(r["signal"], r["window_start"]): r for _, r in reports}
    assert wanted <= set(by_key), f"missing reports: {sorted(wanted - set(by_key))}\n{log_text[-3000:]}"
    for k in (0, 1):  # BANKING77 test against BANKING77 train: no alarm
        calm = by_key[(EMBEDDING, t0 + k * W)]
        assert calm["alarm"] is False and calm["details"]["reference_source"] == "set", calm
        calm_label = by_key[(label_signal(MODEL), t0 + k * W)]
        assert calm_label["alarm"] is False, {**calm_label, "details": calm_label["details"]}
    for k in (2, 3):  # CLINC150 other domains
        shifted = by_key[(EMBEDDING, t0 + k * W)]
        assert shifted["alarm"] is True and shifted["statistic"] == "mmd2", shifted
        assert shifted["value"] > shifted["threshold"] and shifted["p_value"] <= shifted["alpha"]
        assert shifted["sample_size"] == PER_WINDOW and shifted["reference_size"] == 300
        # 40 predictions over 77 intents: the label test sees it too, near its limit (p ~ 0.002)
        assert by_key[(label_signal(MODEL), t0 + k * W)]["p_value"] <= 0.02
    assert "loaded the stored reference" in log_text
    assert "DRIFT ALARM: signal=embedding statistic=mmd2" in log_text
    assert "pinned the last 1 window(s)" in log_text
    assert rc == 0, log_text[-3000:]
