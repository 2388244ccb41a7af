"""Money in document text: amounts, the document total and its currency.

Amounts are written with any common separators (``1.234,56``, ``1,234.56``,
``1'234.56``, ``1 234,56``); dates, times and percentages on a line are not
amounts. Currencies are found by symbol or ISO 4217 code (the total itself:
:mod:`.totals`).
"""
from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from conveyor.processors.extract.fields.dates import dates_in_line

# ------------------------------------------------------------------------- amounts

_AMOUNT = re.compile(
    r"(?<![\d.,'])(-\s?)?("
    r"[1-9]\d{0,2}(?:([.,'\u202f\u00a0])\d{3})(?:\3\d{3})*(?:[.,]\d{1,2})?"  # grouped thousands
    r"|\d+(?:[.,]\d{1,2})?"  # plain
    r")(?![\d]|[.,]\d|\s?%)"
)
_PERCENT = re.compile(r"\d+(?:[.,]\d+)?\s?%")
_TIME = re.compile(r"(?<!\d)\d{1,2}:\d{2}(?::\d{2})?(?!\d)")

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
    if value.as_tuple().exponent > -2:  # type: ignore[operator]  # typeshed: exponent may be 'n'/'N'/'F' (non-finite)
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
