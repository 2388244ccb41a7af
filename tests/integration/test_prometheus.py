"""Alerting and the dashboard against a real Prometheus (Debian's ``prometheus``): it scrapes
every processor of an end-to-end run that includes a damaged file; ``promtool`` accepts the
rules; the dead-letter alert fires; every dashboard query returns data."""
from __future__ import annotations

import dataclasses
import json
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from conveyor.streams.kafka.admin import create_topics
from conveyor.streams.kafka.io import InputProducer, read_texts_csv
from conveyor.streams.runtime.supervisor import Supervisor, process_groups
from conveyor.tools.accounting import collect
from conveyor.tools.demo.run import CORPUS
from conveyor.tools.k8s import K8S_DIR
from conveyor.tools.k8s.monitoring import PANELS
from tests.ports import server_port

RULES = K8S_DIR / "base" / "monitoring" / "rules.yaml"
pytestmark = pytest.mark.slow


def _prometheus() -> str:
    found = shutil.which("prometheus")
    if found is None or shutil.which("promtool") is None:
        pytest.skip("prometheus/promtool not installed (apt-get install prometheus)")
    return found


def _free_run(n: int) -> int:
    """A port p such that p .. p+n-1 are all free."""
    for _ in range(50):
        base = server_port()
        ok = True
        for p in range(base, base + n):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", p))
                except OSError:
                    ok = False
                    break
        if ok:
            return base
    raise RuntimeError("no run of free ports")


def _api(port: int, path: str, **params) -> dict:
    url = f"http://127.0.0.1:{port}/api/v1/{path}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())["data"]


def _all_up(port: int, n: int) -> bool:
    try:
        targets = _api(port, "targets")["activeTargets"]
    except OSError:
        return False
    return len(targets) == n and all(t["health"] == "up" for t in targets)


def test_promtool_accepts_the_rules():
    _prometheus()
    out = subprocess.run(["promtool", "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS: 7 rules found" in out.stdout


def test_prometheus_scrapes_the_pipeline_alerts_on_dead_letters_and_fills_the_dashboard(settings, tmp_path,
                                                                                        monkeypatch):
    prometheus = _prometheus()
    monkeypatch.setenv("CONVEYOR_FAULT_TRANSIENT_RATE", "0.3")  # some retries, for the retry panel
    monkeypatch.setenv("CONVEYOR_RETRY_DELAYS", "1,1,1")
    monkeypatch.setenv("CONVEYOR_DRIFT_WINDOW_SECONDS", "10")
    monkeypatch.setenv("CONVEYOR_DRIFT_MIN_SAMPLES", "5")
    groups = process_groups(settings)
    base = _free_run(len(groups))
    settings = dataclasses.replace(settings, metrics_port=base)
    create_topics(settings)
    prom_port = server_port()
    config = {"global": {"scrape_interval": "2s", "evaluation_interval": "2s"},
              "rule_files": [str(RULES)],
              "scrape_configs": [{"job_name": "conveyor", "static_configs": [
                  {"targets": [f"127.0.0.1:{base + i}"], "labels": {"group": "-".join(g)}}
                  for i, g in enumerate(groups)]}]}
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    prom = subprocess.Popen([prometheus, f"--config.file={tmp_path / 'prometheus.yml'}",
                             f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{prom_port}"],
                            stdout=subprocess.DEVNULL, stderr=(tmp_path / "prometheus.log").open("w"))
    supervisor = Supervisor(settings, groups, log_dir=tmp_path / "logs", grace=60)
    supervisor.start()
    try:
        deadline = time.monotonic() + 120  # Prometheus watches the processors before anything happens
        while not _all_up(prom_port, len(groups)):
            assert time.monotonic() < deadline, _api(prom_port, "targets")
            supervisor.check()
            time.sleep(1)
        with InputProducer(settings) as p:
            ids = [p.document(CORPUS / "damaged" / "broken.png")["doc_id"],
                   p.document(CORPUS / "invoices" / "Invoice_1.pdf")["doc_id"]]
            texts = [t for _, t in read_texts_csv(CORPUS / "texts" / "banking77_sample.csv", "text")][:40]
            ids += [p.text(t)["doc_id"] for t in texts]
        ledger = collect(settings, ids, timeout=300, on_idle=supervisor.check)
        assert not ledger.missing and len(ledger.dead_letters) == 1

        deadline = time.monotonic() + 180
        firing: list = []
        while time.monotonic() < deadline and not firing:
            firing = [a for a in _api(prom_port, "alerts")["alerts"]
                      if a["labels"]["alertname"] == "ConveyorDeadLetters" and a["state"] == "firing"]
            time.sleep(2)
        assert firing and firing[0]["labels"]["processor"] == "extract", _api(prom_port, "alerts")
        assert firing[0]["labels"]["error_class"] == "permanent"

        targets = _api(prom_port, "targets")["activeTargets"]
        assert len(targets) == len(groups) and all(t["health"] == "up" for t in targets), targets
        time.sleep(10)  # rates over [1m] need samples spread over time
        empty = [title for title, expr, _ in PANELS if not _api(prom_port, "query", query=expr)["result"]]
        assert empty == [], f"dashboard queries without data: {empty}"
    finally:
        supervisor.stop()
        prom.terminate()
        prom.wait(30)
    dashboard = json.loads((K8S_DIR / "base" / "monitoring" / "dashboard.json").read_text())
    assert [p["targets"][0]["expr"] for p in dashboard["panels"]] == [expr for _, expr, _ in PANELS]
    assert Path(RULES).exists()
