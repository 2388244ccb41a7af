"""Evaluation section ``decisions``: which documents are decided without a person, and how often rightly.

Joins, per document (by sha256), the two models' **left-out** results that ``make models`` records in
the training cache (``CONVEYOR_TRAIN_CACHE``):

* ``doctype-left-out.json`` (:func:`conveyor.tools.training.train_doctype.save_left_out`): the type
  predicted by a model that never saw the document's source, its confidence, and whether it reaches
  the predicted type's auto threshold;
* ``keyfields-left-out.json`` (:func:`conveyor.tools.training.train_keyfields.save_left_out`): each
  labelled field as emitted for the document when its fold was left out (the model where it decides
  the field, else the rules as gated), and whether it is right.

A document is **auto** when its predicted type is auto-routed and every field
:data:`conveyor.processors.classify.routing.REQUIRED_FIELDS` names for that type is emitted, with a
joint confidence at least the type's threshold (the key-field model's manifest) — the classify
stage's rule. It is **straight-through** when it is auto, its type is right and every
required field is right. Per source and over all: documents, type accuracy, auto share, auto
precision (type and required fields right) with its Wilson lower bound (one-sided 95 %), per field
coverage (right emitted / labelled) and precision, straight-through share; plus the key-field
model's learning curve from its manifest. A required field a document's source does not label makes
its auto decision unverifiable: such documents are counted apart (``auto, unverifiable``).
"""
from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from conveyor.tools.evaluation.report import EvalContext, Row, SectionResult, SkipSection

#: Aims of issue 24 (left-out sources): auto share over all sources and its precision; receipts.
AUTO_SHARE_AIM = 0.60
AUTO_PRECISION_AIM = 0.98
RECEIPT_STRAIGHT_THROUGH_AIM = 0.50
RECEIPT_FIELD_AIMS = {"vendor": 0.85, "dates": 0.85, "total_amount": 0.85, "vendor_address": 0.70}
FIELD_PRECISION_AIM = 0.97


def _load(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SkipSection(f"{path} not found: run make datasets and make models first") from None


def decide_documents(types: dict[str, Any], fields: dict[str, Any],
                     joint_thresholds: dict[str, float] | None = None) -> list[dict[str, Any]]:
    """One row per document of ``types``: ``{"source", "label", "predicted", "type_right", "auto",
    "verifiable", "right", "fields"}`` (see the module docstring); ``joint_thresholds`` (per type, the
    key-field model's ``routing.joint_confidence_threshold``) hold back documents whose required
    fields' joint confidence is below their type's."""
    from conveyor.processors.classify.routing import REQUIRED_FIELDS
    from conveyor.tools.training.train_keyfields import joint_confidence

    rows = []
    for sha, t in types.items():
        doc_fields = (fields.get(sha) or {}).get("fields") or {}
        required = REQUIRED_FIELDS.get(t["predicted"], ())
        emitted = all((doc_fields.get(f) or {}).get("emitted") for f in required)
        threshold = (joint_thresholds or {}).get(t["predicted"])
        if emitted and required and threshold is not None:
            emitted = joint_confidence(doc_fields, required) >= threshold
        verifiable = all(f in doc_fields for f in required)
        auto = bool(t["type_auto"]) and emitted
        type_right = t["label"] == t["predicted"]
        right = type_right and all((doc_fields.get(f) or {}).get("right") for f in required)
        rows.append({"source": t["source"], "label": t["label"], "predicted": t["predicted"], "type_right": type_right,
                     "auto": auto, "verifiable": verifiable, "right": right, "fields": doc_fields})
    return rows


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Figures of a set of :func:`decide_documents` rows (see the module docstring)."""
    from conveyor.processors.classify.routing import wilson_lower_bound

    n = len(rows)
    auto = [r for r in rows if r["auto"]]
    checked = [r for r in auto if r["verifiable"]]
    right = sum(r["right"] for r in checked)
    per_field: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])  # labelled, emitted, right
    for r in rows:
        for name, f in r["fields"].items():
            per_field[name][0] += 1
            per_field[name][1] += bool(f.get("emitted"))
            per_field[name][2] += bool(f.get("emitted") and f.get("right"))
    return {
        "documents": n, "type_accuracy": round(sum(r["type_right"] for r in rows) / n, 4) if n else None,
        "auto": len(auto), "auto_share": round(len(auto) / n, 4) if n else None,
        "auto_verifiable": len(checked), "auto_right": right,
        "auto_precision": round(right / len(checked), 4) if checked else None,
        "auto_precision_lower_bound": round(wilson_lower_bound(right, len(checked)), 4) if checked else None,
        "straight_through": round(sum(r["auto"] and r["right"] and r["verifiable"] for r in rows) / n, 4) if n else None,
        "fields": {name: {"labelled": c[0], "emitted": c[1], "right": c[2],
                          "coverage": round(c[2] / c[0], 4) if c[0] else None,
                          "precision": round(c[2] / c[1], 4) if c[1] else None} for name, c in sorted(per_field.items())},
    }


def decisions_section(ctx: EvalContext) -> SectionResult:
    """Rows per left-out source and over all (see the module docstring).

    Raises:
        SkipSection: the left-out files are absent (``make datasets`` and ``make models`` not run).
    """
    from conveyor.processors.models import model_dir

    types = _load(Path(ctx.cache_dir) / "doctype-left-out.json")["documents"]
    fields = _load(Path(ctx.cache_dir) / "keyfields-left-out.json")["documents"]
    manifest_path = model_dir("keyfields") / "manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8")) if manifest_path.exists() else {}
    rows = decide_documents(types, fields, (manifest.get("routing") or {}).get("joint_confidence_threshold"))
    by_source: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by_source[r["source"]].append(r)
    out: list[Row] = []
    details: dict[str, Any] = {"per_source": {}, "per_type": {}}
    for source, mine in sorted(by_source.items()):
        s = summarise(mine)
        details["per_source"][source] = s
        out.append(Row("decisions", f"{source}: type accuracy", s["type_accuracy"], None, f"{s['documents']} documents"))
        out.append(Row("decisions", f"{source}: auto share", s["auto_share"], None,
                       f"{s['auto']} of {s['documents']} auto; {s['auto_right']} of {s['auto_verifiable']} checkable "
                       f"right (precision {s['auto_precision']}, Wilson lower bound {s['auto_precision_lower_bound']})"))
        out.append(Row("decisions", f"{source}: straight-through share", s["straight_through"], None,
                       "auto, type right, every required field right"))
        for name, f in s["fields"].items():
            aim = RECEIPT_FIELD_AIMS.get(name) if source == "sroie" else None
            out.append(Row("decisions", f"{source}: {name} coverage", f["coverage"], (">=", aim) if aim else None,
                           f"{f['right']} right of {f['labelled']} labelled; {f['emitted']} emitted"))
            out.append(Row("decisions", f"{source}: {name} precision", f["precision"],
                           (">=", FIELD_PRECISION_AIM) if f["emitted"] else None, f"{f['right']}/{f['emitted']}"))
    for label in sorted({r["label"] for r in rows}):
        details["per_type"][label] = summarise([r for r in rows if r["label"] == label])
    total = summarise(rows)
    details["all"] = total
    receipts = details["per_type"].get("receipt") or {}
    out += [
        Row("decisions", "all sources: auto share", total["auto_share"], (">=", AUTO_SHARE_AIM),
            f"{total['auto']} of {total['documents']} documents"),
        Row("decisions", "all sources: auto precision, Wilson lower bound", total["auto_precision_lower_bound"],
            (">=", AUTO_PRECISION_AIM), f"{total['auto_right']} of {total['auto_verifiable']} checkable auto "
                                        f"documents right (precision {total['auto_precision']})"),
        Row("decisions", "receipts: straight-through share", receipts.get("straight_through"),
            (">=", RECEIPT_STRAIGHT_THROUGH_AIM), f"{receipts.get('documents')} receipts"),
    ]
    if manifest:
        for field, m in ((manifest.get("evaluation") or {}).get("fields") or {}).items():
            for point in m.get("learning_curve") or []:
                out.append(Row("decisions", f"learning curve: {field}, {point['training_documents']} training documents",
                               point.get("coverage"), None, f"precision {point.get('precision')}"))
    return SectionResult("decisions", rows=out, details=details)
