"""Key information extraction learned from data (issue 24): which candidate is each field's value.

The rules of :mod:`conveyor.processors.extract.fields` find values and say why; this package
ranks every candidate value of a field (:mod:`.candidates`) with a model trained on labelled
documents (:mod:`.model`, features :mod:`.features`, rows :mod:`.rows`) and replaces the rules'
value where the model was measured better (``use: model`` in its manifest). Its confidence is
calibrated on left-out documents; below the field's emission threshold the value is withheld,
with its candidate, as for the rules.

:func:`apply` is what the extract stage calls.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from conveyor.processors.extract.fields.evidence import FieldEvidence
from conveyor.processors.extract.kie.candidates import MULTI_VALUED
from conveyor.processors.extract.kie.model import MODEL_RULE, KeyFieldModel, default_model
from conveyor.processors.extract.kie.rows import document_rows

if TYPE_CHECKING:
    from conveyor.processors.extract.layout import LayoutRow

__all__ = ["apply", "KeyFieldModel", "MODEL_RULE", "default_model"]


def apply(values: dict[str, Any], evidence: dict[str, FieldEvidence], pages: Sequence[dict[str, Any]],
          layout: Sequence[LayoutRow] | None = None, model: KeyFieldModel | None = None) -> dict[str, tuple[float, float]]:
    """Let the key-field model choose the fields it decides; ``values`` and ``evidence`` are updated.

    Args:
        values: the rules' KeyFields values (plus ``vendor_address``); the model's choices replace
            them for the fields whose manifest entry says ``use: model``. For ``dates`` the chosen
            date comes first and the rules' other dates follow; ``parties`` get every party at or
            above the threshold (or the best one, to be withheld with its candidate).
        evidence: the rules' evidence per field; a chosen value gets rule ``model`` on its row.
        pages: the page dicts of :func:`conveyor.processors.extract.extract_pages`.
        layout: the first page's layout rows (for the evidence box), or None.
        model: the model (default: the shipped one; none shipped: nothing changes).

    Returns:
        ``{field: (confidence, emit threshold)}`` of the fields the model chose, for
        :func:`conveyor.processors.extract.fields.confidence.gate`.
    """
    model = model or default_model()
    if model is None or not pages:
        return {}
    fields = [f for f in model.fields if model.spec(f).get("use") == "model"]
    if not fields:
        return {}
    rows = document_rows(pages, layout)
    rule_fields = {k: values.get(k) for k in ("dates", "total_amount", "vendor", "vendor_address")}
    learned = {}
    for field, pred in model.predict(rows, rule_fields, fields).items():
        cand = pred.candidate
        if field == "dates":
            values[field] = [cand.value] + [d for d in values.get("dates") or [] if d != cand.value]
        elif field in MULTI_VALUED:
            values[field] = list(pred.values) or [cand.value]  # below the threshold: the best, to be withheld
        else:
            values[field] = cand.value
        row = rows[cand.rows[0]]
        page_text = str(pages[row.page].get("text", "")).splitlines()
        text = " ".join(page_text[rows[i].line] for i in cand.rows if rows[i].page == row.page)
        ev = FieldEvidence.at(field, MODEL_RULE, pages, row.page, row.line, text, layout)
        if len(cand.rows) > 1 and ev.bbox is not None and layout is not None:
            last = rows[cand.rows[-1]]
            ev = FieldEvidence(ev.field, ev.rule, ev.page, ev.line, ev.text,
                               [ev.bbox[0], ev.bbox[1], max(ev.bbox[2], round(last.right, 4)), round(last.bottom, 4)],
                               ev.source)
        evidence[field] = ev
        learned[field] = (pred.confidence, float(model.spec(field)["emit_threshold"]))
    return learned
