"""The document's currency (ISO 4217) from its lines: a currency on a total line wins, else the
most frequent indicator."""
from __future__ import annotations

import re

from conveyor.processors.extract.fields.totals import is_total_label

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
        if is_total_label(line):
            found = codes(line)
            if found:
                return found[0]
    counts: dict[str, int] = {}
    for line in lines:
        for code in codes(line):
            counts[code] = counts.get(code, 0) + 1
    return max(counts, key=lambda code: counts[code]) if counts else None
