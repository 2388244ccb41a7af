"""Field-level confidence and abstention: a field is emitted only where its kind of evidence is
right often enough.

The confidence of a field's value is the precision its *rule* (:mod:`.evidence`) had on the
labelled documents of the shippable corpus sources — softmatic, invoice2data, Azure — measured by
``make models`` (:mod:`conveyor.tools.training.field_confidence`) into ``confidence.json`` next to
this module; for a value the key-field model chose (rule ``model``), the model's calibrated
confidence and its field's emission threshold (:mod:`conveyor.processors.extract.kie`). A value
whose rule is below :data:`THRESHOLD`, was seen fewer than :data:`MIN_DOCUMENTS` times, or can
never be right (a caption, an amount not printed) is left empty; the field is then listed in
``withheld`` with its reason, and when the document's type requires the field the classify stage
sends it to review with ``low-confidence field <name>``.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from conveyor.processors.extract.fields.evidence import (
    ALL_FIELDS,
    NEVER_EMITTED,
    FieldEvidence,
    empty_value,
    shown_value,
)

#: Evidence rule of a value the key-field model chose (:data:`conveyor.processors.extract.kie.model.MODEL_RULE`).
MODEL_RULE = "model"

TABLE_PATH = Path(__file__).with_name("confidence.json")
THRESHOLD = 0.97
"""Precision a field's rule needs for the field to be emitted (issue 10's aim per field)."""
MIN_DOCUMENTS = 5
"""Documents a rule must have been measured on before its precision counts."""


@lru_cache(maxsize=4)
def load_table(path: Path = TABLE_PATH) -> dict[str, Any]:
    """The calibration table ``{"fields": {field: {rule: {"n", "correct", "precision"}}}, ...}``;
    an absent file gives an empty table (every field withheld as uncalibrated)."""
    try:
        table: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {"fields": {}}
    return table


def rule_confidence(table: Mapping[str, Any], field: str, rule: str) -> float | None:
    """Measured precision of ``rule`` for ``field`` (0..1), 0.0 for a rule that is never emitted,
    None when it was measured on fewer than :data:`MIN_DOCUMENTS` documents."""
    if rule in NEVER_EMITTED:
        return 0.0
    entry = (table.get("fields") or {}).get(field, {}).get(rule)
    if not entry or int(entry.get("n", 0)) < MIN_DOCUMENTS:
        return None
    return float(entry["precision"])


def gate(fields: dict[str, Any], evidence: Mapping[str, FieldEvidence], table: Mapping[str, Any] | None = None,
         threshold: float = THRESHOLD, learned: Mapping[str, tuple[float, float]] | None = None) -> dict[str, Any]:
    """``fields`` with ``confidence``, ``evidence`` and ``withheld`` added and low-confidence values emptied.

    Args:
        fields: a KeyFields dict (values as extracted).
        evidence: :func:`conveyor.processors.extract.fields.evidence.locate` of those fields.
        table: calibration table (default: the shipped ``confidence.json``).
        threshold: precision a rule needs, 0..1.
        learned: ``{field: (confidence, emit threshold)}`` of the values the key-field model chose
            (evidence rule ``model``, :mod:`conveyor.processors.extract.kie`): their confidence is the
            model's calibrated one, and a value below its field's threshold is withheld.

    Returns:
        A new KeyFields dict: ``confidence`` ``{field: 0..1}`` for every located field,
        ``evidence`` a list of ``FieldEvidence`` records (emitted and withheld fields), and
        ``withheld`` ``{field: reason}``, e.g. ``"rule 'header line' right 0.55 < 0.97 (n=20);
        candidate 'LIDL 9M'"`` (the candidate is shown to reviewers, never emitted as the value);
        a withheld field is ``None`` (``dates``: ``[]``).
    """
    table = load_table() if table is None else table
    learned = learned or {}
    out = {**fields, "confidence": {}, "withheld": {}, "evidence": []}
    for field in ALL_FIELDS:
        ev = evidence.get(field)
        if ev is None:
            continue
        if field in learned and ev.rule == MODEL_RULE:
            model_conf, emit_at = learned[field]
            out["evidence"].append(ev.as_record())
            out["confidence"][field] = round(model_conf, 4)
            if model_conf >= emit_at:
                continue
            reason = f"model confidence {model_conf:.2f} < {emit_at:.2f}"
            out["withheld"][field] = f"{reason}; candidate '{shown_value(field, fields[field])}'"
            out[field] = empty_value(field)
            continue
        conf = rule_confidence(table, field, ev.rule)
        out["evidence"].append(ev.as_record())
        entry = (table.get("fields") or {}).get(field, {}).get(ev.rule) or {}
        if conf is not None:
            out["confidence"][field] = round(conf, 4)
        if conf is None:
            reason = f"rule '{ev.rule}' not calibrated (measured on {entry.get('n', 0)} < {MIN_DOCUMENTS} documents)"
        elif ev.rule in NEVER_EMITTED:
            reason = f"rule '{ev.rule}' is never emitted"
        elif conf < threshold:
            reason = f"rule '{ev.rule}' right {conf:.2f} < {threshold:.2f} (n={entry.get('n')})"
        else:
            continue
        out["withheld"][field] = f"{reason}; candidate '{shown_value(field, fields[field])}'"  # reviewer only
        out[field] = empty_value(field)
    return out
