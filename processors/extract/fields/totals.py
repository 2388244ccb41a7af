"""The document total: the amount on the row labelled as the total, chosen with layout evidence.

Every row is classified by its label (OCR misspellings one edit away from a label
word, ``T0TAL``/``Totsl``, are repaired first with RapidFuzz's Levenshtein distance;
word gaps may be missing, as OCR drops spaces): a strong total label (``grand
total``, ``amount due``, ``total payable``, ``zu zahlen``, ``total TTC``, ``do
zapłaty``…), a plain one (``total``, ``summe``, ``razem``…), a sub-total, a payment
(``cash``, ``card``, ``bar``, ``visa``…), change, or an excluded row (tax, quantity,
discount, rounding adjustment). A row holding two label-amount pairs is split first.
Each row's amount is scored:

* label: strong 3, plain 2, sub-total 1, payment 0.5;
* payment evidence: +2 when the amount equals what was paid (a payment row's amount,
  or amount tendered minus change) — a total is what the customer pays; this also
  rescues a total row whose label OCR garbled;
* more than the customer tendered: -1.5 (a misread, e.g. OCR "5.417" for "5,47");
* after a rounding adjustment: +0.5 (the rounded total follows it);
* print size: +1 when the row is printed larger than the page's typical text
  (receipts print the total in double height);
* right alignment: +0.25 when the amount sits in the page's amount column.

The best score wins; ties go to the larger amount (a total includes its parts), then
to the lower row. On a page that writes amounts with cents, a plain number of 3+
digits on a candidate row lost its decimal point to OCR and is divided by 100.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

from conveyor.processors.extract.fields.amounts import amounts_in_line, format_amount

if TYPE_CHECKING:
    from conveyor.processors.extract.layout import LayoutRow

__all__ = ["TotalCandidate", "total_candidates", "find_total", "is_total_label"]

#: Word gaps in labels are ``\s*``: OCR often drops spaces ("TOTALTAX", "AmountToBePaid").
_TOTAL_EXCLUDE = re.compile(
    r"sub\s*-?\s*tota|zwischensumme|subtotaal|sous[\s-]*total|"
    r"total\s*(?:of\s*)?(?:tax|vat|gst|mwst|ust|tva|btw|ht\b|hors|excl|net\b|items?|discount|savings?|qty|"
    r"quantity|disc|amount\s*saved|sales\s*\(?\s*excl)|total\s*\d+\s*%|"
    r"\bht\s*:|\bnetto\b|exclusief|excl\.?\b|excluding|ohne\s*mwst|tax\s*total|anzahl|\bitems?\b|"
    r"\bqty\b|\bpcs\b|\bchange\b|\bkembali\b|r[üu]ckgeld|wechselgeld",
    re.IGNORECASE,
)
#: Rounding adjustment rows — unless a total label comes first ("Total After Rounding", "Total Rounded").
_ROUNDING = re.compile(r"round|\badj(?:ustment|\.)?\b|\brnd\b", re.IGNORECASE)
_TOTAL_STRONG = re.compile(
    r"grand\s*total|(?:amount|amt)\s*due|total\s*due|balance\s*due|total\s*amount|(?:amount|amt)\s*payable|"
    r"total\s*payable|(?:amount\s*)?to\s*be\s*paid|amount\s*to\s*pay|total\s*to\s*pay|zu\s*zahlen|gesamtbetrag|"
    r"endbetrag|rechnungsbetrag|zahlbetrag|total\s*ttc|net\s*[àa]\s*payer|somme\s*[àa]\s*payer|montant\s*ttc|"
    r"te\s*betalen|total\s*after|total\s*rounded|nett?\s*total|do\s*zap[łl]aty|nale[żz]no[śs][ćc]|"
    r"total\s*a\s*pagar|importe\s*total|totale\s*(?:da\s*pagare|fattura|documento)",
    re.IGNORECASE,
)
_TOTAL_WEAK = re.compile(r"total|\btotaal\b|\bsumme\b|\bgesamt\b|\btotale\b|\bsum\b|\brazem\b|\bimporte\b", re.IGNORECASE)
_SUBTOTAL = re.compile(r"sub\s*-?\s*tota|zwischensumme|subtotaal|sous[\s-]*total", re.IGNORECASE)
_PAYMENT = re.compile(
    r"\b(?:cash|tunai|bar|visa|master\s*card|mastercard|card|kredit|credit|debit|ec|girocard|tendered|paid|"
    r"payment|bezahlt|gegeben|amex|espèces|especes|carte|contant|pin)\b|tendered|received",
    re.IGNORECASE,
)
_CHANGE = re.compile(r"\b(?:change|kembali|baki|returned)\b|r[üu]ckgeld|wechselgeld|rendu", re.IGNORECASE)

#: Label words whose OCR misspellings (one edit) are repaired before matching.
_LABEL_WORDS = ("total", "summe", "gesamt", "amount", "betrag", "zahlen", "totaal", "payable", "subtotal",
                "rounding", "change", "tendered")

#: Score of each kind of row (see the module docstring) and of each piece of evidence.
_LABEL_SCORE = {"strong": 3.0, "weak": 2.0, "subtotal": 1.0, "payment": 0.5}
_PAID_BONUS = 2.0
_OVERPAID_PENALTY = 1.5
_LARGE_PRINT_BONUS = 1.0
_AFTER_ROUNDING_BONUS = 0.5
_RIGHT_COLUMN_BONUS = 0.25


@dataclass(frozen=True)
class TotalCandidate:
    """A possible total: ``value`` read on row ``row`` (0-based) with its ``score``."""

    value: Decimal
    row: int
    score: float


def _repair_labels(line: str) -> str:
    """Replace words one edit away from a label word (``T0TAL`` -> ``total``)."""
    from rapidfuzz.distance import Levenshtein

    def fix(match: re.Match[str]) -> str:
        word = match.group(0)
        if len(word) < 5 or not re.search(r"[^\W\d_]", word):
            return word
        lower = word.lower()
        if lower in _LABEL_WORDS:
            return word
        for label in _LABEL_WORDS:
            if lower != label and abs(len(lower) - len(label)) <= 1 and Levenshtein.distance(lower, label) <= 1:
                return label
        return word

    return re.sub(r"\w+", fix, line)


def _row_kind(line: str) -> str | None:
    """``"strong"``/``"weak"`` total, ``"subtotal"``, ``"payment"``, ``"change"``,
    ``"excluded"`` (tax, quantity, rounding… rows) or ``None`` (no label)."""
    if _CHANGE.search(line):
        return "change"
    if _SUBTOTAL.search(line):
        return "subtotal"
    total = _TOTAL_STRONG.search(line) or _TOTAL_WEAK.search(line)
    rounding = _ROUNDING.search(line)
    if rounding and not (total and total.start() < rounding.start()):
        return "excluded"
    if _TOTAL_EXCLUDE.search(line):
        return "excluded"
    if _TOTAL_STRONG.search(line):
        return "strong"
    if total:
        return "weak"
    if _PAYMENT.search(line):
        return "payment"
    return None


def is_total_label(line: str) -> bool:
    """True when ``line`` is labelled as a document total (not a sub-total, tax,
    rounding, quantity or change row)."""
    return _row_kind(_repair_labels(line)) in ("strong", "weak")


def _segments(line: str) -> list[str]:
    """Split a row holding two label-amount pairs (two columns joined by OCR,
    ``"Total Saving 0.00 Total 41.50"``) after an amount followed by a label."""
    parts, start = [], 0
    for m in re.finditer(r"(?<=\d)\s+(?=[^\W\d_]{3,})", line):
        if _row_kind(line[m.end():]) is not None and start < m.start():
            parts.append(line[start:m.start()])
            start = m.end()
    return parts + [line[start:]]


def _cents_page(lines: Sequence[str]) -> bool:
    """Does the page write money with cents: at least 3 amounts with decimals, 80 % of
    them with exactly two?"""
    exponents = [value.as_tuple().exponent for line in lines for value in amounts_in_line(line)]
    decimal = [e for e in exponents if e < 0]  # type: ignore[operator]  # typeshed: exponent may be 'n'/'N'/'F' (non-finite); these amounts are finite
    return len(decimal) >= 3 and sum(1 for e in decimal if e == -2) >= 0.8 * len(decimal)


def _row_value(line: str, cents: bool) -> Decimal | None:
    """The row's amount: its last amount with decimals, else its last plain number.
    On a page of cent amounts a plain number of 3+ digits lost its decimal point to
    OCR (``"4150"`` next to ``"41.50"``) and is divided by 100."""
    values = amounts_in_line(line)
    with_decimals = [value for value in values if value.as_tuple().exponent < 0]  # type: ignore[operator]  # typeshed: exponent may be 'n'/'N'/'F' (non-finite); these amounts are finite
    if with_decimals:
        return with_decimals[-1]
    plain = [value for value in values if abs(value) < 10_000_000]
    if not plain:
        return None
    if cents and re.search(r"(?<![\d.,])\d{3,}(?![\d.,])", line) and abs(plain[-1]) < 100_000:
        return (plain[-1] / 100).quantize(Decimal("0.01"))
    return plain[-1]


def _paid_amounts(kinds: Sequence[str | None], values: Sequence[Decimal | None]) -> set[Decimal]:
    """What the customer paid: payment-row amounts, and amount tendered minus change."""
    paid = {abs(v) for k, v in zip(kinds, values) if k == "payment" and v}
    change = {abs(v) for k, v in zip(kinds, values) if k == "change" and v}
    return paid | {tendered - back for tendered in paid for back in change if tendered > back}


def total_candidates(lines: Sequence[str], layout: Sequence[LayoutRow] | None = None) -> list[TotalCandidate]:
    """Every possible total of the page, scored (see the module docstring).

    Args:
        lines: Text rows, top to bottom.
        layout: Optional :class:`conveyor.processors.extract.layout.LayoutRow` per row of
            ``lines`` (same length and order); adds the size and alignment evidence.

    Returns:
        Candidates in row order; non-negative values only.
    """
    if layout is not None and len(layout) != len(lines):
        layout = None
    rows = [(index, part) for index, line in enumerate(lines) for part in _segments(_repair_labels(line))]
    repaired = [part for _, part in rows]
    cents = _cents_page(repaired)
    kinds = [_row_kind(line) for line in repaired]
    values = [_row_value(line, cents) for line in repaired]
    for index, kind in enumerate(kinds):  # a label alone on its row, the amount on the next one
        if kind in ("strong", "weak") and values[index] is None and index + 1 < len(repaired) \
                and not re.search(r"[^\W\d_]{4,}", repaired[index + 1]):
            following = amounts_in_line(repaired[index + 1])
            values[index] = following[0] if following else None
    paid = _paid_amounts(kinds, values)
    right_edge = _amount_column(layout, [_repair_labels(line) for line in lines]) if layout is not None else None
    out = []
    for index, ((row_index, _text), kind, value) in enumerate(zip(rows, kinds, values)):
        if value is None or value <= 0 or kind == "change":
            continue
        score = _LABEL_SCORE.get(kind or "", 0.0)
        if kind != "payment" and value in paid:
            score += _PAID_BONUS
        if paid and value > max(paid):
            score -= _OVERPAID_PENALTY  # more than was tendered: misread (OCR "5.417" for "5,47")
        if not score or (kind == "excluded" and value not in paid):
            continue
        window = max(0, index - 3)
        if any(k == "excluded" and _ROUNDING.search(repaired[j]) for j, k in enumerate(kinds[window:index], window)):
            score += _AFTER_ROUNDING_BONUS
        if layout is not None:
            row = layout[row_index]
            if row.height >= 1.25:
                score += _LARGE_PRINT_BONUS
            if right_edge is not None and row.right >= right_edge - 0.05:
                score += _RIGHT_COLUMN_BONUS
        out.append(TotalCandidate(value=value, row=row_index, score=score))
    return out


def _amount_column(layout: Sequence[LayoutRow], lines: Sequence[str]) -> float | None:
    """Median right edge of rows ending in an amount (the page's amount column)."""
    edges = sorted(row.right for row, line in zip(layout, lines) if re.search(r"\d[.,]\d{2}\s*\W{0,2}$", line))
    return edges[len(edges) // 2] if edges else None


def find_total(lines: Sequence[str], layout: Sequence[LayoutRow] | None = None) -> str | None:
    """The document total as a decimal string (``"27.55"``), or ``None``.

    Args:
        lines: Text rows, top to bottom.
        layout: Optional :class:`conveyor.processors.extract.layout.LayoutRow` objects matching ``lines``.
    """
    candidates = total_candidates(lines, layout)
    if not candidates:
        return None
    best = max(candidates, key=lambda c: (c.score, c.value, c.row))
    return format_amount(best.value)
