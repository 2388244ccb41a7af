"""Routing rules: may a prediction be acted on automatically, or does a person review it?

Pure functions, no I/O. A prediction goes to ``"review"`` when any rule fires;
each fired rule adds a human-readable reason:

* out of scope: the model's out-of-scope score (:mod:`conveyor.processors.classify.ood`)
  is above its threshold → ``"out_of_scope: distance 1834.2 > 1290.5"``;
* low confidence: ``confidence < threshold`` → ``"low confidence 0.41 < 0.70"``; a model
  whose manifest disables auto routing → ``"not validated for auto routing (confidence 0.93)"``;
* a required field of the document's type (:data:`REQUIRED_FIELDS`) withheld by the extract
  stage for low confidence (documents only) → ``"low-confidence field vendor"``; fields a type
  does not require may be withheld without sending the document to review (they keep their
  reason and candidate in ``withheld``);
* a required field missing (documents only) → ``"missing required field: total_amount"``;
* the required fields all emitted but their joint confidence (the product of their confidences)
  below the type's threshold (the key-field model's manifest, chosen so that auto documents are
  right >= 0.98 on left-out data) → ``"required fields' joint confidence 0.91 < 0.95"``;
* possible duplicates (documents only; matches with similarity ≥ the duplicate
  threshold) → ``"possible duplicate of <doc_id> (similarity 0.97)"``.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypedDict

import numpy as np

from conveyor.processors.extract.fields.evidence import empty_value, shown_value

DEFAULT_AUTO_THRESHOLD = 0.7
#: Prefix of the review reason given to out-of-scope inputs (stable: consumers match on it).
OUT_OF_SCOPE = "out_of_scope"
#: Review reason prefix of a key field left empty for low confidence (followed by the field name).
LOW_CONFIDENCE_FIELD = "low-confidence field"
#: Review reason of a model whose auto routing is disabled (stable prefix).
NOT_VALIDATED = "not validated for auto routing"
#: One-sided 95 % normal quantile, for the Wilson lower bound of the auto-routed precision.
WILSON_Z = 1.6449
#: Candidate auto thresholds: 0.00, 0.01, ..., 0.99.
THRESHOLD_GRID = tuple(round(i / 100, 2) for i in range(100))
DEFAULT_DUPLICATE_THRESHOLD = 0.90
"""Cosine similarity of document vectors at which a document is flagged as a possible duplicate.
On the demo corpus the cropped/uncropped scans of one Lidl receipt score 0.94 and the most similar
distinct documents 0.62. On the whole shared corpus (108 documents, ``make eval``) the re-scan pair
still scores 0.94 but filled copies of one form template score up to 1.00, so at 0.90 only 5 of 51
flags are true duplicates (recall 5/6): a flag means "review", not "drop"."""

#: Fields a document of each type needs before it may be decided without a person: what a bookkeeping
#: system books an amount by (its date and total, and an invoice's or order's number) and what a contract
#: register files a contract by (its parties and effective date); types not listed need none. A document
#: is ``auto`` only if its type is (its model's threshold for that type) and every field listed here is
#: emitted. The issuer's name is reported when its confidence allows but required nowhere: on scanned
#: receipts OCR misreads one letter of it too often for any value to be 97 % right (docs/documents.md).
REQUIRED_FIELDS: dict[str, tuple[str, ...]] = {
    "receipt": ("dates", "total_amount"),
    "invoice": ("document_number", "dates", "total_amount"),
    "credit_note": ("document_number", "dates", "total_amount"),
    "purchase_order": ("document_number", "dates"),
    "contract": ("parties", "effective_date"),
}


def auto_thresholds_from(manifest: Mapping[str, Any], labels: Sequence[str],
                         override: float | None = None) -> dict[str, float]:
    """The auto threshold of each label: ``{label: confidence in [0, 1] or math.inf}``.

    A manifest with ``auto_routing.per_type`` (the document-type model) gives each type its own:
    its ``threshold`` when ``enabled``, else ``math.inf`` (that type always goes to review). An
    ``override`` (``CONVEYOR_AUTO_THRESHOLD``) replaces the thresholds of the enabled types only:
    it never enables a type the evidence did not. Other manifests: :func:`auto_threshold_from`
    for every label.
    """
    per_type = (manifest.get("auto_routing") or {}).get("per_type")
    if not per_type:
        value = auto_threshold_from(manifest, override)
        return {label: value for label in labels}
    out = {}
    for label in labels:
        entry = per_type.get(label) or {}
        if entry.get("enabled") and entry.get("threshold") is not None:
            out[label] = float(override) if override is not None else float(entry["threshold"])
        else:
            out[label] = math.inf
    return out


def auto_threshold_from(manifest: Mapping[str, Any], override: float | None = None) -> float:
    """``math.inf`` if the manifest disables auto routing, else ``override`` if given, else the
    manifest's ``auto_threshold``, else 0.7.

    A manifest whose ``auto_routing.enabled`` is false (no threshold met the auto precision
    aim on held-out data) gives ``math.inf`` whatever the override: every prediction of that
    model goes to review.
    """
    if (manifest.get("auto_routing") or {}).get("enabled") is False:
        return math.inf  # not even an override re-enables what was never shown to be right
    if override is not None:
        return float(override)
    value = manifest.get("auto_threshold")
    return float(value) if value is not None else DEFAULT_AUTO_THRESHOLD


def ood_threshold_from(manifest: Mapping[str, Any]) -> float | None:
    """The manifest's ``out_of_scope.threshold`` (None: the model has no out-of-scope rule)."""
    value = (manifest.get("out_of_scope") or {}).get("threshold")
    return float(value) if value is not None else None


def wilson_lower_bound(successes: int, n: int, z: float = WILSON_Z) -> float:
    """Lower end of the Wilson score interval of a proportion (Wilson 1927); 0.0 for ``n == 0``.

    With the default ``z`` it is a one-sided 95 % lower confidence bound.
    """
    if n <= 0:
        return 0.0
    p = successes / n
    denom = 1 + z * z / n
    centre = p + z * z / (2 * n)
    margin = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre - margin) / denom


class ThresholdRow(TypedDict):
    """One grid value of :func:`choose_auto_threshold` (``precision`` None: nothing auto-routed)."""

    threshold: float
    auto_rate: float
    precision: float | None
    precision_lower_bound: float


def choose_auto_threshold(
    confidence: np.ndarray,
    correct: np.ndarray,
    target_precision: float = 0.98,
    *,
    grid: Sequence[float] = THRESHOLD_GRID,
    z: float = WILSON_Z,
) -> tuple[float, list[ThresholdRow]]:
    """Lowest confidence threshold whose auto-routed validation share is precise enough.

    A prediction is auto-routed when ``confidence >= threshold``. The chosen
    threshold is the lowest ``t`` in ``grid`` for which the Wilson lower bound
    (``z``; default one-sided 95 %) of the accuracy of the validation predictions
    with ``confidence >= t`` is at least ``target_precision``, so that the
    precision on unseen data is ``>= target`` with high probability rather than
    only on this sample. If no grid value qualifies, the largest grid value is
    returned.

    Args:
        confidence: ``(n,)`` calibrated top-1 probabilities on a validation split.
        correct: ``(n,)`` bool, top-1 prediction correct.
        target_precision: required precision of the auto-routed share, in (0, 1].

    Returns:
        ``(threshold, table)``; ``table`` has one row per grid value:
        ``{"threshold", "auto_rate", "precision", "precision_lower_bound"}``.

    Raises:
        ValueError: shapes differ or are not 1-D.
    """
    conf = np.asarray(confidence, dtype=np.float64)
    ok = np.asarray(correct, dtype=bool)
    if conf.ndim != 1 or conf.shape != ok.shape:
        raise ValueError(f"confidence and correct must be 1-D of equal length, got {conf.shape}, {ok.shape}")
    table: list[ThresholdRow] = []
    chosen: float | None = None
    for t in sorted(grid):
        sel = conf >= t
        n, k = int(sel.sum()), int(ok[sel].sum())
        lower = wilson_lower_bound(k, n, z)
        table.append({"threshold": float(t), "auto_rate": round(n / max(len(conf), 1), 4),
                      "precision": round(k / n, 4) if n else None, "precision_lower_bound": round(lower, 4)})
        if chosen is None and n and lower >= target_precision:
            chosen = float(t)
    return (chosen if chosen is not None else float(max(grid))), table


def out_of_scope_reasons(score: float | None, threshold: float | None) -> list[str]:
    """``["out_of_scope: distance 1834.2 > 1290.5"]`` when ``score > threshold``, else ``[]``.

    ``score`` is the model's out-of-scope score (squared Mahalanobis distance to
    the nearest class mean, :mod:`conveyor.processors.classify.ood`); None (model without
    a score, or no threshold) never fires.
    """
    if score is None or threshold is None or not score > threshold:
        return []
    return [f"{OUT_OF_SCOPE}: distance {score:.1f} > {threshold:.1f}"]


def low_confidence_reasons(confidence: float, threshold: float) -> list[str]:
    """``["low confidence 0.41 < 0.70"]`` when ``confidence`` (0..1) is below ``threshold``, else ``[]``.

    An infinite ``threshold`` (auto routing disabled for the model) gives
    ``["not validated for auto routing (confidence 0.93)"]``.
    """
    if math.isinf(threshold):
        return [f"{NOT_VALIDATED} (confidence {confidence:.2f})"]
    if confidence < threshold:
        return [f"low confidence {confidence:.2f} < {threshold:.2f}"]
    return []


#: Start of the ``withheld`` reason of a field that does not belong to the predicted type.
NOT_TYPE_FIELD = "not a field of a"
_INVOICE_FIELDS = ("dates", "total_amount", "currency", "document_number", "vendor", "vendor_address", "due_date",
                   "net_amount", "tax_amount", "supplier_tax_id", "iban", "customer", "payment_method")
#: Key fields that belong to each document type; the others are withheld for that type.
TYPE_FIELDS: dict[str, tuple[str, ...]] = {
    "receipt": ("dates", "total_amount", "currency", "document_number", "vendor", "vendor_address", "time",
                "net_amount", "tax_amount", "supplier_tax_id", "payment_method"),
    "invoice": _INVOICE_FIELDS,
    "credit_note": _INVOICE_FIELDS,
    "purchase_order": ("dates", "total_amount", "currency", "document_number", "vendor", "vendor_address", "customer",
                       "net_amount", "tax_amount"),
    "contract": ("dates", "parties", "effective_date"),
}
#: A contract's fields: the key-field model reads them on every document (the extract stage does not
#: know the type); on any other type they are dropped, not withheld — no reviewer needs the "effective
#: date" of a receipt.
CONTRACT_ONLY_FIELDS = ("parties", "effective_date")
#: Every key field :func:`fields_for_type` looks at.
ALL_TYPE_FIELDS = tuple(dict.fromkeys(f for fields in TYPE_FIELDS.values() for f in fields))
#: Fields kept for types not in :data:`TYPE_FIELDS` (a form's date).
OTHER_TYPE_FIELDS = ("dates",)


def fields_for_type(label: str, fields: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """``fields`` with the key fields that do not belong to a ``label`` document withheld.

    A total, currency, number or vendor is a receipt's or an invoice's field; on a tax form or
    a consent form the amount the rules find is an amount in its instructions. Such a value is
    moved to ``withheld`` as ``"not a field of a tax_form; candidate '5000.00'"`` and emptied. A
    contract's parties and effective date are dropped from every other type
    (:data:`CONTRACT_ONLY_FIELDS`). Returns None for None.
    """
    if fields is None:
        return None
    keep = TYPE_FIELDS.get(label, OTHER_TYPE_FIELDS)
    out = dict(fields)
    for name in CONTRACT_ONLY_FIELDS if label != "contract" else ():
        if name in out:
            out[name] = empty_value(name)
        for part in ("withheld", "confidence"):
            if name in (out.get(part) or {}):
                out[part] = {k: v for k, v in out[part].items() if k != name}
    for name in ALL_TYPE_FIELDS:
        if name in CONTRACT_ONLY_FIELDS and label != "contract":
            continue
        value = out.get(name)
        why = (out.get("withheld") or {}).get(name)
        if name not in keep and value in (None, "", []) and why and not str(why).startswith(NOT_TYPE_FIELD):
            # withheld for low confidence, but not this type's field anyway: say so, not "low confidence"
            candidate = str(why).split("; candidate ", 1)[-1] if "; candidate " in str(why) else "''"
            out["withheld"] = {**out["withheld"], name: f"{NOT_TYPE_FIELD} {label}; candidate {candidate}"}
            continue
        if name in keep or value in (None, "", []):
            continue
        shown = shown_value(name, value)
        out["withheld"] = {**(out.get("withheld") or {}), name: f"{NOT_TYPE_FIELD} {label}; candidate '{shown}'"}
        out["confidence"] = {k: v for k, v in (out.get("confidence") or {}).items() if k != name}
        out[name] = empty_value(name)
    return out


def low_confidence_field_reasons(label: str, fields: Mapping[str, Any] | None) -> list[str]:
    """``"low-confidence field vendor"`` for each field ``label`` requires (:data:`REQUIRED_FIELDS`)
    that the extract stage withheld (evidence below the calibrated threshold,
    :mod:`conveyor.processors.extract.fields.confidence`). A withheld field the type does not
    require, or one :func:`fields_for_type` withheld as not the type's, is no reason for review."""
    required = REQUIRED_FIELDS.get(label, ())
    withheld = (fields or {}).get("withheld") or {}
    return [f"{LOW_CONFIDENCE_FIELD} {name}" for name in required
            if name in withheld and not str(withheld[name]).startswith(NOT_TYPE_FIELD)]


def joint_confidence_reasons(label: str, fields: Mapping[str, Any] | None, threshold: float | None) -> list[str]:
    """``["required fields' joint confidence 0.91 < 0.95"]`` when every field ``label`` requires is
    emitted but the product of their confidences (``fields["confidence"]``; 1.0 where a field has
    none) is below ``threshold``; ``[]`` otherwise, and for a None threshold or a type requiring nothing."""
    required = REQUIRED_FIELDS.get(label, ())
    if threshold is None or not required or not fields:
        return []
    if any(fields.get(name) in (None, "", []) for name in required):
        return []  # a missing or withheld field has its own reason
    joint = 1.0
    for name in required:
        joint *= float((fields.get("confidence") or {}).get(name, 1.0))
    return [f"required fields' joint confidence {joint:.2f} < {threshold:.2f}"] if joint < threshold else []


def missing_field_reasons(label: str, fields: Mapping[str, Any] | None) -> list[str]:
    """Reasons for each required field of ``label`` that is absent or empty (a withheld field
    already has its low-confidence reason and is not repeated here)."""
    required = REQUIRED_FIELDS.get(label, ())
    fields = fields or {}
    withheld = fields.get("withheld") or {}
    reasons = []
    for name in required:
        if name in withheld:
            continue
        value = fields.get(name)
        if value is None or (isinstance(value, str) and not value.strip()) or (
            isinstance(value, (list, tuple)) and not any(value)
        ):
            reasons.append(f"missing required field: {name}")
    return reasons


def select_duplicates(
    matches: Iterable[tuple[str, float]],
    *,
    doc_id: str | None = None,
    threshold: float = DEFAULT_DUPLICATE_THRESHOLD,
) -> list[tuple[str, float]]:
    """Matches at or above ``threshold``, not the document itself, best first, one per doc_id."""
    best: dict[str, float] = {}
    for other, score in matches:
        score = float(score)
        if other == doc_id or score < threshold:
            continue
        if score > best.get(other, float("-inf")):
            best[other] = score
    return sorted(best.items(), key=lambda kv: (-kv[1], kv[0]))


def duplicate_reasons(duplicates: Sequence[tuple[str, float]]) -> list[str]:
    """One review reason per ``(doc_id, cosine similarity)`` match."""
    return [f"possible duplicate of {other} (similarity {score:.2f})" for other, score in duplicates]


def decide(
    *,
    kind: str,
    label: str,
    confidence: float,
    threshold: float = DEFAULT_AUTO_THRESHOLD,
    fields: Mapping[str, Any] | None = None,
    duplicates: Sequence[tuple[str, float]] = (),
    ood_score: float | None = None,
    ood_threshold: float | None = None,
    joint_threshold: float | None = None,
) -> tuple[str, list[str]]:
    """Routing decision → ``("auto" | "review", reasons)``.

    ``threshold`` is the auto threshold of ``label`` (:func:`auto_thresholds_from`).
    ``duplicates`` are already filtered (:func:`select_duplicates`). Field and
    duplicate rules apply to ``kind == "document"`` only: a document is ``auto`` only if
    its type's confidence reaches ``threshold`` and every field :data:`REQUIRED_FIELDS`
    names for ``label`` is emitted, with a joint confidence of at least ``joint_threshold``
    (None: no such check). The out-of-scope rule applies when both ``ood_score``
    and ``ood_threshold`` are given; its reason comes first.
    """
    reasons = out_of_scope_reasons(ood_score, ood_threshold)
    reasons += low_confidence_reasons(confidence, threshold)
    if kind == "document":
        reasons += low_confidence_field_reasons(label, fields)
        reasons += missing_field_reasons(label, fields)
        reasons += joint_confidence_reasons(label, fields, joint_threshold)
        reasons += duplicate_reasons(duplicates)
    return ("review" if reasons else "auto"), reasons
