"""Evaluation of the intent model as shipped: accuracy, calibration, routing, out-of-scope.

Everything is measured through the production code path: the shipped
``model.onnx`` loaded (sha256-checked) by :class:`conveyor.processors.classify.ClassifyProcessor`,
whose ``process_batch`` routes each text exactly as the classify stage does.
Inputs are the doc vectors the embed stage produces for the texts (cached).

Data: banking77 ``test.csv`` (in scope, held out from training) and CLINC150
``oos_test`` (out of scope; Larson et al. 2019), never used to choose anything.

Figures (keys of :func:`intent_figures`):

* ``test_accuracy``, ``test_macro_f1`` — top-1 on banking77 test.
* ``test_ece_uncalibrated`` / ``test_ece`` — expected calibration error, 15
  equal-width bins (Guo et al. 2017), of the graph's raw
  (``probabilities_uncalibrated``) and temperature-scaled probabilities.
* ``test_auto_rate`` — share of in-scope texts routed ``auto``;
  ``test_auto_precision`` — share of those whose label is right;
  ``test_review_rate`` = 1 − auto rate (all rules); ``test_low_confidence_rate``
  and ``test_out_of_scope_flag_rate`` — in-scope texts with each reason.
* ``oos_test_review_rate`` — share of out-of-scope texts routed ``review``;
  ``oos_test_out_of_scope_rate`` — share whose reasons include ``out_of_scope``.
* ``oos_test_auroc`` — AUROC of the model's ``ood_score`` (Mahalanobis,
  Lee et al. 2018) separating out-of-scope from in-scope test texts;
  ``oos_test_auroc_msp`` — the same for the maximum softmax probability
  baseline (Hendrycks & Gimpel 2017), for comparison.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from conveyor.processors.classify.calibration import expected_calibration_error, reliability_bins
from conveyor.processors.classify.routing import OUT_OF_SCOPE
from conveyor.tools.evaluation.report import EvalContext, Row, SectionResult, SkipSection

MODEL_FOLDER = "intent-banking77"
UNCALIBRATED_OUTPUT = "probabilities_uncalibrated"
#: The project's aims (issue 4): metric → (operator, target). Training uses them as metric floors/ceilings.
AIMS: dict[str, tuple[str, float]] = {
    "test_accuracy": (">=", 0.93),
    "test_ece": ("<=", 0.05),
    "test_auto_precision": (">=", 0.98),
    "oos_test_review_rate": (">=", 0.90),
    "oos_test_out_of_scope_rate": (">=", 0.90),
}


def route_embeddings(processor: Any, X: np.ndarray, batch_size: int = 256) -> list[dict]:
    """Predictions of ``processor`` (a ClassifyProcessor) for text doc vectors ``X`` ``(n, 384)``.

    Raises:
        RuntimeError: the processor failed a record (its exception is chained).
    """
    out: list[dict] = []
    for start in range(0, len(X), batch_size):
        records = [
            {"doc_id": f"eval-{start + i}", "trace_id": f"eval-{start + i}", "kind": "text",
             "doc_vector": [float(v) for v in row]}
            for i, row in enumerate(X[start:start + batch_size])
        ]
        for outcome in processor.process_batch(records):
            if isinstance(outcome, BaseException):
                raise RuntimeError(f"classify failed a record: {outcome}") from outcome
            out.append(outcome[0])
    return out


def _auroc(in_scores: np.ndarray, out_scores: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    y = np.r_[np.zeros(len(in_scores)), np.ones(len(out_scores))]
    return float(roc_auc_score(y, np.r_[in_scores, out_scores]))


def intent_figures(model_dir: Path, X_test: np.ndarray, y_test: np.ndarray,
                   X_oos: np.ndarray | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Measure the model in ``model_dir`` on in-scope ``(X_test, y_test)`` and out-of-scope ``X_oos``.

    Args:
        model_dir: a model folder (``model.onnx`` + ``manifest.json``).
        X_test: ``(n, 384)`` doc vectors; y_test: ``(n,)`` class indices in manifest label order.
        X_oos: ``(m, 384)`` doc vectors of out-of-scope texts, or None (OOS figures left out).

    Returns:
        ``(metrics, details)``: flat figures (module docstring) and tables
        (reliability bins, thresholds, counts).

    Raises:
        ModelIntegrityError: the model does not match its manifest.
    """
    from sklearn.metrics import f1_score

    from conveyor.processors.classify import ClassifyProcessor

    model_dir = Path(model_dir)
    proc = ClassifyProcessor(model_dir.parent, model_names={"text": model_dir.name})
    clf = proc.classifiers["text"]
    proba, ood, raw = _scores(clf, X_test)
    pred = proba.argmax(axis=1)
    correct = pred == y_test
    m: dict[str, Any] = {
        "test_count": int(len(y_test)),
        "test_accuracy": float(correct.mean()),
        "test_macro_f1": float(f1_score(y_test, pred, average="macro", labels=np.arange(len(clf.labels)))),
        "test_ece": expected_calibration_error(proba, y_test),
    }
    details: dict[str, Any] = {"model": clf.describe(), "reliability_bins": reliability_bins(proba, y_test)}
    if raw is not None:  # None: a model without a calibration step
        m["test_ece_uncalibrated"] = expected_calibration_error(raw, y_test)
        details["reliability_bins_uncalibrated"] = reliability_bins(raw, y_test)
    calibration = clf.manifest.get("calibration") or {}
    if "temperature" in calibration:
        m["temperature"] = float(calibration["temperature"])

    preds = route_embeddings(proc, X_test)
    auto = np.array([p["routing"] == "auto" for p in preds])
    m["auto_threshold"] = float(next(iter(proc.thresholds["text"].values())))  # one threshold for every intent
    m["test_auto_rate"] = float(auto.mean())
    m["test_auto_precision"] = float(correct[auto].mean()) if auto.any() else None
    m["test_review_rate"] = float(1 - auto.mean())
    m["test_out_of_scope_flag_rate"] = float(np.mean([_is_oos(p) for p in preds]))
    m["test_low_confidence_rate"] = float(np.mean([any(r.startswith("low confidence") for r in p["reasons"])
                                                   for p in preds]))
    if clf.ood_threshold is not None:
        m["ood_threshold"] = clf.ood_threshold

    if X_oos is not None and len(X_oos):
        oos_proba, oos_ood, _ = _scores(clf, X_oos)
        oos_preds = route_embeddings(proc, X_oos)
        m["oos_test_count"] = int(len(X_oos))
        m["oos_test_review_rate"] = float(np.mean([p["routing"] == "review" for p in oos_preds]))
        m["oos_test_out_of_scope_rate"] = float(np.mean([_is_oos(p) for p in oos_preds]))
        if ood is not None and oos_ood is not None:  # one model: both or neither
            m["oos_test_auroc"] = _auroc(ood, oos_ood)
        m["oos_test_auroc_msp"] = _auroc(-proba.max(axis=1), -oos_proba.max(axis=1))
        details["oos_examples_auto_routed"] = sum(p["routing"] == "auto" for p in oos_preds)
    return m, details


def _scores(clf: Any, X: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """``(probabilities, ood scores or None, uncalibrated probabilities or None)`` in one model run."""
    names = [clf.probability_output] + [n for n in (clf.ood_output, UNCALIBRATED_OUTPUT) if n in clf.output_names]
    out = dict(zip(names, clf.run_outputs(names, X)))
    ood = out.get(clf.ood_output) if clf.ood_output else None
    return (out[clf.probability_output].astype(np.float32), None if ood is None else ood.reshape(-1),
            out.get(UNCALIBRATED_OUTPUT))


def _is_oos(prediction: dict) -> bool:
    return any(r.startswith(OUT_OF_SCOPE) for r in prediction["reasons"])


def intent_section(ctx: EvalContext) -> SectionResult:
    """Section ``intent``: :func:`intent_figures` on banking77 test and CLINC150 oos_test.

    Raises:
        SkipSection: banking77 is absent from the corpus or the model folder is missing.
    """
    from conveyor.processors.classify.models import read_manifest
    from conveyor.tools.training.data import (
        LazyEmbedder,
        banking77_present,
        clinc150_present,
        embed_cached,
        load_banking77,
        load_clinc_oos,
    )

    model_dir = ctx.models_dir / MODEL_FOLDER
    if not (model_dir / "manifest.json").exists():
        raise SkipSection(f"no model at {model_dir}")
    if not banking77_present(ctx.corpus):
        raise SkipSection(f"banking77 not found under {ctx.corpus}")
    labels = read_manifest(model_dir)["labels"]
    data = load_banking77(ctx.corpus, labels)
    embedder = LazyEmbedder(ctx.threads)
    X_test = embed_cached(embedder, data.test_texts, ctx.cache_dir, "banking77-test")
    X_oos = None
    notes = {}
    if clinc150_present(ctx.corpus):
        X_oos = embed_cached(embedder, load_clinc_oos(ctx.corpus, ("oos_test",))["oos_test"], ctx.cache_dir,
                             "clinc150-oos-test")
    else:
        notes["oos"] = f"CLINC150 not found under {ctx.corpus}: out-of-scope figures skipped"
    m, details = intent_figures(model_dir, X_test, data.y_test, X_oos)
    details.update(notes)
    details["metrics"] = m
    return SectionResult("intent", rows=rows_from_figures(m), details=details)


#: Row order and notes of the report.
ROWS: list[tuple[str, str]] = [
    ("test_accuracy", "banking77 test"),
    ("test_macro_f1", "banking77 test"),
    ("test_ece_uncalibrated", "15 bins, before temperature scaling"),
    ("test_ece", "15 bins, after temperature scaling"),
    ("temperature", "fitted on out-of-fold validation predictions"),
    ("auto_threshold", "calibrated confidence, chosen on validation"),
    ("test_auto_precision", "share of auto-routed texts labelled right"),
    ("test_auto_rate", "in-scope texts routed auto"),
    ("test_review_rate", "in-scope texts routed review, all rules"),
    ("test_low_confidence_rate", "in-scope texts with reason low confidence"),
    ("test_out_of_scope_flag_rate", "in-scope texts with reason out_of_scope"),
    ("ood_threshold", "Mahalanobis distance, chosen on validation"),
    ("oos_test_review_rate", "CLINC150 oos_test routed review"),
    ("oos_test_out_of_scope_rate", "CLINC150 oos_test with reason out_of_scope"),
    ("oos_test_auroc", "Mahalanobis distance (Lee et al. 2018)"),
    ("oos_test_auroc_msp", "baseline: max softmax prob. (Hendrycks & Gimpel 2017)"),
]


def rows_from_figures(m: dict[str, Any], section: str = "intent") -> list[Row]:
    """Report rows (with :data:`AIMS`) for the figures present in ``m``."""
    return [Row(section, key, m[key], AIMS.get(key), note) for key, note in ROWS if key in m]
