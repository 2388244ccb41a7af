"""Normal forms of key-field values, the way people compare them.

* dates -> ISO 8601 ``YYYY-MM-DD``, parsed by ``dateparser`` (scrapinghub/dateparser:
  200+ locales, numeric and month-name formats, 2-digit years);
* amounts -> :class:`~decimal.Decimal` plus an ISO 4217 currency, parsed by
  ``price-parser`` (scrapinghub/price-parser: any thousands/decimal separator
  convention, currency symbols and codes); codes are checked against the ISO 4217
  list of Babel (CLDR data);
* company names -> Unicode NFKC, case-folded, punctuation to spaces, whitespace collapsed;
  legal forms (``Inc.``, ``B.V.``, ``Sdn Bhd``…) are recognised with ``cleanco``'s
  worldwide term list;
* addresses -> NFKC, case-folded letters and digits only (line breaks, commas and
  spacing differ between a printed address and how people type it).
"""
from __future__ import annotations

import re
import unicodedata
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dateparser.date import DateDataParser

__all__ = [
    "DATE_LANGUAGES",
    "normalise_date",
    "normalise_amount",
    "currency_code",
    "normalise_company",
    "normalise_address",
    "has_legal_form",
    "legal_form_suffix",
    "strip_legal_form",
]

#: Languages ``dateparser`` tries (month names): the languages of the total labels
#: (:mod:`.amounts`) plus Spanish, Italian, Polish and Malay. Restricting them keeps
#: parsing fast (~2 ms) and avoids exotic readings of short tokens.
DATE_LANGUAGES = ("en", "de", "fr", "nl", "es", "it", "pl", "ms")

_DATEPARSER_CACHE: dict[bool, DateDataParser] = {}


def _date_parser(day_first: bool) -> DateDataParser:
    parser = _DATEPARSER_CACHE.get(day_first)
    if parser is None:
        from dateparser.date import DateDataParser

        parser = DateDataParser(
            languages=list(DATE_LANGUAGES),
            settings={
                "DATE_ORDER": "DMY" if day_first else "MDY",
                "REQUIRE_PARTS": ["day", "month", "year"],
                "PREFER_DAY_OF_MONTH": "first",
                "PARSERS": ["absolute-time"],
            },
        )
        _DATEPARSER_CACHE[day_first] = parser
    return parser


@lru_cache(maxsize=4096)
def normalise_date(text: str, *, day_first: bool = True) -> str | None:
    """A written date as ISO 8601 (``"24 MAR 18"`` -> ``"2018-03-24"``), or ``None``.

    Args:
        text: A date in any common form: ``17/01/2018``, ``18-10-17``, ``02/JAN/2017``,
            ``3. März 2020``, ``March 3, 2020``, ``2014-08-03``…
        day_first: How to read ambiguous numeric dates (``04/05/2021``): ``True``
            day/month (most of the world), ``False`` month/day (US). Year-first
            dates are always year-month-day.

    Returns:
        ``"YYYY-MM-DD"``; ``None`` when ``text`` has no complete date (day, month and
        year are required) or the year is outside 1970..2100.
    """
    text = " ".join(str(text).split())
    if not text or not re.search(r"\d", text):
        return None
    try:
        parsed = _date_parser(day_first).get_date_data(text)
    except Exception:  # noqa: BLE001 - dateparser raises assorted errors on junk
        return None
    value = parsed.date_obj
    if value is None or not 1970 <= value.year <= 2100:
        return None
    return value.date().isoformat()


@lru_cache(maxsize=1)
def _iso_currencies() -> frozenset[str]:
    from babel.numbers import list_currencies

    return frozenset(list_currencies())


#: Symbols and local abbreviations -> ISO 4217. ``$`` alone is read as USD.
_SYMBOLS = {
    "€": "EUR", "eur": "EUR", "euro": "EUR", "euros": "EUR", "£": "GBP", "₹": "INR", "rs": "INR", "rs.": "INR",
    "¥": "JPY", "rm": "MYR", "zł": "PLN", "zl": "PLN", "$": "USD", "us$": "USD", "c$": "CAD", "ca$": "CAD",
    "a$": "AUD", "au$": "AUD", "s$": "SGD", "hk$": "HKD", "fr.": "CHF", "kč": "CZK", "₺": "TRY", "₽": "RUB",
    "₩": "KRW", "₪": "ILS", "฿": "THB", "₫": "VND", "₱": "PHP", "r$": "BRL",
}


def currency_code(symbol: str | None) -> str | None:
    """ISO 4217 code of a currency symbol or code (``"€"`` -> ``"EUR"``, ``"RM"`` -> ``"MYR"``,
    ``"chf"`` -> ``"CHF"``); ``None`` when unknown. Codes are validated against Babel's
    ISO 4217 list."""
    if not symbol:
        return None
    key = symbol.strip().casefold()
    if key in _SYMBOLS:
        return _SYMBOLS[key]
    code = key.upper()
    return code if len(code) == 3 and code in _iso_currencies() else None


def normalise_amount(text: str | float | int | Decimal | None) -> tuple[Decimal | None, str | None]:
    """A written amount as ``(Decimal, ISO currency | None)``.

    ``"RM5.00"`` -> ``(Decimal("5.00"), "MYR")``; ``"1.234,56 €"`` -> ``(1234.56, "EUR")``;
    ``"$9.20"`` -> ``(9.20, "USD")``; numbers pass through (``4.11`` -> ``4.11``).
    The value is quantised to cents. Returns ``(None, None)`` when there is no number.
    """
    if text is None:
        return None, None
    if isinstance(text, (int, float, Decimal)) and not isinstance(text, bool):
        return Decimal(str(text)).quantize(Decimal("0.01")), None
    from price_parser import Price

    price = Price.fromstring(str(text))
    if price.amount is None:
        return None, currency_code(price.currency)
    try:
        value = Decimal(price.amount).quantize(Decimal("0.01"))
    except InvalidOperation:
        return None, None
    return value, currency_code(price.currency)


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKC", str(text)).casefold()


def normalise_company(text: str | None) -> str:
    """Company name for comparison: NFKC, case-folded, letters and digits only
    (``"MR. D.I.Y. SDN BHD"`` -> ``"mrdiysdnbhd"``). Spacing and punctuation are not
    compared: people type them inconsistently and OCR drops spaces between words."""
    if not text:
        return ""
    return re.sub(r"[\W_]+", "", _fold(text))


def normalise_address(text: str | None) -> str:
    """Address for comparison: NFKC, case-folded, letters and digits only
    (``"NO.53, JALAN BESAR,"`` and ``"NO. 53 JALAN BESAR"`` both -> ``"no53jalanbesar"``)."""
    if not text:
        return ""
    return re.sub(r"[\W_]+", "", _fold(text))


#: Two-letter cleanco terms kept: widely used legal forms. Other one-word terms of
#: fewer than three letters (``at``, ``as``, ``uk``, ``ca``…) are ordinary words or
#: abbreviations on documents far more often than legal forms, and so are ``vat`` and ``teo``.
_SHORT_LEGAL_FORMS = {"ag", "kg", "bv", "nv", "sa", "ab", "oy", "co", "se"}
_NOT_LEGAL_FORMS = {"vat", "teo", "private"}


@lru_cache(maxsize=1)
def _legal_terms() -> list[tuple[int, list[str]]]:
    """cleanco's default terms as ``(token count, tokens)``, short ambiguous ones left out."""
    from cleanco import prepare_default_terms

    return [
        (size, tokens) for size, tokens in prepare_default_terms()
        if size > 1 or (len(tokens[0]) >= 3 and tokens[0] not in _NOT_LEGAL_FORMS) or tokens[0] in _SHORT_LEGAL_FORMS
    ]


def strip_legal_form(name: str) -> str:
    """``name`` without its trailing legal form(s), by ``cleanco.custom_basename``
    with cleanco's default terms less short ambiguous ones
    (``"Amazon Web Services, Inc."`` -> ``"Amazon Web Services"``)."""
    from cleanco.clean import custom_basename

    basename: str = custom_basename(name, _legal_terms(), prefix=False, middle=False, suffix=True)
    return basename


@lru_cache(maxsize=1)
def _glued_legal_forms() -> tuple[str, ...]:
    """Legal forms as OCR prints them without spaces (``"sdnbhd"``, ``"gmbh"``), 4+ characters."""
    forms = {"".join(tokens).replace(".", "") for _size, tokens in _legal_terms()}
    return tuple(sorted((form for form in forms if len(form) >= 4 and form.isalnum()), key=len, reverse=True))


@lru_cache(maxsize=16384)
def legal_form_suffix(name: str) -> str:
    """The trailing legal form of ``name`` in letters and digits (``"sdnbhd"``), or ``""``.

    Recognised: cleanco's terms as separate words (``"Sdn. Bhd."``, ``"GmbH"``, ``"B.V."``),
    the same terms glued to the name by OCR (``"INTERNATIONALSDNBHD"``, 4+ letters), and
    the Malaysian abbreviations ``S/B`` and ``SB`` of Sdn Bhd."""
    core = re.sub(r"\s*[(（][^)）]*\d[^)）]*[)）]?\s*$", "", name).strip(" .,")
    m = re.search(r"\b(?:s/b|sb)$", core, re.IGNORECASE)
    if m:
        return normalise_company(m.group(0))
    if len(core.split()) >= 2:
        stripped = normalise_company(strip_legal_form(core))
        full = normalise_company(core)
        if stripped != full and full.startswith(stripped):
            return full[len(stripped):]
    full = normalise_company(core)
    for form in _glued_legal_forms():
        if full.endswith(form) and len(full) >= len(form) + 4:
            return form
    return ""


def has_legal_form(name: str) -> bool:
    """True when ``name`` ends in a legal form (see :func:`legal_form_suffix`)."""
    return bool(legal_form_suffix(name))


@lru_cache(maxsize=1)
def _repairable_legal_forms() -> dict[int, dict[str, str]]:
    """Legal forms of 5+ letters and digits (squeezed, as OCR may glue them) → printed form
    (``"sdnbhd"`` → ``"sdn bhd"``), by length: long enough that a near match is a misread, not a word."""
    forms: dict[int, dict[str, str]] = {}
    for _size, tokens in _legal_terms():
        squeezed = "".join(tokens).replace(".", "")
        if len(squeezed) >= 5 and squeezed.isalnum():
            forms.setdefault(len(squeezed), {}).setdefault(squeezed, " ".join(tokens))
    return forms


@lru_cache(maxsize=8192)
def repair_legal_form(name: str) -> str | None:
    """``name`` with a misread legal form at its end repaired, or None when there is none to repair.

    OCR misreads one or two characters of a legal form (``"SDN 3HD"``, ``"SON BHD"``, ``"SIN BHI"``):
    when the last letters and digits of ``name`` are within one edit (two for forms of 6+
    characters; Levenshtein distance, RapidFuzz) of a legal form of 5+ characters longer than the
    one it ends in (``"SON BHD"`` ends in ``"BHD"``), they are replaced by it, in the name's case:
    ``"WAHIN HARDWARE SIN BHI"`` → ``"WAHIN HARDWARE SDN BHD"``. At least three characters of the
    name must remain before it.
    """
    from rapidfuzz import process
    from rapidfuzz.distance import Levenshtein

    if not name:
        return None
    present = len(legal_form_suffix(name))
    positions = [i for i, ch in enumerate(name) if ch.isalnum()]
    squeezed = "".join(name[i] for i in positions).casefold()
    best: tuple[int, int, str, int] | None = None
    for length, forms in _repairable_legal_forms().items():
        if length <= present:
            continue
        allowed = 2 if length >= 6 else 1
        for size in (length - 1, length, length + 1):
            if size < 4 or size > len(squeezed) - 3:
                continue
            hit = process.extractOne(squeezed[-size:], list(forms), scorer=Levenshtein.distance, score_cutoff=allowed)
            if hit is not None and (best is None or (hit[1], -length) < best[:2]):
                printed = forms[hit[0]]
                best = (int(hit[1]), -length, printed.upper() if name.isupper() else printed.title(), size)
    if best is None:
        return None
    start = positions[-best[3]]
    return name[:start].rstrip(" ,.-") + " " + best[2]
