"""When: the time of day a receipt was issued and the date an invoice is due.

* Time — a clock time ``HH:MM[:SS]`` (``am``/``pm`` read), normalised to 24 h ``HH:MM``. Rules, in
  order of preference: ``beside date`` (a date on the same line: the till's own timestamp),
  ``time label`` (the line says time / Zeit / Uhrzeit / heure / tijd / masa — on German receipts
  often the card terminal's slip, a minute before the till), ``time`` (alone); a range or opening
  hours (``8:00-20:00``, Öffnungszeiten) is not a candidate. A time OCR glued to its date or to the
  number after it (``29.04.2009:48``, ``06.04.202014:4328753``) is split off first
  (:func:`.dates.split_glued_time`); a date glued to the digits before it (``11780608.09.2017 15:21``,
  a till's register number) still counts as a date beside the time.
* Due date — a date on a line with a due label (due date, payment due, fällig, zahlbar bis,
  échéance, vervaldatum …): ``due label``; a label line without a date whose next line carries as
  many dates as the label line has date labels (a header row "Invoice date  Due date" over its
  values): ``due label, column``. Payment terms in days are not dates and give nothing.
"""
from __future__ import annotations

import re
from collections.abc import Sequence

from conveyor.processors.extract.fields.dates import dates_in_line, split_glued_time
from conveyor.processors.extract.fields.evidence import Finding

_CLOCK = re.compile(r"(?<![\d:.,])([01]?\d|2[0-3]):([0-5]\d)(?::[0-5]\d)?(?!\d|[.,]\d)(?:\s*([ap])\.?\s*m\b\.?)?",
                    re.IGNORECASE)
#: A numeric date glued to three or more digits before it (``11780608.09.2017``: a till's register number and
#: the date): a valid day and month, then a 2- or 4-digit year, and no further ``-12``/``.34`` part
#: (a phone number, an IP address). Enough to call a time on that line "beside date".
_DATE_AFTER_DIGITS = re.compile(
    r"(?<=\d{3})(?:0?[1-9]|[12]\d|3[01])([./-])(?:0?[1-9]|1[0-2])\1(?:\d{4}|\d{2})(?!\d|[.,/-]\d)")
_TIME_LABEL = re.compile(r"\b(?:time|zeit|uhrzeit|heure|tijd|masa|hora|ora)\b|\buhr\b", re.IGNORECASE)
_OPENING_HOURS = re.compile(
    r"\d{1,2}[:.]\d{2}\s*(?:-|–|bis|to|uhr\s*-)\s*\d{1,2}[:.]\d{2}|[öo]ffnungszeit|opening\s*hours|ge[öo]ffnet|"
    r"\bmo\s*[-–]\s*(?:fr|sa)\b|mon\s*[-–]\s*(?:fri|sat)", re.IGNORECASE)
_DUE_LABEL = re.compile(
    r"due\s*date|date[ ]due\b(?![ ]*date)|payment\s*due|\bdue\s*(?:on|by)?\b|pay(?:able)?\s*by|f[äa]llig\w*|zahlbar\s*bis|"
    r"zahlungsziel|date\s*limite|limite\s*de\s*paiement|[ée]ch[ée]ance|[àa]\s*payer\s*avant|vervaldatum|te\s*betalen\s*voor|scadenza|vencimiento|"
    r"termin\s*p[łl]atno", re.IGNORECASE)
_ANY_DATE_LABEL = re.compile(_DUE_LABEL.pattern + r"|\bdate\b|datum|\bdatu?m?\b|\bdate\s+de\b", re.IGNORECASE)


def find_time(lines: Sequence[str], month_first: bool = False) -> Finding | None:
    """The document's time of day as ``HH:MM`` (24 h), or None; the best rule wins, then the latest
    time (a receipt's till stamp follows its card slip's).

    Args:
        lines: the document's lines.
        month_first: read ambiguous dates month first (only used to see a date beside the time).
    """
    best: tuple[int, Finding] | None = None
    rank = {"beside date": 0, "time label": 1, "time": 2}
    for i, raw in enumerate(lines):
        line = split_glued_time(raw)
        for m in _CLOCK.finditer(line):
            hour, minute, half = int(m.group(1)), m.group(2), (m.group(3) or "").lower()
            if half == "p" and hour < 12:
                hour += 12
            elif half == "a" and hour == 12:
                hour = 0
            if _OPENING_HOURS.search(line):
                break  # opening hours, a range: not when this document was issued
            if dates_in_line(line, month_first=month_first) or _DATE_AFTER_DIGITS.search(line):
                rule = "beside date"
            elif _TIME_LABEL.search(line):
                rule = "time label"
            else:
                rule = "time"
            found = Finding(f"{hour:02d}:{minute}", i, rule)
            if best is None or rank[rule] < best[0] or (rank[rule] == best[0] and found.value > best[1].value):
                best = (rank[rule], found)
            break
    return best[1] if best else None


def find_due_date(lines: Sequence[str], month_first: bool = False) -> Finding | None:
    """The payment due date (ISO ``YYYY-MM-DD``), or None. See the module docstring for the rules."""
    for i, line in enumerate(lines):
        label = _DUE_LABEL.search(line)
        if not label:
            continue
        after = dates_in_line(line[label.start():], month_first=month_first)
        if after:
            return Finding(after[0][1], i, "due label")
        if dates_in_line(line, month_first=month_first) or i + 1 >= len(lines):
            continue
        labels = [m for m in _ANY_DATE_LABEL.finditer(line)]
        below = dates_in_line(lines[i + 1], month_first=month_first)
        column = next((k for k, m in enumerate(labels) if _DUE_LABEL.fullmatch(m.group(0))), None)
        if column is not None and len(below) == len(labels):
            return Finding(below[column][1], i + 1, "due label, column")
    return None
