"""Dates in document text: every plausible date as ISO 8601, the document date first.

Formats: ISO ``2020-03-02``, numeric ``02.03.2020``/``03/02/2020``/``15-10-15``
(day first unless told otherwise), and month names in English, German, French,
Dutch, Spanish and Italian (``3. März 2020``, ``March 3, 2020``,
``2020 Mar 3``); other day-word-year dates go to ``dateparser`` (Polish, Malay…:
``15 stycznia 2021``, ``5 Ogos 2019``). Years outside ``MIN_YEAR``..``MAX_YEAR`` are ignored.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date
from functools import lru_cache

from conveyor.processors.extract.fields.normalise import normalise_date

_MONTHS = {
    1: "jan january januar janvier janv januari enero gennaio ene gen jän jänner",
    2: "feb february februar février fevrier févr fevr februari febrero febbraio",
    3: "mar march märz maerz mars maart marzo mrz",
    4: "apr april avril abril aprile avr",
    5: "may mai mei mayo maggio mag",
    6: "jun june juni juin junio giugno giu",
    7: "jul july juli juillet julio luglio juil lug",
    8: "aug august août aout augustus agosto ago",
    9: "sep sept september septembre septiembre settembre set",
    10: "oct october oktober octobre octubre ottobre okt ott",
    11: "nov november novembre noviembre",
    12: "dec december dezember décembre decembre diciembre dicembre dez dic déc",
}
_MONTH_BY_NAME = {name: number for number, names in _MONTHS.items() for name in names.split()}
_MONTH_RE = "|".join(sorted((re.escape(name) for name in _MONTH_BY_NAME), key=len, reverse=True))

_ISO_DATE = re.compile(r"(?<![\d.,/-])(\d{4})([-/.])(\d{1,2})\2(\d{1,2})(?![\d]|[.,/-]\d)")
#: After a 4-digit year, OCR often glues the time on: "06.04.202014:43".
_DATE_END = r"(?:(?![\d]|[.,/-]\d)|(?<=\d{4})(?=\d{1,2}:\d{2}))"
_NUMERIC_DATE = re.compile(r"(?<![\d.,])(\d{1,2})([./-])(\d{1,2})\2(\d{4}|\d{2})" + _DATE_END)
#: OCR drops the space between a 2-digit year and the time: "01/03/1819:14", "28Mar 1818:32".
_GLUED_TIME = re.compile(
    rf"(?<!\d)((?:\d{{1,2}}[./-]\d{{1,2}}[./-]|\d{{1,2}}\s*(?:{_MONTH_RE})\.?[\s/-]*)\d{{2}})(?=\d{{2}}:\d{{2}})",
    re.IGNORECASE)
_GLUED_4Y_TIME = re.compile(r"(?<![\d.,])(\d{1,2}[./-]\d{1,2}[./-]\d{4})(?=(?:[01]?\d|2[0-3]):[0-5]\d)")
_TIME_THEN_DIGITS = re.compile(r"(\d{1,2}[./-]\d{1,2}[./-]\d{2,4} (?:[01]?\d|2[0-3]):[0-5]\d)(?=\d{4})")
_TIME_NEAR = re.compile(r"^.{6,14}?\s(?:[01]?\d|2[0-3]):[0-5]\d(?!\d)")
_DAY_MONTH_YEAR = re.compile(
    rf"(?<![\w])(\d{{1,2}})(?:st|nd|rd|th|er)?\.?[\s/-]*(?:de\s+)?({_MONTH_RE})\.?[\s,/-]*(?:de\s+)?(\d{{4}}|\d{{2}}(?=\s*$|\s+\d{{1,2}}:\d{{2}})){_DATE_END}",
    re.IGNORECASE,
)
#: Day, a word, 4-digit year: parsed by dateparser (:func:`.normalise.normalise_date`) in the
#: languages of :data:`.normalise.DATE_LANGUAGES` when the month tables above do not know the word.
_WORD_DATE = re.compile(
    r"(?<![\w])\d{1,2}\.?[\s/-]*(?:de\s+)?[^\W\d_]{3,12}\.?[\s,/-]*(?:de\s+)?\d{4}(?![\d:.,])"
)
#: The legal form "the 4th day of May, 2005" / "this 16th day of May 2011" (contracts).
_DAY_OF_MONTH_YEAR = re.compile(
    rf"(?<![\w])(\d{{1,2}})(?:st|nd|rd|th)?\s+day\s+of\s+({_MONTH_RE})\.?\s*,?\s*(\d{{4}})(?!\d)", re.IGNORECASE
)
_MONTH_DAY_YEAR = re.compile(
    rf"(?<![\w])({_MONTH_RE})\.?\s*(\d{{1,2}})(?:st|nd|rd|th)?\s*,?\s*(\d{{4}}){_DATE_END}", re.IGNORECASE
)
_YEAR_MONTH_DAY = re.compile(
    rf"(?<![\w])(\d{{4}})[-\s.]({_MONTH_RE})\.?[-\s.](\d{{1,2}})(?!\d)", re.IGNORECASE
)

#: Labels that name the document's own date (rank 0), generic date words
#: (rank 1), other dates (rank 2), and due/period/order dates (rank 3).
_ISSUE_DATE_LABEL = re.compile(
    r"invoice|rechnung|factu|receipt|beleg|bill\b|quittung|issued|ausgestellt|belegdatum|tax point", re.IGNORECASE
)
_DATE_LABEL = re.compile(r"\bdate\b|datum|fecha|\bdata\b|\bdated\b|\bdu\b|\bvom\b", re.IGNORECASE)
_OTHER_DATE_LABEL = re.compile(
    r"\bdue\b|fällig|faellig|échéance|echeance|limite|zahlbar|payable|period|zeitraum|période|periode|"
    r"order|bestell|liefer|deliver|ship|versand|check\s*-?\s*(?:in|out)|valid|gültig|expir|until|\bbis\b|"
    r"geburt|birth|prélèvement|prelevement|from\b|\bto\b",
    re.IGNORECASE,
)

MIN_YEAR = 1970
MAX_YEAR = 2100


def find_dates(lines: Iterable[str], *, month_first: bool | None = None) -> list[str]:
    """All plausible dates as ISO strings, the most likely document date first.

    Ranking: dates on a line naming the invoice/receipt date, then lines with a
    generic date label, then unlabelled dates, then due/order/period dates;
    ties keep reading order. A label alone on the previous line counts (a
    ``"Invoice Date:"`` line followed by a ``"03/20/2023"`` line).

    Args:
        lines: Text lines in reading order.
        month_first: How to read ambiguous ``a/b/yyyy`` dates (both parts <= 12):
            ``True`` = US month/day (for ``/`` and ``-`` dates; dotted dates are
            always day first); ``None``/``False`` = day/month.
    """
    found: list[tuple[int, int, str]] = []
    previous = ""
    for position, line in enumerate(lines):
        for start, iso, rest in dates_in_line(line, month_first=bool(month_first)):
            context = rest if re.search(r"[^\W\d_]{2,}", rest) else previous + " " + rest
            rank = _date_rank(context)
            if rank == 2 and _followed_by_time(line, start):
                rank = 1  # a date with a time is a transaction timestamp
            found.append((rank, position * 1000 + start, iso))
        previous = line
    seen: set[str] = set()
    ordered = []
    for _rank, _pos, iso in sorted(found):
        if iso not in seen:
            seen.add(iso)
            ordered.append(iso)
    return ordered


def split_glued_time(line: str) -> str:
    """``line`` with a space between a date and the clock time OCR glued to it, and after that time
    when four or more digits of a number follow it (a till line prints date, time and receipt number):
    ``"29.04.2009:48"`` → ``"29.04.20 09:48"``, ``"04.04.202013:45"`` → ``"04.04.2020 13:45"``,
    ``"06.04.202014:4328753"`` → ``"06.04.2020 14:43 28753"``. Other text is returned unchanged."""
    return _TIME_THEN_DIGITS.sub(r"\1 ", _GLUED_4Y_TIME.sub(r"\1 ", _GLUED_TIME.sub(r"\1 ", line)))


def _followed_by_time(line: str, start: int) -> bool:
    """Is the date starting at ``start`` followed by a clock time (``14:52``) within a few characters?"""
    return bool(_TIME_NEAR.match(_GLUED_TIME.sub(r"\1 ", line)[start:]))


def _date_rank(context: str) -> int:
    if _OTHER_DATE_LABEL.search(context) and not re.search(
            r"invoice\s+date|rechnungsdatum|factuurdatum|date\s+de\s+facture", context, re.IGNORECASE):
        return 3
    if _ISSUE_DATE_LABEL.search(context):
        return 0
    if _DATE_LABEL.search(context):
        return 1
    return 2


def dates_in_line(line: str, *, month_first: bool) -> list[tuple[int, str, str]]:
    """``(start, iso, line_without_dates)`` for each valid date in ``line``."""
    return list(_dates_in_line(line, bool(month_first)))


@lru_cache(maxsize=16384)
def _dates_in_line(line: str, month_first: bool) -> tuple[tuple[int, str, str], ...]:
    """:func:`dates_in_line`, memoised: a line is read by several finders and candidate generators."""
    line = _GLUED_TIME.sub(r"\1 ", line)
    hits: list[tuple[int, int, date]] = []
    taken: list[tuple[int, int]] = []

    def free(span: tuple[int, int]) -> bool:
        return all(span[1] <= a or span[0] >= b for a, b in taken)

    def add(match: re.Match[str], value: date | None) -> None:
        if value is not None and free(match.span()):
            hits.append((match.start(), match.end(), value))
            taken.append(match.span())

    for m in _ISO_DATE.finditer(line):
        add(m, _make_date(int(m.group(1)), int(m.group(3)), int(m.group(4))))
    for m in _DAY_OF_MONTH_YEAR.finditer(line):
        add(m, _make_date(int(m.group(3)), _MONTH_BY_NAME[m.group(2).lower()], int(m.group(1))))
    for m in _DAY_MONTH_YEAR.finditer(line):
        add(m, _make_date(_year(m.group(3)), _MONTH_BY_NAME[m.group(2).lower()], int(m.group(1))))
    for m in _YEAR_MONTH_DAY.finditer(line):
        add(m, _make_date(int(m.group(1)), _MONTH_BY_NAME[m.group(2).lower()], int(m.group(3))))
    for m in _MONTH_DAY_YEAR.finditer(line):
        add(m, _make_date(int(m.group(3)), _MONTH_BY_NAME[m.group(1).lower()], int(m.group(2))))
    for m in _WORD_DATE.finditer(line):  # any other language dateparser knows: "15 stycznia 2021", "5 Ogos 2019"
        if free(m.span()):
            iso = normalise_date(m.group(0))
            add(m, date.fromisoformat(iso) if iso else None)
    for m in _NUMERIC_DATE.finditer(line):
        if re.search(r"\d" + re.escape(m.group(2)) + "$", line[: m.start()]):
            continue  # "1/02/03/2020": part of a longer number chain with the same separator
        first, sep, second, year = int(m.group(1)), m.group(2), int(m.group(3)), _year(m.group(4))
        if first > 12 or (second <= 12 and not (month_first and sep in "/-")):
            day, month = first, second
        else:
            day, month = second, first
        add(m, _make_date(year, month, day))

    rest = line
    for start, end, _ in sorted(hits, reverse=True):
        rest = rest[:start] + " " + rest[end:]
    return tuple((start, value.isoformat(), rest) for start, _end, value in sorted(hits))


def _year(text: str) -> int:
    year = int(text)
    if len(text) == 2:
        year += 2000 if year < 70 else 1900
    return year


def _make_date(year: int, month: int, day: int) -> date | None:
    if not MIN_YEAR <= year <= MAX_YEAR:
        return None
    try:
        return date(year, month, day)
    except ValueError:
        return None
