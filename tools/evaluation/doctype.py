"""Evaluation section ``doctype``: the document-type model's cross-validated figures.

Leave-one-group-out cross-validation needs every training document extracted
(OCR: minutes on 2 cores), so it runs in training
(:mod:`conveyor.tools.training.train_doctype`), which records accuracy, macro-F1 and
the confusion matrix in the model's manifest. This section reports those
figures next to the manifest's floors, after checking that the shipped
``model.onnx`` is the one the manifest describes (sha256).
"""
from __future__ import annotations

from conveyor.tools.evaluation.report import EvalContext, Row, SectionResult, SkipSection

MODEL_FOLDER = "doctype"


def doctype_section(ctx: EvalContext) -> SectionResult:
    """Rows ``cv_accuracy`` and ``cv_macro_f1`` (aims: the manifest floors) and the confusion matrix.

    Raises:
        SkipSection: the model folder is missing.
        ModelIntegrityError: ``model.onnx`` does not match the manifest's sha256.
    """
    from conveyor.processors.classify.models import OnnxClassifier

    model_dir = ctx.models_dir / MODEL_FOLDER
    if not (model_dir / "manifest.json").exists():
        raise SkipSection(f"no model at {model_dir}")
    clf = OnnxClassifier.load(model_dir)
    metrics = clf.manifest.get("metrics", {})
    floors = clf.manifest.get("metric_floors", {})
    rows = [
        Row("doctype", key, metrics.get(key), (">=", float(floors[key])) if key in floors else None,
            "leave-one-group-out CV, from manifest")
        for key in ("cv_accuracy", "cv_macro_f1") if key in metrics
    ]
    details = {
        "model": clf.describe(),
        "source": "manifest.json metrics, measured by python -m conveyor.tools.training.train_doctype",
        "confusion_matrix": metrics.get("cv_confusion_matrix"),
        "documents": (clf.manifest.get("training_data") or {}).get("documents"),
    }
    return SectionResult("doctype", rows=rows, details=details)
