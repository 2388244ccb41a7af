"""Identifiers in document text: the document (invoice/receipt) number and the vendor (issuer)."""
from __future__ import annotations

import re
from collections.abc import Iterable

from conveyor.processors.extract.fields.dates import dates_in_line

# ------------------------------------------------------------------ document number

_DOC_NUMBER_LABEL = re.compile(
    r"(?:invoice|inv\.?|receipt|bill|order\s+invoice)\s*(?:no\.?|nr\.?|number|num\.?|#|n°|nº|id)"
    r"|rechnungs?\s*-?\s*(?:nr\.?|nummer|no\.?)|rechnungsnr\.?"
    r"|(?:kassen)?bon\s*-?\s*(?:nr\.?|nummer)|\bbnr\.?"
    r"|beleg\s*-?\s*(?:nr\.?|nummer)|quittungs?\s*-?\s*(?:nr\.?|nummer)"
    r"|factuur\s*-?\s*(?:nr\.?|nummer)|factuurnummer"
    r"|facture\s*(?:n°|nº|no\.?|num[ée]ro|num\.?)|n°\s*(?:de\s+)?facture|num[ée]ro\s+de\s+facture",
    re.IGNORECASE,
)
_DOC_NUMBER_VALUE = re.compile(
    r"\s*[:.#]?\s*#?\s*(?:(?:no|nr|number|num)\b\.?\s*[:.#]?\s*)?([A-Za-z0-9][A-Za-z0-9/_\-.]*)", re.IGNORECASE
)
_LEADING_INVOICE = re.compile(
    r"^\s*(?:tax\s+)?(?:invoice|rechnung|facture|factuur)\s+([A-Za-z0-9][A-Za-z0-9/_\-.]*)", re.IGNORECASE)

_DOCUMENT_TITLE = re.compile(r"^\s*(?:tax\s+)?(?:invoice|rechnung|facture|factuur|receipt|quittung|bill)\s*$", re.IGNORECASE)

# ------------------------------------------------------------------------- vendor

_NOT_VENDOR = re.compile(
    r"^(?:tax\s+)?(?:invoice|rechnung|receipt|facture|factuur|quittung|kassenbon|bon|beleg|bill|"
    r"payment\s+receipt|credit\s+note|gutschrift|lieferschein|delivery\s+note|original|copy|kopie|"
    r"duplicate|page|seite)\b|@|www\.|https?:|\b(?:tel|fax|phone|telefon|e-?mail)\b|^[^\w]",
    re.IGNORECASE,
)
_ADDRESS = re.compile(
    r"^\d+[a-z]?\s+\w|^\d{4,5}\s+\w|\b\d{4,5}\s+[A-ZÄÖÜ][a-zäöüß]+$|"
    r"(?:stra(?:ß|ss|b)e|str\.|street|\bst\b\.?|avenue|\bave\b|road|\brd\b|weg\b|platz\b|allee\b|\brue\b|\blane\b|"
    r"\bblvd\b|gasse\b|\bring\b).*\d|\d.*(?:stra(?:ß|ss|b)e|str\.|street|\bst\b\.?|avenue|\bave\b|road|\brd\b|\brue\b)",
    re.IGNORECASE,
)
_TABLE_HEADER_WORDS = re.compile(
    r"\b(?:description|qty|quantity|price|amount|unit|total|tax|vat|menge|preis|betrag|artikel|anzahl|"
    r"aantal|prijs|désignation|designation|quantité|montant|prix|rate|item)\b",
    re.IGNORECASE,
)
_LEGAL_FORM = re.compile(
    r"\b(?:inc|ltd|llc|gmbh|ag|kg|b\.v|n\.v|sas|s\.a\.s|sarl|s\.a|plc|corp|limited|pvt|pte|e\.k|ohg|ug)\b\.?|&\s*co\b",
    re.IGNORECASE,
)


# ------------------------------------------------------------------ document number

def find_document_number(lines: list[str]) -> str | None:
    """Invoice/receipt number from a labelled line (``Invoice No:``, ``Rechnungsnr.``,
    ``Bon-Nr``, ``Facture n°``…), the value on the same or the next line; it
    must contain a digit. Falls back to ``"Invoice <id>"`` at a line start."""
    for index, line in enumerate(lines):
        for label in _DOC_NUMBER_LABEL.finditer(line):
            value = _doc_number_after(line[label.end():])
            if value is None and not line[label.end():].strip(" :.#") and index + 1 < len(lines):
                value = _doc_number_after(lines[index + 1])
            if value:
                return value
    for index, line in enumerate(lines[:-1]):
        if _DOCUMENT_TITLE.match(line):  # an "INVOICE" title, the number below it: "# 0042"
            m = re.match(r"^\s*(?:#|no\.?|nr\.?|n°)\s*:?\s*([A-Za-z0-9][A-Za-z0-9/_\-.]*)\s*$", lines[index + 1], re.IGNORECASE)
            if m and re.search(r"\d", m.group(1)):
                return m.group(1).rstrip(".-/")
    for line in lines:
        m = _LEADING_INVOICE.match(line)
        if m and re.search(r"\d", m.group(1)) and _make_iso_from_token(m.group(1)) is None:
            return m.group(1).rstrip(".-/")
    return None


def _doc_number_after(text: str) -> str | None:
    m = _DOC_NUMBER_VALUE.match(text)
    if not m:
        return None
    value = m.group(1).rstrip(".-/")
    if not re.search(r"\d", value) or _make_iso_from_token(value) is not None:
        return None
    return value


def _make_iso_from_token(token: str) -> str | None:
    """ISO date when ``token`` is itself a date (so it is no document number)."""
    found = dates_in_line(token, month_first=False)
    return found[0][1] if found and found[0][0] == 0 else None


# -------------------------------------------------------------------------- vendor

def find_vendor(lines: Iterable[str]) -> str | None:
    """Issuer name: among the first meaningful lines of the first page, the
    first one carrying a legal form (``GmbH``, ``Inc.``, ``B.V.``…), else the
    first meaningful line. Meaningful: 3+ letters, at most 60 characters, not a
    date/amount/number, not an address, contact, label or document-type line."""
    candidates = []
    for raw in lines:
        line = raw.strip()
        if _is_vendor_candidate(line):
            candidates.append(line)
        if len(candidates) >= 25:
            break
    for line in candidates:
        if _LEGAL_FORM.search(line) and len(line) <= 50:
            return line
    return candidates[0] if candidates else None


def _is_vendor_candidate(line: str) -> bool:
    letters = sum(ch.isalpha() for ch in line)
    digits = sum(ch.isdigit() for ch in line)
    if letters < 3 or len(line) > 60 or digits > letters:
        return False
    if line.endswith(":") or _NOT_VENDOR.search(line) or _ADDRESS.search(line):
        return False
    if len(_TABLE_HEADER_WORDS.findall(line)) >= 2:
        return False
    if dates_in_line(line, month_first=False):
        return False
    return True
