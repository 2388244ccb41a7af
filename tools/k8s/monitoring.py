"""Monitoring assets: the Grafana dashboard (generated from :data:`PANELS`) and the
PrometheusRule wrapping ``k8s/base/monitoring/rules.yaml``.

Every query here is run against a real Prometheus scraping a real pipeline in
``tests/integration/test_prometheus.py``, which requires each to return data.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

PANELS: tuple[tuple[str, str, str], ...] = (
    # title, PromQL, unit
    ("Records in per second", "sum by (processor) (rate(conveyor_records_in_total[1m]))", "ops"),
    ("Records out per second", "sum by (processor) (rate(conveyor_records_out_total[1m]))", "ops"),
    ("Dead letters (10 min) by error class",
     "sum by (processor, error_class) (increase(conveyor_dead_lettered_total[10m]))", "short"),
    ("Failures by exception (10 min)", "sum by (processor, exception) (increase(conveyor_errors_total[10m]))",
     "short"),
    ("Retries (10 min)", "sum by (processor) (increase(conveyor_retried_total[10m]))", "short"),
    ("Consumer lag", "sum by (processor) (conveyor_consumer_lag)", "short"),
    ("Batch time p95",
     "histogram_quantile(0.95, sum by (processor, le) (rate(conveyor_batch_seconds_bucket[5m])))", "s"),
    ("Ready", "min by (processor) (conveyor_ready)", "bool"),
    ("Paused by backpressure", "max by (processor) (conveyor_paused)", "bool"),
    ("Transactions aborted (10 min)", "sum by (processor) (increase(conveyor_transactions_aborted_total[10m]))",
     "short"),
    ("Drift alarm", "max by (signal) (conveyor_drift_alarm)", "bool"),
    ("Resident memory per process", "max by (instance) (process_resident_memory_bytes)", "bytes"),
)
"""The dashboard's panels: title, query, Grafana unit."""


def dashboard() -> dict[str, Any]:
    """The Grafana dashboard JSON (schema version 39): one time-series panel per query,
    two per row, on the ``prometheus`` data source variable."""
    panels = []
    for i, (title, expr, unit) in enumerate(PANELS):
        panels.append({
            "id": i + 1, "type": "timeseries", "title": title,
            "datasource": {"type": "prometheus", "uid": "${datasource}"},
            "gridPos": {"h": 8, "w": 12, "x": 12 * (i % 2), "y": 8 * (i // 2)},
            "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
            "targets": [{"refId": "A", "expr": expr, "legendFormat": "__auto",
                         "datasource": {"type": "prometheus", "uid": "${datasource}"}}],
        })
    return {
        "title": "Conveyor", "uid": "conveyor", "schemaVersion": 39, "version": 1, "editable": True,
        "time": {"from": "now-1h", "to": "now"}, "refresh": "30s", "tags": ["conveyor"],
        "templating": {"list": [{"name": "datasource", "type": "datasource", "query": "prometheus",
                                 "label": "Prometheus"}]},
        "panels": panels,
    }


def prometheus_rule(rules_file: Path) -> dict[str, Any]:
    """A ``monitoring.coreos.com/v1`` PrometheusRule holding the groups of ``rules_file``."""
    groups = yaml.safe_load(rules_file.read_text(encoding="utf-8"))["groups"]
    return {"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
            "metadata": {"name": "conveyor", "labels": {"app.kubernetes.io/part-of": "conveyor"}},
            "spec": {"groups": groups}}
