"""Baseline key-field extraction from document text (rules, no model).

Input is the extracted text (text layer or OCR rows; OCR rows already join a
label and its amount on one line, see :func:`processors.extract.ocr.lines_to_text`).
Output is a dict shaped like the ``KeyFields`` record of
``schemas/extracted.avsc``::

    {"dates": ["2020-03-02", ...],    # ISO 8601, most likely document date first
     "total_amount": "7.16" | None,   # decimal string, "." separator, >= 2 decimals
     "currency": "EUR" | None,        # ISO 4217
     "document_number": "2022089083" | None,
     "vendor": "Coolblue B.V." | None}

Languages covered by the labels: English, German, French, Dutch (plus some
Spanish/Italian month names). This is a baseline; accuracy work belongs to a
later stage.

Modules, one job each: :mod:`.dates` (dates), :mod:`.amounts` (amounts, total,
currency), :mod:`.identifiers` (document number, vendor); their public names are
re-exported here.
"""
from __future__ import annotations

from processors.extract.fields.amounts import (
    amounts_in_line,
    find_currency,
    find_total,
    format_amount,
    parse_amount,
)
from processors.extract.fields.dates import MAX_YEAR, MIN_YEAR, find_dates
from processors.extract.fields.identifiers import find_document_number, find_vendor

__all__ = [
    "extract_fields",
    "find_dates",
    "find_total",
    "find_currency",
    "find_document_number",
    "find_vendor",
    "parse_amount",
    "format_amount",
    "amounts_in_line",
    "MIN_YEAR",
    "MAX_YEAR",
]


def extract_fields(text: str, *, first_page_text: str | None = None) -> dict:
    """Extract baseline key fields from a document's text.

    Args:
        text: The whole document's text, pages joined, lines separated by ``"\\n"``.
        first_page_text: The first page's text, where the vendor is looked for;
            defaults to ``text``.

    Returns:
        A ``KeyFields`` dict (see the module docstring). Missing fields are
        ``None`` (``dates``: an empty list).
    """
    lines = [line.strip() for line in text.splitlines()]
    currency = find_currency(lines)
    return {
        "dates": find_dates(lines, month_first=currency in ("USD", "CAD") or None),
        "total_amount": find_total(lines),
        "currency": currency,
        "document_number": find_document_number(lines),
        "vendor": find_vendor((first_page_text if first_page_text is not None else text).splitlines()),
    }
