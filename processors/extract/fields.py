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
"""
from __future__ import annotations

import re
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Iterable

# --------------------------------------------------------------------------- dates

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
_NUMERIC_DATE = re.compile(r"(?<![\d.,/-])(\d{1,2})([./-])(\d{1,2})\2(\d{4}|\d{2})" + _DATE_END)
_DAY_MONTH_YEAR = re.compile(
    rf"(?<![\w])(\d{{1,2}})(?:st|nd|rd|th|er)?\.?[\s-]*(?:de\s+)?({_MONTH_RE})\.?[\s,-]*(?:de\s+)?(\d{{4}}|(?<=-)\d{{2}}){_DATE_END}",
    re.IGNORECASE,
)
_MONTH_DAY_YEAR = re.compile(
    rf"(?<![\w])({_MONTH_RE})\.?\s+(\d{{1,2}})(?:st|nd|rd|th)?\s*,?\s*(\d{{4}}){_DATE_END}", re.IGNORECASE
)
_YEAR_MONTH_DAY = re.compile(
    rf"(?<![\w])(\d{{4}})[-\s.]({_MONTH_RE})\.?[-\s.](\d{{1,2}})(?!\d)", re.IGNORECASE
)
_TIME = re.compile(r"(?<!\d)\d{1,2}:\d{2}(?::\d{2})?(?!\d)")

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

# ------------------------------------------------------------------------- amounts

_AMOUNT = re.compile(
    r"(?<![\d.,'])(-\s?)?("
    r"[1-9]\d{0,2}(?:([.,'\u202f\u00a0])\d{3})(?:\3\d{3})*(?:[.,]\d{1,2})?"  # grouped thousands
    r"|\d+(?:[.,]\d{1,2})?"  # plain
    r")(?![\d]|[.,]\d|\s?%)"
)
_PERCENT = re.compile(r"\d+(?:[.,]\d+)?\s?%")

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
_DOC_NUMBER_VALUE = re.compile(r"\s*[:.#]?\s*#?\s*([A-Za-z0-9][A-Za-z0-9/_\-.]*)")
_LEADING_INVOICE = re.compile(r"^\s*(?:tax\s+)?(?:invoice|rechnung|facture|factuur)\s+([A-Za-z0-9][A-Za-z0-9/_\-.]*)", re.IGNORECASE)

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


# --------------------------------------------------------------------------- dates

def find_dates(lines: Iterable[str], *, month_first: bool | None = None) -> list[str]:
    """All plausible dates as ISO strings, the most likely document date first.

    Ranking: dates on a line naming the invoice/receipt date, then lines with a
    generic date label, then unlabelled dates, then due/order/period dates;
    ties keep reading order. A label alone on the previous line counts (a
    ``"Invoice Date:"`` line followed by a ``"03/20/2023"`` line).

    Args:
        lines: Text lines in reading order.
        month_first: How to read ambiguous ``a/b/yyyy`` dates (both parts <= 12):
            ``True`` = US month/day; ``None``/``False`` = day/month.
    """
    found: list[tuple[int, int, str]] = []
    previous = ""
    for position, line in enumerate(lines):
        for start, iso, rest in _dates_in_line(line, month_first=bool(month_first)):
            context = rest if re.search(r"[^\W\d_]{2,}", rest) else previous + " " + rest
            found.append((_date_rank(context), position * 1000 + start, iso))
        previous = line
    seen: set[str] = set()
    ordered = []
    for _rank, _pos, iso in sorted(found):
        if iso not in seen:
            seen.add(iso)
            ordered.append(iso)
    return ordered


def _date_rank(context: str) -> int:
    if _OTHER_DATE_LABEL.search(context) and not re.search(r"invoice\s+date|rechnungsdatum|factuurdatum|date\s+de\s+facture", context, re.IGNORECASE):
        return 3
    if _ISSUE_DATE_LABEL.search(context):
        return 0
    if _DATE_LABEL.search(context):
        return 1
    return 2


def _dates_in_line(line: str, *, month_first: bool) -> list[tuple[int, str, str]]:
    """``(start, iso, line_without_dates)`` for each valid date in ``line``."""
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
    for m in _DAY_MONTH_YEAR.finditer(line):
        add(m, _make_date(_year(m.group(3)), _MONTH_BY_NAME[m.group(2).lower()], int(m.group(1))))
    for m in _YEAR_MONTH_DAY.finditer(line):
        add(m, _make_date(int(m.group(1)), _MONTH_BY_NAME[m.group(2).lower()], int(m.group(3))))
    for m in _MONTH_DAY_YEAR.finditer(line):
        add(m, _make_date(int(m.group(3)), _MONTH_BY_NAME[m.group(1).lower()], int(m.group(2))))
    for m in _NUMERIC_DATE.finditer(line):
        first, sep, second, year = int(m.group(1)), m.group(2), int(m.group(3)), _year(m.group(4))
        if first > 12 or (second <= 12 and not (month_first and sep == "/")):
            day, month = first, second
        else:
            day, month = second, first
        add(m, _make_date(year, month, day))

    rest = line
    for start, end, _ in sorted(hits, reverse=True):
        rest = rest[:start] + " " + rest[end:]
    return [(start, value.isoformat(), rest) for start, _end, value in sorted(hits)]


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


def _mask_dates_and_times(line: str) -> str:
    """Blank out dates, times and percentages so their digits are not amounts."""
    for _start, _iso, rest in _dates_in_line(line, month_first=False)[:1]:
        line = rest
    line = _TIME.sub(" ", line)
    return _PERCENT.sub(" ", line)


# ------------------------------------------------------------------------- amounts

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
    found = _dates_in_line(token, month_first=False)
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
    if _dates_in_line(line, month_first=False):
        return False
    return True
