"""Money in document text: amounts, the document total and its currency.

Amounts are written with any common separators (``1.234,56``, ``1,234.56``,
``1'234.56``, ``1 234,56``); dates, times and percentages on a line are not
amounts. Totals are found by their labels (English, German, French, Dutch),
currencies by symbol or ISO 4217 code.
"""
from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from processors.extract.fields.dates import dates_in_line

# ------------------------------------------------------------------------- amounts

_AMOUNT = re.compile(
    r"(?<![\d.,'])(-\s?)?("
    r"[1-9]\d{0,2}(?:([.,'\u202f\u00a0])\d{3})(?:\3\d{3})*(?:[.,]\d{1,2})?"  # grouped thousands
    r"|\d+(?:[.,]\d{1,2})?"  # plain
    r")(?![\d]|[.,]\d|\s?%)"
)
_PERCENT = re.compile(r"\d+(?:[.,]\d+)?\s?%")
_TIME = re.compile(r"(?<!\d)\d{1,2}:\d{2}(?::\d{2})?(?!\d)")

_TOTAL_EXCLUDE = re.compile(
    r"sub\s*-?\s*tota|zwischensumme|subtotaal|sous[\s-]total|total\s+(?:tax|vat|mwst|ust|tva|btw|ht\b|hors|excl|net\b|items?|discount|savings)"
    r"|\bht\s*:|\bnetto\b|exclusief|excl\.|ohne\s+mwst|tax\s+total|total\s+qty|anzahl|\bitems?\b",
    re.IGNORECASE,
)
_TOTAL_STRONG = re.compile(
    r"grand\s+total|amount\s+due|total\s+due|balance\s+due|total\s+amount|amount\s+payable|total\s+payable|"
    r"zu\s+zahlen|gesamtbetrag|endbetrag|rechnungsbetrag|zahlbetrag|total\s+ttc|net\s+[àa]\s+payer|"
    r"somme\s+[àa]\s+payer|montant\s+ttc|te\s+betalen|totaal\s+incl|total\s+incl|total\s+to\s+pay",
    re.IGNORECASE,
)
_TOTAL_WEAK = re.compile(r"\btotal\b|\btotaal\b|\bsumme\b|\bgesamt\b|\btotale\b|\bsum\b", re.IGNORECASE)

# ------------------------------------------------------------------------ currency

_CURRENCY_CODES = (
    "EUR USD GBP INR MYR CHF JPY CNY CAD AUD NZD SGD HKD PLN SEK NOK DKK CZK HUF RON BGN TRY "
    "ZAR BRL MXN RUB UAH AED SAR IDR THB PHP VND KRW ILS"
).split()
_CURRENCY_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"US\s?\$"), "USD"),
    (re.compile(r"(?<![A-Za-z])C\$|CA\$"), "CAD"),
    (re.compile(r"(?<![A-Za-z])A\$|AU\$"), "AUD"),
    (re.compile(r"(?<![A-Za-z])S\$"), "SGD"),
    (re.compile(r"HK\$"), "HKD"),
    (re.compile(r"€"), "EUR"),
    (re.compile(r"£"), "GBP"),
    (re.compile(r"₹"), "INR"),
    (re.compile(r"¥"), "JPY"),
    (re.compile(r"\bRs\.?(?=\s?\d)|\bRs\b", re.IGNORECASE), "INR"),
    (re.compile(r"\bRM(?=\s?\d)|\bRM\b"), "MYR"),
    (re.compile(r"\bzł|\bzl\b", re.IGNORECASE), "PLN"),
    (re.compile(r"\beuros?\b", re.IGNORECASE), "EUR"),
    (re.compile(r"\$"), "USD"),
    (re.compile(r"(?<![A-Za-z])(" + "|".join(_CURRENCY_CODES) + r")(?![A-Za-z])"), ""),  # "" = the code itself
]


def _mask_dates_and_times(line: str) -> str:
    """Blank out dates, times and percentages so their digits are not amounts."""
    for _start, _iso, rest in dates_in_line(line, month_first=False)[:1]:
        line = rest
    line = _TIME.sub(" ", line)
    return _PERCENT.sub(" ", line)


def parse_amount(token: str) -> Decimal | None:
    """Parse a money amount written with any common separators.

    ``"1.234,56"`` and ``"1,234.56"`` -> ``Decimal("1234.56")``; ``"12,5"`` ->
    ``12.5``; ``"1,234"``/``"1.234"`` (three digits after the only separator)
    -> ``1234``; a leading ``-`` is kept. Returns ``None`` when not a number.
    """
    token = token.strip().replace(" ", "").replace("\u202f", "").replace("\u00a0", "").replace("'", "")
    negative = token.startswith("-")
    token = token.lstrip("-")
    if not token:
        return None
    last_sep = max(token.rfind("."), token.rfind(","))
    if last_sep >= 0:
        decimals = token[last_sep + 1:]
        integer = re.sub(r"[.,]", "", token[:last_sep])
        if len(decimals) == 3 and not ("." in token and "," in token):
            integer, decimals = integer + decimals, ""  # 1,234 / 1.234 = thousands
        token = integer + ("." + decimals if decimals else "")
    try:
        value = Decimal(token)
    except InvalidOperation:
        return None
    return -value if negative else value


def format_amount(value: Decimal) -> str:
    """``Decimal`` -> string with at least two decimals (``Decimal("7.5")`` -> ``"7.50"``)."""
    if value.as_tuple().exponent > -2:  # type: ignore[operator]
        value = value.quantize(Decimal("0.01"))
    return format(value, "f")


def amounts_in_line(line: str) -> list[Decimal]:
    """Money-looking numbers of ``line`` in order (dates, times, percentages skipped)."""
    values = []
    for m in _AMOUNT.finditer(_mask_dates_and_times(line)):
        value = parse_amount((m.group(1) or "") + m.group(2))
        if value is not None:
            values.append(value)
    return values


def _line_total(line: str) -> Decimal | None:
    values = amounts_in_line(line)
    with_decimals = [value for value in values if value.as_tuple().exponent < 0]  # type: ignore[operator]
    if with_decimals:
        return with_decimals[-1]
    plain = [value for value in values if abs(value) < 10_000_000]
    return plain[-1] if plain else None


def find_total(lines: list[str]) -> str | None:
    """The document total as a decimal string, or ``None``.

    Looks at lines labelled as a total (``total``, ``summe``, ``gesamt``,
    ``amount due``, ``balance due``, ``zu zahlen``, ``total TTC``, ``totaal``…;
    not sub-totals, tax or net lines). Strong labels (``amount due``,
    ``grand total``, ``zu zahlen``…) win over a plain ``total``; among equals
    the bottom-most line wins. The amount is the last amount on the line, or
    the first one on the next line when the label stands alone.
    """
    best: tuple[int, int, Decimal] | None = None
    for index, line in enumerate(lines):
        if _TOTAL_EXCLUDE.search(line):
            continue
        strength = 2 if _TOTAL_STRONG.search(line) else 1 if _TOTAL_WEAK.search(line) else 0
        if not strength:
            continue
        value = _line_total(line)
        if value is None and index + 1 < len(lines) and not re.search(r"[^\W\d_]{4,}", lines[index + 1]):
            following = amounts_in_line(lines[index + 1])
            value = following[0] if following else None
        if value is None or value < 0:
            continue
        candidate = (strength, index, value)
        if best is None or candidate[:2] >= best[:2]:
            best = candidate
    return format_amount(best[2]) if best else None


# ------------------------------------------------------------------------ currency

def find_currency(lines: list[str]) -> str | None:
    """ISO 4217 code of the document's currency, or ``None``.

    A currency on a total line wins; otherwise the most frequent indicator in
    the text (symbols ``€ $ £ ₹ ¥``, ``Rs``, ``RM``, ``zł``, prefixed dollars
    ``US$``/``C$``/``A$``/``S$``, and ISO codes such as ``EUR``).
    """
    def codes(line: str) -> list[str]:
        out = []
        masked = line
        for pattern, code in _CURRENCY_PATTERNS:
            for m in pattern.finditer(masked):
                out.append(code or m.group(1))
            masked = pattern.sub(" ", masked)
        return out

    for line in reversed(lines):
        if (_TOTAL_STRONG.search(line) or _TOTAL_WEAK.search(line)) and not _TOTAL_EXCLUDE.search(line):
            found = codes(line)
            if found:
                return found[0]
    counts: dict[str, int] = {}
    for line in lines:
        for code in codes(line):
            counts[code] = counts.get(code, 0) + 1
    return max(counts, key=lambda code: counts[code]) if counts else None
