"""Baseline key-field extraction from document text (rules, no model).

Input is the extracted text (text layer or OCR rows; OCR rows already join a
label and its amount on one line, see :func:`conveyor.processors.extract.ocr.lines_to_text`).
Output is a dict shaped like the ``KeyFields`` record of
``schemas/key_fields.avsc``::

    {"dates": ["2020-03-02", ...],    # ISO 8601, most likely document date first
     "total_amount": "7.16" | None,   # decimal string, "." separator, >= 2 decimals
     "currency": "EUR" | None,        # ISO 4217
     "document_number": "2022089083" | None,
     "vendor": "Coolblue B.V." | None}

and, from :func:`extract_extra_fields`, the fields beyond those five (:data:`EXTRA_FIELDS`):
``due_date`` (ISO), ``time`` ("HH:MM"), ``net_amount`` and ``tax_amount`` (decimal strings),
``supplier_tax_id``, ``iban``, ``customer``, ``payment_method`` (one of
:data:`.payments.PAYMENT_METHODS`), each with the line it was read from and its rule.

Languages covered by the labels: English, German, French, Dutch (plus some
Spanish/Italian month names). Accuracy on real receipts and invoices is measured by
:mod:`conveyor.tools.evaluation.extraction`.

Modules, one job each: :mod:`.dates` (dates), :mod:`.amounts` (amounts, currency),
:mod:`.totals` (the total, with layout evidence), :mod:`.identifiers` (document
number, fallback vendor), :mod:`.parties` (issuer company and address),
:mod:`.normalise` (normal forms for comparison), :mod:`.issuers` (known issuers from
invoice2data templates, optional), :mod:`.terms` (time of day, due date), :mod:`.taxes` (net and
tax totals, VAT / tax id), :mod:`.payments` (IBAN, payment method); their public names are
re-exported here.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from conveyor.processors.extract.fields.amounts import (
    amounts_in_line,
    format_amount,
    parse_amount,
)
from conveyor.processors.extract.fields.currency import find_currency
from conveyor.processors.extract.fields.dates import MAX_YEAR, MIN_YEAR, find_dates
from conveyor.processors.extract.fields.evidence import (
    EXTRA_FIELDS,
    FieldEvidence,
    Finding,
)
from conveyor.processors.extract.fields.identifiers import (
    find_document_number,
    find_vendor,
)
from conveyor.processors.extract.fields.parties import (
    find_address,
    find_company,
    find_customer,
)
from conveyor.processors.extract.fields.payments import find_iban, find_payment_method
from conveyor.processors.extract.fields.taxes import find_net_and_tax, find_tax_id
from conveyor.processors.extract.fields.terms import find_due_date, find_time
from conveyor.processors.extract.fields.totals import find_total

if TYPE_CHECKING:
    from conveyor.processors.extract.layout import LayoutRow

__all__ = [
    "EXTRA_FIELDS",
    "extract_extra_fields",
    "extract_fields",
    "extract_key_fields",
    "find_dates",
    "find_total",
    "find_currency",
    "find_document_number",
    "find_vendor",
    "find_company",
    "find_address",
    "parse_amount",
    "format_amount",
    "amounts_in_line",
    "MIN_YEAR",
    "MAX_YEAR",
]

#: A printed date-format hint: month first (MM-DD-YYYY) or day first (DD.MM.YYYY, German TT.MM.JJJJ,
#: French/Spanish JJ/MM/AAAA, DD/MM/AAAA).
_DATE_FORMAT_HINT = re.compile(r"\b(?:MM[-/.]DD|DD[-/.]MM|TT[-/.]MM|JJ[-/.]MM)[-/.](?:YYYY|YY|JJJJ|AAAA|AA)\b")
#: Currencies of countries that write dates month first.
_MONTH_FIRST_CURRENCIES = ("USD", "CAD")


def month_first_dates(lines: list[str], currency: str | None) -> bool:
    """Read ambiguous numeric dates month first (US style)?

    A printed format hint decides first (``MM-DD-YYYY``, ``MM/DD/YY`` vs ``DD.MM.YYYY``,
    ``TT.MM.JJJJ``, ``JJ/MM/AAAA``). Otherwise True when some slash/dash date of the
    text can only be month/day (its second part is above 12, e.g. ``03/20/2023``) and
    none can only be day/month; otherwise True for US/Canadian dollar documents, False
    for the rest of the world.
    """
    hint = _DATE_FORMAT_HINT.search("\n".join(lines))
    if hint:
        return hint.group(0)[0] in "mM"
    only_mdy = only_dmy = False
    for line in lines:
        for m in re.finditer(r"(?<![\d.])(\d{1,2})[/-](\d{1,2})[/-](?:\d{4}|\d{2})(?![\d])", line):
            first, second = int(m.group(1)), int(m.group(2))
            only_mdy |= first <= 12 < second <= 31
            only_dmy |= second <= 12 < first <= 31
    if only_mdy != only_dmy:
        return only_mdy
    return currency in _MONTH_FIRST_CURRENCIES


def extract_key_fields(text: str, *, first_page_text: str | None = None,
                       layout: Sequence[LayoutRow] | None = None) -> dict[str, Any]:
    """Key fields plus the issuer's address.

    Args:
        text: The whole document's text, pages joined, lines separated by ``"\\n"``.
        first_page_text: The first page's text, where the issuer is looked for;
            defaults to ``text``.
        layout: :class:`conveyor.processors.extract.layout.LayoutRow` objects of the first
            page (OCR pages), one per line of ``first_page_text``; adds print size and
            alignment evidence to the choice of the total and the company name.

    Returns:
        The ``KeyFields`` dict of :func:`extract_fields` plus ``"address": str | None``.
    """
    lines = [line.strip() for line in text.splitlines()]
    first_lines = [line.strip() for line in (first_page_text if first_page_text is not None else text).splitlines()]
    if layout is not None and [" ".join(row.text.split()) for row in layout] != [" ".join(x.split()) for x in first_lines]:
        layout = None  # not the rows of this text (e.g. text edited after OCR): no layout evidence
    currency = find_currency(lines)
    single_page = first_lines == lines
    company, last = find_company(first_lines, [row.height for row in layout] if layout is not None else None)
    return {
        "dates": find_dates(lines, month_first=month_first_dates(lines, currency)),
        "total_amount": find_total(lines, layout if single_page else None),
        "currency": currency,
        "document_number": find_document_number(lines),
        "vendor": company or find_vendor(first_lines),
        "address": find_address(first_lines, last) if company else None,
    }


def extract_fields(text: str, *, first_page_text: str | None = None,
                   layout: Sequence[LayoutRow] | None = None) -> dict[str, Any]:
    """Extract key fields from a document's text (and the first page's OCR layout).

    Args:
        text: The whole document's text, pages joined, lines separated by ``"\\n"``.
        first_page_text: The first page's text, where the vendor is looked for;
            defaults to ``text``.
        layout: Optional layout rows of the first page (see :func:`extract_key_fields`).

    Returns:
        A ``KeyFields`` dict (see the module docstring). Missing fields are
        ``None`` (``dates``: an empty list).
    """
    fields = extract_key_fields(text, first_page_text=first_page_text, layout=layout)
    fields.pop("address")
    return fields


def extract_extra_fields(pages: list[dict[str, Any]], fields: dict[str, Any], layout: Sequence[LayoutRow] | None = None,
                         ) -> tuple[dict[str, str | None], dict[str, FieldEvidence]]:
    """The fields beyond the first five (:data:`EXTRA_FIELDS`), with their evidence.

    Args:
        pages: page dicts with ``"text"`` and ``"method"`` (as :func:`locate` takes them).
        fields: the document's KeyFields dict (its ``total_amount`` and ``currency`` are used:
            net + tax must add up to the total for rule ``sums to total``; dollar documents read
            ambiguous dates month first).
        layout: layout rows of the first page, one per line of its text, or None.

    Returns:
        ``(values, evidence)``: ``values`` maps every name of :data:`EXTRA_FIELDS` to its value or
        None; ``evidence`` maps each found field to its
        :class:`~conveyor.processors.extract.fields.evidence.FieldEvidence`.
    """
    where = [(p, i, line.strip()) for p, page in enumerate(pages) for i, line in enumerate(page.get("text", "").splitlines())]
    lines = [line for _, _, line in where]
    month_first = month_first_dates(lines, fields.get("currency"))
    net, tax = find_net_and_tax(lines, fields.get("total_amount"))
    found: dict[str, Finding | None] = {
        "due_date": find_due_date(lines, month_first), "time": find_time(lines, month_first),
        "net_amount": net, "tax_amount": tax, "supplier_tax_id": find_tax_id(lines), "iban": find_iban(lines),
        "customer": find_customer(lines), "payment_method": find_payment_method(lines)}
    values = {name: (hit.value if (hit := found.get(name)) else None) for name in EXTRA_FIELDS}
    evidence = {}
    for name, finding in found.items():
        if finding is None:
            continue
        p, i, text = where[finding.line]
        evidence[name] = FieldEvidence.at(name, finding.rule, pages, p, i, text, layout)
    return values, evidence
