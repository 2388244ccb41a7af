"""Evaluation section ``doctype``: the document-type model's figures per source.

Leave-one-source-out evaluation needs every labelled document extracted (OCR: minutes on
2 cores) and one model per source, so it runs in training
(:mod:`conveyor.tools.training.train_doctype`, :mod:`conveyor.tools.training.doctype_loso`),
which records the per-source table, the feature-set comparison, the auto-routing decision and
the leave-one-group-out CV in the model's manifest. This section reports them with their aims
(accuracy >= 0.90 on each left-out source; per type, auto-routed precision >= 0.98 as a Wilson
lower bound, or the type left on review with the reason), after checking that the shipped
``model.onnx`` is the one the manifest describes (sha256).
"""
from __future__ import annotations

from conveyor.tools.evaluation.report import EvalContext, Row, SectionResult, SkipSection

MODEL_FOLDER = "doctype"


def doctype_section(ctx: EvalContext) -> SectionResult:
    """Rows: accuracy per left-out source (aim 0.90; and over the types another source teaches), per
    type the auto-routed precision bound (aim 0.98) or ``review`` with the reason, the feature sets'
    mean and minimum accuracy, and the CV figures (floors).

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
    loso = metrics.get("leave_one_source_out") or {}
    rows = []
    for r in loso.get("per_source", []):
        wrong = ", ".join(f"{e['file'].split('/')[-1]}→{e['predicted']}" for e in r["errors"][:4])
        more = f" (+{len(r['errors']) - 4} more)" if len(r["errors"]) > 4 else ""
        rows.append(Row("doctype", f"accuracy, left-out source {r['source']}", r["accuracy"], (">=", r["aim"]),
                        f"{r['documents']} docs {r['labels']}, {'shippable' if r['shippable'] else 'test only'}"
                        + (f"; wrong: {wrong}{more}" if wrong else "")))
    auto = clf.manifest.get("auto_routing") or {}
    for label, entry in (auto.get("per_type") or {}).items():
        if entry.get("enabled"):
            rows.append(Row("doctype", f"auto {label}: precision, Wilson lower bound", entry["precision_lower_bound"],
                            (">=", 0.98), f"threshold {entry['threshold']}: {entry['auto_right']} of {entry['auto']} "
                                          f"out-of-source predictions of {label} right"))
        else:
            rows.append(Row("doctype", f"auto {label}", "review", None, entry.get("reason") or ""))
    for r in loso.get("per_source", []):
        if r.get("taught") and r.get("taught_accuracy") != r.get("accuracy"):
            rows.append(Row("doctype", f"accuracy on types another source teaches, left-out source {r['source']}",
                            r["taught_accuracy"], None, f"{r['taught']} of {r['documents']} documents"))
    ood = clf.manifest.get("out_of_scope") or {}
    if ood:
        unknown = ood.get("unknown_type_documents") or []
        rows.append(Row("doctype", "out of scope: documents of unknown types flagged",
                        sum(u["flagged"] for u in unknown) / len(unknown) if unknown else None, None,
                        f"{', '.join(u['file'].split('/')[-1] + ' ' + str(u['score']) for u in unknown)} vs threshold "
                        f"{ood.get('threshold')}"))
        rows.append(Row("doctype", "out of scope: held-out documents of known types flagged",
                        ood.get("validation_in_scope_flag_rate"), None, ood.get("rule", "")))
    for name, res in (loso.get("feature_sets") or {}).items():
        rows.append(Row("doctype", f"feature set {name}: mean / min source accuracy", res["mean"], None,
                        f"min {res['min']}; {res['per_source']}"))
    rows += [
        Row("doctype", key, metrics.get(key), (">=", float(floors[key])) if key in floors else None,
            f"{metrics.get('cv', 'cross-validation')}, from manifest")
        for key in ("cv_accuracy", "cv_macro_f1") if key in metrics
    ]
    details = {
        "model": clf.describe(),
        "source": "manifest.json metrics, measured by python -m conveyor.tools.training.train_doctype",
        "per_source": loso.get("per_source"),
        "auto_routing": auto,
        "confusion_matrix": metrics.get("cv_confusion_matrix"),
        "documents": (clf.manifest.get("training_data") or {}).get("documents"),
    }
    return SectionResult("doctype", rows=rows, details=details)
