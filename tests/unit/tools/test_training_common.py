"""Metric floors of the model manifests and the candidate install step of the training scripts."""
from __future__ import annotations

import json

import pytest

from conveyor.processors.classify.models import OnnxClassifier
from conveyor.processors.models import MODELS_DIR
from conveyor.tools.training.common import check_limits, effective_limits, install_model


def test_check_limits_reports_every_failure():
    metrics = {"test_accuracy": 0.931, "test_ece": 0.06, "oos_test_review_rate": 0.95}
    floors = {"test_accuracy": 0.93, "oos_test_review_rate": 0.96, "test_macro_f1": 0.9}
    failures = check_limits(metrics, floors, {"test_ece": 0.05})
    assert failures == [
        "oos_test_review_rate = 0.9500 < floor 0.96",
        "test_macro_f1: missing (floor 0.9)",
        "test_ece = 0.0600 > ceiling 0.05",
    ]
    assert check_limits(metrics, {"test_accuracy": 0.93}, {"test_ece": 0.07}) == []
    assert check_limits({"x": 0.5}, {"x": 0.5}) == []  # at the floor is met


def test_manifest_limits_only_tighten(tmp_path):
    defaults = ({"test_accuracy": 0.93, "test_macro_f1": 0.92}, {"test_ece": 0.05})
    assert effective_limits(tmp_path, *defaults) == defaults  # no manifest yet
    (tmp_path / "manifest.json").write_text(json.dumps({
        "metric_floors": {"test_accuracy": 0.95, "test_macro_f1": 0.5, "extra": 0.1},
        "metric_ceilings": {"test_ece": 0.2},
    }))
    floors, ceilings = effective_limits(tmp_path, *defaults)
    assert floors == {"test_accuracy": 0.95, "test_macro_f1": 0.92, "extra": 0.1}
    assert ceilings == {"test_ece": 0.05}


def test_install_model_moves_manifest_last(tmp_path):
    staging, out = tmp_path / "staging", tmp_path / "out"
    staging.mkdir()
    for name in ("manifest.json", "model.onnx", "NOTICE"):
        (staging / name).write_text(name)
    install_model(staging, out)
    assert sorted(p.name for p in out.iterdir()) == ["NOTICE", "manifest.json", "model.onnx"]
    assert not any(staging.iterdir())


@pytest.mark.parametrize("folder", ["intent-banking77", "doctype"])
def test_shipped_models_meet_their_floors(folder):
    clf = OnnxClassifier.load(MODELS_DIR / folder)  # sha256 verified
    m = clf.manifest
    for key in ("name", "version", "sha256", "training_data", "training_data_licence", "training_command",
                "metrics", "metric_floors"):
        assert key in m, key
    assert m["metric_floors"], "a shipped model needs metric floors"
    assert check_limits(m["metrics"], m["metric_floors"], m.get("metric_ceilings")) == []
