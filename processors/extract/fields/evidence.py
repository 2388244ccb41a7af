"""Where each key field was read, and by which kind of evidence (the field's *rule*).

After :func:`conveyor.processors.extract.fields.extract_key_fields` has chosen a value, this
module finds the printed line it stands on (page, line, the OCR row's box, text layer or OCR)
and names the kind of evidence, from what that line shows:

* ``total_amount`` — ``total label`` (the amount stands on a total line), ``printed amount``
  (printed, but not on a total line), ``not printed`` (the amount appears nowhere as printed:
  never emitted);
* ``dates`` (the first, the document date) — ``date label`` (its line says date / Datum /
  tarikh …) or ``date``;
* ``vendor`` — ``caption`` (the value holds a form caption such as "name, address" or "(if
  checked)": never emitted), ``address-like`` (a street and number), ``legal form`` (ends in
  Ltd, GmbH, Sdn Bhd …), ``header line`` (anything else);
* ``document_number`` — ``number label`` (its line says no / nr / # / invoice / receipt …) or
  ``unlabelled``;
* ``currency`` — ``code`` (the ISO code is printed) or ``symbol``.

A total or date that cannot be found in any line gets the rule ``not printed``; a currency whose
code is printed nowhere was read from its symbol (``symbol``). How often each rule is
right is measured on the labelled corpus (:mod:`.confidence`).
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from conveyor.processors.extract.fields.amounts import amounts_in_line
from conveyor.processors.extract.fields.dates import dates_in_line
from conveyor.processors.extract.fields.normalise import has_legal_form
from conveyor.processors.extract.fields.totals import is_total_label

if TYPE_CHECKING:
    from conveyor.processors.extract.layout import LayoutRow

#: Key fields that carry evidence, in KeyFields order.
KEY_FIELDS = ("dates", "total_amount", "currency", "document_number", "vendor")
#: The fields beyond the first five (issue 10, item 4), in KeyFields order; their finders return
#: :class:`Finding` objects with their own rules (:mod:`.terms`, :mod:`.taxes`, :mod:`.payments`,
#: :func:`.parties.find_customer`).
EXTRA_FIELDS = ("due_date", "time", "net_amount", "tax_amount", "supplier_tax_id", "iban", "customer",
                "payment_method")
#: Fields the key-field model reads (issue 24; :mod:`conveyor.processors.extract.kie`): the issuer's
#: address (a run of rows; the rules' candidate is located by :func:`locate_rows`), and a contract's
#: parties and effective date.
MODEL_ONLY_FIELDS = ("vendor_address", "parties", "effective_date")
#: Every field that carries evidence and confidence.
ALL_FIELDS = KEY_FIELDS + EXTRA_FIELDS + MODEL_ONLY_FIELDS
#: Fields holding a list of values (an empty list when absent or withheld); the others hold one or None.
LIST_FIELDS = ("dates", "parties")


def shown_value(field: str, value: Any) -> Any:
    """The value a reason names: the first date, all parties joined, else the value itself."""
    if field == "dates":
        return value[0] if value else None
    if field == "parties":
        return "; ".join(value or [])
    return value


def empty_value(field: str) -> Any:
    """What a field holds when it is left empty: ``[]`` for :data:`LIST_FIELDS`, else None."""
    return [] if field in LIST_FIELDS else None
NOT_PRINTED = "not printed"
#: Rules whose values are never emitted, whatever the calibration says.
NEVER_EMITTED = frozenset({NOT_PRINTED, "caption", "invalid checksum", "conflicting"})

_CAPTION = re.compile(
    r"\b(?:name|address|zip|postal\s*code|if\s*checked|corrected|employer'?s?|employee'?s?|recipient'?s?|"
    r"payer'?s?|sold\s*to|bill(?:ed)?\s*to|ship\s*to|single-member|signature|street|city|state)\b",
    re.IGNORECASE)
_STREET = re.compile(r"(?:stra(?:ss|ß|b)e|str\.|street|road|jalan|avenue|weg|platz|laan|rue)\b", re.IGNORECASE)
_DATE_LABEL = re.compile(r"\b(?:date|datum|tarikh|fecha|data|dt)\b", re.IGNORECASE)
_NUMBER_LABEL = re.compile(r"\b(?:no|nr|num|number|nummer|numer|num[ée]ro|invoice|receipt|rechnung|factuur|faktura|"
                           r"facture|bill|bon|beleg)\b|#|\bn[°º]",
                           re.IGNORECASE)


@dataclass(frozen=True)
class Finding:
    """A value a field finder read, with where and by which rule (the finders of the fields beyond
    the first five return these: :mod:`.payments`, :mod:`.taxes`, :mod:`.terms`).

    Attributes:
        value: the normalised value (string).
        line: 0-based index into the lines the finder was given.
        rule: kind of evidence (see the finder's module).
    """

    value: str
    line: int
    rule: str


@dataclass(frozen=True)
class FieldEvidence:
    """Where a field's value was read (the ``FieldEvidence`` record of the schemas).

    Attributes:
        field: KeyFields field name.
        rule: kind of evidence (see the module docstring).
        page: 1-based page number (0: not found on any page).
        line: 0-based line index within the page (-1: not found).
        text: the line's text (empty when not found).
        bbox: ``[left, top, right, bottom]`` as fractions of the page (OCR rows of the first
            page only), else None.
        source: ``"text layer"``, ``"ocr"`` or ``"unknown"``.
    """

    field: str
    rule: str
    page: int
    line: int
    text: str
    bbox: list[float] | None
    source: str

    def as_record(self) -> dict[str, Any]:
        """The Avro ``FieldEvidence`` dict."""
        return asdict(self)

    @classmethod
    def at(cls, field: str, rule: str, pages: Sequence[dict[str, Any]], page: int, line: int, text: str,
           layout: Sequence[LayoutRow] | None = None) -> FieldEvidence:
        """Evidence for a value read on line ``line`` (0-based) of page ``page`` (0-based) of ``pages``;
        the box comes from ``layout`` (rows of the first page) when there is one for that line."""
        method = str(pages[page].get("method", ""))
        source = "ocr" if "ocr" in method.lower() else "text layer" if method else "unknown"
        bbox = None
        if page == 0 and layout is not None and line < len(layout):
            row = layout[line]
            bbox = [round(float(v), 4) for v in (row.left, row.top, row.right, row.bottom)]
        return cls(field, rule, page + 1, line, text.strip(), bbox, source)


def _vendor_rule(value: str) -> str:
    if _CAPTION.search(value):
        return "caption"
    if _STREET.search(value) and re.search(r"\d", value):
        return "address-like"
    return "legal form" if has_legal_form(value) else "header line"


def _matches(field: str, value: Any, line: str) -> bool:
    if field == "total_amount":
        return Decimal(value) in amounts_in_line(line)
    if field == "dates":
        return any(iso == value for mf in (False, True) for _, iso, _ in dates_in_line(line, month_first=mf))
    def squeeze(s: str) -> str:  # OCR drops spaces
        return re.sub(r"\s+", "", s).casefold()

    return squeeze(str(value)) in squeeze(line)


def _rule(field: str, value: Any, line: str) -> str:
    if field == "total_amount":
        return "total label" if is_total_label(line) else "printed amount"
    if field == "dates":
        return "date label" if _DATE_LABEL.search(line) else "date"
    if field == "document_number":
        return "number label" if _NUMBER_LABEL.search(line.replace(str(value), " ")) else "unlabelled"
    if field == "currency":
        return "code" if re.search(rf"\b{re.escape(str(value))}\b", line) else "symbol"
    return _vendor_rule(str(value))


def locate(fields: dict[str, Any], pages: Sequence[dict[str, Any]],
           layout: Sequence[LayoutRow] | None = None) -> dict[str, FieldEvidence]:
    """Evidence of each present key field of ``fields``.

    Args:
        fields: a KeyFields dict (``dates`` a list; the first date is located).
        pages: page dicts with ``"text"`` and ``"method"`` (``"text"``/``"text layer"`` or ``"ocr"``).
        layout: :class:`conveyor.processors.extract.layout.LayoutRow` objects of the first
            page, one per line of its text, or None.

    Returns:
        ``{field: FieldEvidence}`` for every field with a value; a value found on no line has
        rule ``not printed`` (for ``vendor``, ``currency`` and ``document_number`` the rule of the
        value itself is kept, with page 0).
    """
    out: dict[str, FieldEvidence] = {}
    for field in KEY_FIELDS:
        value = fields.get(field)
        if field == "dates":
            value = value[0] if value else None
        if value in (None, ""):
            continue
        found = None
        candidates = []
        for p, page in enumerate(pages):
            for i, line in enumerate(page.get("text", "").splitlines()):
                if line.strip() and _matches(field, value, line):
                    candidates.append((p, i, line))
        if candidates:
            # a total prefers the last line that labels it; other fields their first line
            labelled = [c for c in candidates if field != "total_amount" or is_total_label(c[2])]
            found = (labelled[-1] if field == "total_amount" and labelled else
                     candidates[-1] if field == "total_amount" else candidates[0])
        if found is None:
            rule = (NOT_PRINTED if field in ("total_amount", "dates") else "symbol" if field == "currency"
                    else _rule(field, value, str(value)))
            out[field] = FieldEvidence(field, rule, 0, -1, "", None, "unknown")
            continue
        p, i, line = found
        out[field] = FieldEvidence.at(field, _rule(field, value, line), pages, p, i, line, layout)
    return out


def locate_rows(field: str, value: str, rule: str, pages: Sequence[dict[str, Any]],
                layout: Sequence[LayoutRow] | None = None) -> FieldEvidence:
    """Evidence of a value printed over several rows (an address): the first line of the first page
    whose letters and digits begin ``value``'s; rule ``not printed`` (line -1) when none does."""
    def squeeze(s: str) -> str:  # OCR drops spaces and commas
        return re.sub(r"[\W_]+", "", s).casefold()

    target = squeeze(value)
    if pages:
        for i, line in enumerate(str(pages[0].get("text", "")).splitlines()):
            part = squeeze(line)
            if part and target.startswith(part):
                return FieldEvidence.at(field, rule, pages, 0, i, line, layout)
    return FieldEvidence(field, NOT_PRINTED, 0, -1, "", None, "unknown")
