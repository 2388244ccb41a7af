"""Routing rules: may a prediction be acted on automatically, or does a person review it?

Pure functions, no I/O. A prediction goes to ``"review"`` when any rule fires;
each fired rule adds a human-readable reason:

* low confidence: ``confidence < threshold`` → ``"low confidence 0.41 < 0.70"``;
* missing required fields (documents only; receipts and invoices need a
  ``total_amount`` and at least one date) → ``"missing required field: total_amount"``;
* possible duplicates (documents only; matches with similarity ≥ the duplicate
  threshold) → ``"possible duplicate of <doc_id> (similarity 0.97)"``.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

DEFAULT_AUTO_THRESHOLD = 0.7
DEFAULT_DUPLICATE_THRESHOLD = 0.90  # see streams.settings.DEFAULT_DUPLICATE_THRESHOLD for the measurement

#: Field → how it is checked; labels not listed here need no fields.
REQUIRED_FIELDS: dict[str, tuple[str, ...]] = {
    "receipt": ("total_amount", "dates"),
    "invoice": ("total_amount", "dates"),
}


def auto_threshold_from(manifest: Mapping[str, Any], override: float | None = None) -> float:
    """``override`` if given, else the manifest's ``auto_threshold``, else 0.7."""
    if override is not None:
        return float(override)
    value = manifest.get("auto_threshold")
    return float(value) if value is not None else DEFAULT_AUTO_THRESHOLD


def low_confidence_reasons(confidence: float, threshold: float) -> list[str]:
    """``["low confidence 0.41 < 0.70"]`` when ``confidence`` (0..1) is below ``threshold``, else ``[]``."""
    if confidence < threshold:
        return [f"low confidence {confidence:.2f} < {threshold:.2f}"]
    return []


def missing_field_reasons(label: str, fields: Mapping[str, Any] | None) -> list[str]:
    """Reasons for each required field of ``label`` that is absent or empty."""
    required = REQUIRED_FIELDS.get(label, ())
    fields = fields or {}
    reasons = []
    for name in required:
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
) -> tuple[str, list[str]]:
    """Routing decision → ``("auto" | "review", reasons)``.

    ``duplicates`` are already filtered (:func:`select_duplicates`). Field and
    duplicate rules apply to ``kind == "document"`` only.
    """
    reasons = low_confidence_reasons(confidence, threshold)
    if kind == "document":
        reasons += missing_field_reasons(label, fields)
        reasons += duplicate_reasons(duplicates)
    return ("review" if reasons else "auto"), reasons
