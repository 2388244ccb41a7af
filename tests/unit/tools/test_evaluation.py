"""The evaluation report: rows and aims, section runner, JSON/markdown output, intent figures."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conveyor.tools.evaluation import SECTIONS, run_evaluation
from conveyor.tools.evaluation.intent import AIMS, intent_figures, rows_from_figures
from conveyor.tools.evaluation.report import (
    EvalContext,
    Row,
    SectionResult,
    SkipSection,
    run_sections,
    to_markdown,
    write_report,
)
from tests.unit.processors.test_classify_ood import DIM, _data, _export


def test_row_aims():
    assert Row("s", "acc", 0.94, (">=", 0.93)).met is True
    assert Row("s", "acc", 0.92, (">=", 0.93)).met is False
    assert Row("s", "ece", 0.05, ("<=", 0.05)).met is True
    assert Row("s", "ece", 0.051, ("<=", 0.05)).met is False
    assert Row("s", "auc", 0.99).met is None and Row("s", "acc", None, (">=", 0.9)).met is None
    assert Row("s", "acc", 0.94, (">=", 0.93)).to_dict()["aim"] == ">= 0.93"


def _ctx(tmp_path: Path) -> EvalContext:
    return EvalContext(corpus=tmp_path / "no-corpus", cache_dir=tmp_path / "cache", models_dir=tmp_path / "models")


def test_runner_isolates_skipped_and_failing_sections(tmp_path):
    def ok(ctx):
        return SectionResult("ok", rows=[Row("ok", "acc", 0.95, (">=", 0.93)), Row("ok", "ece", 0.2, ("<=", 0.05))])

    def absent(ctx):
        raise SkipSection(f"nothing under {ctx.corpus}")

    def broken(ctx):
        raise RuntimeError("boom")

    results = run_sections({"ok": ok, "absent": absent, "broken": broken}, _ctx(tmp_path))
    assert [(r.name, r.status) for r in results] == [("ok", "ok"), ("absent", "skipped"), ("broken", "error")]
    assert "no-corpus" in results[1].message and "boom" in results[2].message
    md = to_markdown(results)
    assert "| ok | acc | 0.9500 | ≥ 0.93 | yes |  |" in md
    assert "| ok | ece | 0.2000 | ≤ 0.05 | **no** |  |" in md
    assert "*absent*: skipped" in md and "*broken*: error — RuntimeError: boom" in md
    paths = write_report(results, tmp_path / "out")
    doc = json.loads(paths["json"].read_text())
    assert doc["aims_met"] is False
    assert [s["status"] for s in doc["sections"]] == ["ok", "skipped", "error"]
    assert doc["sections"][0]["rows"][1] == {"section": "ok", "metric": "ece", "value": 0.2, "aim": "<= 0.05",
                                             "note": "", "met": False}
    assert paths["markdown"].read_text() == md


def test_run_evaluation_without_corpus_skips_cleanly(tmp_path):
    results, paths = run_evaluation(tmp_path / "out", corpus=tmp_path / "absent", cache_dir=tmp_path / "cache",
                                    sections=["intent", "doctype"])
    status = {r.name: r.status for r in results}
    assert status == {"intent": "skipped", "doctype": "ok"}
    doctype = next(r for r in results if r.name == "doctype")
    metrics = {row.metric for row in doctype.rows}
    assert {"cv_accuracy", "cv_macro_f1", "accuracy, left-out source sroie", "auto contract",
            "auto receipt: precision, Wilson lower bound"} <= metrics
    assert all(row.met for row in doctype.rows if row.metric.startswith("cv_"))  # the manifest's floors
    assert paths["json"].exists() and paths["markdown"].exists()
    assert not (tmp_path / "cache").exists()  # nothing was embedded
    with pytest.raises(ValueError, match="unknown sections"):
        run_evaluation(tmp_path / "out", sections=["nope"])
    assert {"intent", "doctype"} <= set(SECTIONS)


def test_intent_figures_on_a_small_model(tmp_path):
    pytest.importorskip("skl2onnx")
    model_dir, _ = _export(tmp_path / "models" / "ood-test")
    X, y = _data(n_per_class=40, seed=5)
    X_oos = np.random.default_rng(6).standard_normal((30, DIM)).astype(np.float32) + 25.0
    m, details = intent_figures(model_dir, X, y, X_oos)
    assert m["test_count"] == 120 and m["oos_test_count"] == 30
    assert m["test_accuracy"] > 0.8 and 0 <= m["test_macro_f1"] <= 1
    assert {"test_ece", "test_ece_uncalibrated", "temperature", "auto_threshold", "ood_threshold"} <= set(m)
    assert m["test_auto_rate"] + m["test_review_rate"] == pytest.approx(1.0)
    assert m["oos_test_out_of_scope_rate"] == 1.0 and m["oos_test_review_rate"] == 1.0
    assert m["oos_test_auroc"] == 1.0 and 0.0 <= m["oos_test_auroc_msp"] <= 1.0
    assert len(details["reliability_bins"]) == 15
    rows = {r.metric: r for r in rows_from_figures(m)}
    assert rows["test_ece"].aim == AIMS["test_ece"] and rows["oos_test_review_rate"].met is True
    assert rows["oos_test_auroc"].aim is None
