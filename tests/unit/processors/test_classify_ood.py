"""Out-of-scope scoring: Mahalanobis fit, threshold rule, the ONNX graph nodes and the routing reason.

A small synthetic model (3 Gaussian classes in 8-d) is exported with the same
code the intent model uses (skl2onnx + temperature + Mahalanobis nodes), so
these tests exercise the real export, load and routing path in a second.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from conveyor.processors.classify import ClassifyProcessor
from conveyor.processors.classify.calibration import apply_temperature
from conveyor.processors.classify.models import OnnxClassifier
from conveyor.processors.classify.ood import MahalanobisScorer, choose_ood_threshold
from conveyor.processors.errors import ModelIntegrityError

DIM, K = 8, 3
LABELS = ["a", "b", "c"]
TEMPERATURE = 1.7


def _data(n_per_class: int = 60, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centers = 3.0 * np.eye(K, DIM)
    X = np.concatenate([c + rng.standard_normal((n_per_class, DIM)) * np.linspace(0.5, 1.5, DIM) for c in centers])
    return X.astype(np.float32), np.repeat(np.arange(K), n_per_class)


def test_mahalanobis_matches_brute_force():
    from sklearn.covariance import LedoitWolf

    X, y = _data()
    scorer = MahalanobisScorer.fit(X, y)
    mu = np.stack([X[y == k].mean(0) for k in range(K)]).astype(np.float64)
    prec = np.linalg.inv(LedoitWolf(assume_centered=True).fit(X - mu[y]).covariance_)
    Q = np.random.default_rng(1).standard_normal((20, DIM)) * 4
    brute = np.array([min((q - m) @ prec @ (q - m) for m in mu) for q in Q])
    np.testing.assert_allclose(scorer.score(Q), brute, rtol=1e-6)
    # far from every class mean scores higher than a class mean itself
    assert scorer.score(mu).max() < scorer.score(np.full((1, DIM), 20.0))[0]


def test_mahalanobis_rejects_bad_input():
    X, y = _data()
    with pytest.raises(ValueError):
        MahalanobisScorer.fit(X, y, n_classes=4)  # class 3 has no sample
    with pytest.raises(ValueError):
        MahalanobisScorer.fit(X, y).score(np.zeros((2, DIM + 1)))


def test_ood_threshold_rule():
    in_scope = np.arange(1, 1001, dtype=float)  # 1..1000
    t, info = choose_ood_threshold(in_scope, max_in_scope_rate=0.01)
    assert t == 991.0 and info["validation_in_scope_flag_rate"] == 0.009  # at most 1 % flagged
    # out-of-scope validation scores well above: the in-scope quantile stands
    t, info = choose_ood_threshold(in_scope, np.arange(2000, 2100, dtype=float), min_oos_recall=0.95)
    assert t == 991.0 and info["validation_oos_recall"] == 1.0
    # too many of them below the quantile: the threshold is lowered until 95 % are flagged
    oos = np.r_[np.full(10, 500.0), np.full(90, 3000.0)]
    t, info = choose_ood_threshold(in_scope, oos, min_oos_recall=0.95)
    assert t < 500.0 and info["validation_oos_recall"] >= 0.95
    assert info["validation_in_scope_flag_rate"] > 0.01 and "lowered" in info["rule"]
    with pytest.raises(ValueError):
        choose_ood_threshold(np.array([]))


def _export(directory: Path, *, with_ood: bool = True, declare_ood: bool = True) -> tuple[Path, MahalanobisScorer]:
    """A model folder like the shipped intent model, from synthetic data."""
    from sklearn.linear_model import LogisticRegression

    from conveyor.tools.training.common import to_onnx, write_manifest
    from conveyor.tools.training.onnx_graph import append_mahalanobis, append_temperature

    X, y = _data()
    clf = LogisticRegression(C=1.0, max_iter=1000).fit(X, y)
    scorer = MahalanobisScorer.fit(X, y)
    onx = to_onnx(clf, DIM, graph_name="test_model")
    append_temperature(onx, TEMPERATURE)
    if with_ood:
        append_mahalanobis(onx, scorer)
    data = onx.SerializeToString()
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "model.onnx").write_bytes(data)
    manifest = {"name": "ood-test", "version": "0.0.1", "sha256": hashlib.sha256(data).hexdigest(),
                "labels": LABELS, "auto_threshold": 0.5, "calibration": {"temperature": TEMPERATURE}}
    if declare_ood:
        manifest["out_of_scope"] = {"output": "ood_score", "threshold": 60.0}
    write_manifest(directory, manifest)
    return directory, scorer


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    pytest.importorskip("skl2onnx")
    return _export(tmp_path_factory.mktemp("models") / "ood-test")[0]


def test_onnx_graph_matches_numpy(model_dir):
    from sklearn.linear_model import LogisticRegression

    X, y = _data()
    clf = OnnxClassifier.load(model_dir)
    Q = np.random.default_rng(2).standard_normal((50, DIM)).astype(np.float32) * 3
    proba, ood = clf.predict_scores(Q)
    (raw,) = clf.run_outputs(["probabilities_uncalibrated"], Q)
    sk = LogisticRegression(C=1.0, max_iter=1000).fit(X, y).predict_proba(Q)
    np.testing.assert_allclose(raw, sk, atol=1e-5)
    np.testing.assert_allclose(proba, apply_temperature(sk, TEMPERATURE), atol=1e-5)
    np.testing.assert_allclose(ood, MahalanobisScorer.fit(X, y).score(Q), rtol=1e-4)
    assert clf.has_ood_score and clf.ood_threshold == 60.0
    np.testing.assert_array_equal(clf.predict_proba(Q), proba)
    with pytest.raises(KeyError):
        clf.run_outputs(["no_such_output"], Q)


def test_far_input_is_routed_to_review_as_out_of_scope(model_dir):
    proc = ClassifyProcessor(model_dir.parent, model_names={"text": model_dir.name})
    near = np.zeros(DIM, dtype=np.float32)
    near[0] = 3.0  # the centre of class "a"
    far = np.full(DIM, 25.0, dtype=np.float32)
    records = [{"doc_id": d, "trace_id": d, "kind": "text", "doc_vector": v.tolist()} for d, v in
               (("near", near), ("far", far))]
    (near_pred,), (far_pred,) = proc.process_batch(records)
    assert near_pred["label"] == "a" and near_pred["routing"] == "auto" and near_pred["reasons"] == []
    assert far_pred["routing"] == "review"
    assert far_pred["reasons"][0].startswith("out_of_scope: distance ")
    assert near_pred["model_name"] == "ood-test" and near_pred["model_version"] == "0.0.1"
    assert near_pred["model_sha256"] == json.loads((model_dir / "manifest.json").read_text())["sha256"]


def test_declared_but_missing_ood_output_is_refused(tmp_path):
    pytest.importorskip("skl2onnx")
    d, _ = _export(tmp_path / "m", with_ood=False, declare_ood=True)
    with pytest.raises(ModelIntegrityError, match="out-of-scope output"):
        OnnxClassifier.load(d)
    d2, _ = _export(tmp_path / "m2", with_ood=False, declare_ood=False)
    clf = OnnxClassifier.load(d2)  # a model without the rule is fine
    assert not clf.has_ood_score and clf.predict_scores(np.zeros((2, DIM)))[1] is None


def test_tampered_threshold_graph_is_refused(tmp_path, model_dir):
    import shutil

    d = tmp_path / "copy"
    shutil.copytree(model_dir, d)
    data = bytearray((d / "model.onnx").read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit anywhere in the graph, e.g. in the whitening matrix
    (d / "model.onnx").write_bytes(bytes(data))
    with pytest.raises(ModelIntegrityError, match="sha256"):
        OnnxClassifier.load(d)
    with pytest.raises(ModelIntegrityError):
        ClassifyProcessor(tmp_path, model_names={"text": "copy"})
