"""Ground truth and scoring of the key fields beyond the first five (due date, time, net and tax
totals, supplier tax id, IBAN, customer, payment method) on the shippable corpus sources.

The labels are ``labels/extra_fields.json`` next to this module (labelled for the project from the
documents themselves; the documents stay in ``../shared/corpus``). A label of ``null`` means the
document does not print the field: a value emitted there counts as wrong, so precision sees false
positives; coverage counts only documents that print the field.
"""
from __future__ import annotations

import json
import re
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

LABELS_PATH = Path(__file__).with_name("labels") / "extra_fields.json"
#: Labelled folder prefix -> evaluation dataset name (as :mod:`.extraction` names them).
DATASETS = (("softmatic_receipts_de/", "softmatic"), ("invoice2data/", "invoice2data-pdf"),
            ("azure_form_recognizer_samples/invoices_labeled/", "azure-invoices"))


def _compact(value: Any) -> str:
    return re.sub(r"[\s./_-]+", "", str(value)).upper()


def _same_amount(predicted: Any, expected: Any) -> bool:
    try:
        return Decimal(str(predicted)) == Decimal(str(expected))
    except InvalidOperation:
        return False


def _same_name(predicted: Any, expected: Any) -> bool:
    from conveyor.processors.extract.fields.normalise import normalise_company

    return normalise_company(str(predicted)) == normalise_company(str(expected))


#: Field -> comparison of a predicted value with the label (both present).
COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "due_date": lambda p, e: str(p) == str(e),
    "time": lambda p, e: str(p) == str(e),
    "net_amount": _same_amount,
    "tax_amount": _same_amount,
    "supplier_tax_id": lambda p, e: _compact(p) == _compact(e),
    "iban": lambda p, e: _compact(p) == _compact(e),
    "customer": _same_name,
    "payment_method": lambda p, e: str(p) == str(e),
}


def load_labels(path: Path = LABELS_PATH) -> dict[str, dict[str, Any]]:
    """``{corpus-relative path: {field: value | None, "unsure": [...]}}``."""
    return json.loads(path.read_text(encoding="utf-8"))["documents"]


def dataset_of(relpath: str) -> str | None:
    """The evaluation dataset a labelled file belongs to, or None."""
    return next((name for prefix, name in DATASETS if relpath.startswith(prefix)), None)


def extra_field_rows(corpus: Path, documents: list[dict[str, Any]],
                     fields_fn: Callable[[Path], dict[str, Any]] | None = None) -> None:
    """Append one row per (labelled document, field) to ``documents``: ``dataset``, ``file``,
    ``key`` (field), ``rule`` (the predicted value's rule, None without a value), ``expected``,
    ``predicted``, ``ok`` and ``printed`` (the label is not null). Fields a labeller marked unsure
    are left out; files absent from ``corpus`` are skipped.

    Args:
        corpus: the ``../shared/corpus`` folder.
        documents: list the rows are appended to.
        fields_fn: ``path -> fields`` with an ``"evidence"`` ``{field: rule}`` dict (default
            :func:`conveyor.tools.evaluation.extraction.document_fields`).
    """
    from conveyor.tools.evaluation.extraction import document_fields

    fields_fn = fields_fn or document_fields
    for relpath, truth in sorted(load_labels().items()):
        path = corpus / relpath
        dataset = dataset_of(relpath)
        if dataset is None or not path.exists():
            continue
        try:
            predicted = fields_fn(path)
        except Exception as exc:  # noqa: BLE001 - a failed document counts as wrong on every field
            predicted = {"error": f"{type(exc).__name__}: {exc}"}
        for field, same in COMPARE.items():
            if field in truth.get("unsure", ()) or field not in truth:
                continue
            expected, value = truth[field], predicted.get(field)
            ok = (value is None) if expected is None else (value is not None and same(value, expected))
            documents.append({"dataset": dataset, "file": path.name, "field": field, "key": field,
                              "rule": (predicted.get("evidence") or {}).get(field) if value is not None else None,
                              "expected": expected, "predicted": value, "ok": bool(ok),
                              "printed": expected is not None})
