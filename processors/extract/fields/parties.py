"""The issuer of a receipt or invoice: its company name and postal address.

Both are read from the header — the first rows of the first page — with generic
rules, no list of vendors:

* **company**: the first header row carrying a legal form (``GmbH``, ``Sdn Bhd``,
  ``B.V.``, ``Inc.``…, recognised by ``cleanco``; see
  :func:`.normalise.has_legal_form`), joined with the row above when the legal-form
  row holds little else (a name wrapped over two lines: ``POPULAR BOOK`` /
  ``CO. (M) SDN BHD``); without a legal form, the first name-like row, joined with
  the rows below it when the name is printed one word per row in large type.
  Registration numbers in brackets after the name are dropped.
* **address**: the rows after the company that start with a number or a street word
  and run until a contact/tax/document row; after the row with the postcode only
  rows naming a country or a first-level region (ISO 3166-1/-2 names from
  ``pycountry``) or holding a street word still belong to it.
"""
from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from functools import lru_cache

from conveyor.processors.extract.fields.dates import dates_in_line
from conveyor.processors.extract.fields.evidence import Finding
from conveyor.processors.extract.fields.normalise import has_legal_form, legal_form_suffix, normalise_company

__all__ = ["find_company", "find_address", "find_customer", "clean_company"]

#: Rows examined from the top of the first page.
HEADER_ROWS = 20
#: Most words of a company name before its legal form; longer rows are sentences
#: ("All AWS Services are sold by Amazon Web Services, Inc.").
MAX_NAME_WORDS = 6
#: Most rows of an address.
MAX_ADDRESS_ROWS = 6

#: Contact, tax-id and document rows end an address. OCR glues words ("GS1Reg:", "GSTID:"),
#: so the ids that cannot start an address word only need a non-letter before them.
_CONTACT_OR_DOC = re.compile(
    r"(?<![^\W\d_])(?:gst|fax|e-?mail|www|tax|invoice|receipt|cashier|reg(?:\.|istration)?\s*(?:no|:))|"
    r"\bte[l1]\s*[:.]|"
    r"\b(?:tel|telp|fax|phone|telefon|tlf|hp|mobile|e-?mail|www|http|gst|vat|ust|mwst|tva|btw|tax|steuer|"
    r"invoice|receipt|rechnung|beleg|quittung|bon|kassenbon|facture|factuur|bill|cashier|kasse|date|datum|"
    r"time|uhrzeit|reg|registration|co\s*\.?\s*no|company\s+no|siret|siren|kvk|ust-?id|abn|npwp|table|order)\b"
    r"|@|\.com\b|https?:",
    re.IGNORECASE,
)
_PHONE_ONLY = re.compile(r"^[\s()+\d./-]{7,}$")
_BRACKETED = re.compile(r"^\s*[(\[].*[)\]]\s*$")
_TRAILING_REG = re.compile(r"\s*(?:[(\[][^)\]]*\d[^)\]]*[)\]]?|\b\d{4,}[- ]?[A-Z]\b)\s*$")
_NOT_NAME = re.compile(
    r"^\W*(?:tax\s+)?(?:invoice|rechnung|receipt|facture|factuur|quittung|kassenbon|bon|beleg|bill|"
    r"payment\s+receipt|credit\s+note|gutschrift|lieferschein|delivery\s+note|original|copy|kopie|"
    r"duplicate|page|seite|welcome|willkommen|thank)\b|@|www\.|https?:|"
    r"\b(?:tel|fax|phone|telefon|e-?mail|gst|vat|tax|date|datum|cashier)\b",
    re.IGNORECASE,
)
#: Street words. Digits count as word boundaries ("NO290", "Lot3"); the longer words also
#: match glued to the next word ("JALANAIRPANAS"), as OCR prints them.
_STREET_WORD = re.compile(
    r"(?<![^\W\d_])(?:(?:no|lot|unit|level|floor|blok|block|jln|tmn|lrg|st|rd|ave|ln|blvd|dr|str|weg|ring|rue|via|"
    r"suite|bldg|box)(?![^\W\d_])|(?:jalan|lorong|taman|street|road|avenue|lane|boulevard|drive|strasse|straße|"
    r"platz|allee|gasse|chemin|route|autoroute|avenida|calle|straat|laan|plein|building|bangunan|kompleks|"
    r"complex|postfach|p\.?\s*o\.?\s*box))",
    re.IGNORECASE,
)
#: A postcode: 4-6 digits that are not a house/lot number ("LOT P.T.2811", "No. 1234"),
#: or a UK-style postcode.
_POSTCODE = re.compile(
    r"(?<![\d/-])(?<!\b[a-z]\.)(?<!lot\s)(?<!no\s)(?<!no\.)(?<!unit\s)\d{4,6}(?![\d-])|\b[A-Z]{1,2}\d{1,2}[A-Z]?\s+\d[A-Z]{2}\b",
    re.IGNORECASE,
)


def clean_company(text: str) -> str:
    """Drop bracketed registration numbers and trailing punctuation from a name row
    (``"99 SPEED MART S/B (519537-X)"`` -> ``"99 SPEED MART S/B"``)."""
    previous = None
    text = " ".join(unicodedata.normalize("NFKC", text).split())
    while previous != text:
        previous = text
        text = _TRAILING_REG.sub("", text).strip(" ,;:-")
    return text


def _letters(text: str) -> int:
    return sum(ch.isalpha() for ch in text)


def _address_like(text: str) -> bool:
    """A street line ("LOT P.T.2811, JALAN ANGSA", "Detmolder Str.4") or a postcode
    line ("33102 Paderborn")."""
    return bool((_STREET_WORD.search(text) and re.search(r"\d", text)) or re.match(r"^\W*\d{4,}", text))


def _name_like(row: str) -> bool:
    """Could ``row`` be (part of) a company name?"""
    text = clean_company(row)
    letters, digits = _letters(text), sum(ch.isdigit() for ch in text)
    if letters < 3 or len(text) > 70 or digits > letters or text.endswith(":"):
        return False
    if _NOT_NAME.search(text) or _BRACKETED.match(row) or _PHONE_ONLY.match(row) or _CONTACT_OR_DOC.search(text):
        return False
    if dates_in_line(text, month_first=False) or _address_like(text):
        return False
    return True


def _core_tokens(text: str) -> int:
    """Words (2+ letters or digits) of a name row left after its legal form."""
    text = re.sub(r"[(（][^)）]*[)）]", " ", clean_company(text))
    core_length = len(normalise_company(text)) - len(legal_form_suffix(text))
    count = used = 0
    for token in text.split():
        if used >= core_length:
            break
        size = min(len(normalise_company(token)), core_length - used)
        used += len(normalise_company(token))
        count += size >= 2
    return count


def _strip_label(row: str) -> str:
    """``"Sprzedawca: ORLEN S.A."`` -> ``"ORLEN S.A."``: drop a one- or two-word label
    before a colon when a legal-form name follows."""
    m = re.match(r"^[^\W\d_]+(?:\s[^\W\d_]+)?\s*:\s*(.+)$", row)
    return m.group(1) if m and has_legal_form(m.group(1)) else row


def _continues(above: str, row: str, heights: Sequence[float] | None, index: int) -> bool:
    """Is ``above`` the first line of a name that ``row`` (holding little but the legal
    form) completes? It must be name-like, without digits or a legal form of its own,
    not end a sentence, and be set like ``row``: both in capitals, or (OCR rows) of
    similar print height."""
    if not _name_like(above) or has_legal_form(above) or re.search(r"\d", above) or above.rstrip().endswith((".", ":", "!", "?")):
        return False
    if heights is not None:
        ratio = heights[index - 1] / max(heights[index], 1e-6)
        return 0.7 <= ratio <= 1.45
    letters = [ch for ch in above + row if ch.isalpha()]
    return bool(letters) and all(ch.isupper() for ch in letters)


def find_company(rows: Sequence[str], heights: Sequence[float] | None = None) -> tuple[str | None, int]:
    """The issuing company's name and the index of its last row.

    Args:
        rows: Text rows of the first page, top to bottom.
        heights: Relative print height of each row (:attr:`conveyor.processors.extract.layout.LayoutRow.height`),
            when the rows come from OCR boxes.

    Returns:
        ``(name, last_row_index)``; ``(None, -1)`` when no row qualifies.
    """
    rows = [_strip_label(" ".join(row.split())) for row in rows[:HEADER_ROWS]]
    for index, row in enumerate(rows):
        if not has_legal_form(clean_company(row)) or not _name_like(row) or _core_tokens(row) > MAX_NAME_WORDS:
            continue
        name = clean_company(row)
        if _core_tokens(row) < 2 and index > 0 and _continues(rows[index - 1], row, heights, index):
            name = clean_company(rows[index - 1]) + " " + name
        return name, index
    for index, row in enumerate(rows):
        if not _name_like(row):
            continue
        name, last = clean_company(row), index
        if heights is not None and len(name.split()) <= 2:
            # A name set one word per row in large type ("THE" / "ROTI" / "MAN" / "BAKERY").
            while last + 1 < len(rows) and len(rows[last + 1].split()) <= 2 and _name_like(rows[last + 1]) \
                    and not re.search(r"\d", rows[last + 1]) and heights[last + 1] >= 0.7 * heights[index] \
                    and heights[index] >= 1.2 and len(name.split()) < 5:
                last += 1
                name += " " + clean_company(rows[last])
        return name, last
    return None, -1


@lru_cache(maxsize=1)
def _region_names() -> frozenset[str]:
    """Case-folded names of countries and first-level subdivisions (ISO 3166-1/-2, pycountry)."""
    import pycountry

    names = set()
    for country in pycountry.countries:
        for attr in ("name", "common_name", "official_name"):
            value = getattr(country, attr, None)
            if value:
                names.add(value.casefold())
    for sub in pycountry.subdivisions:
        if getattr(sub, "parent_code", None) is None:
            names.add(sub.name.casefold())
    return frozenset(names)


#: Shortest region name matched at the start of a longer word: OCR glues a region to the next
#: word ("SELANGORDARUL EHSAN"); shorter names ("Goa", "Bern") would match ordinary words.
MIN_GLUED_REGION = 6


def _names_region(row: str) -> bool:
    """Does ``row`` name a country or first-level region, alone or glued to the next word?"""
    words = re.findall(r"[^\W\d_]+(?:-[^\W\d_]+)*", row.casefold())
    regions = _region_names()
    if any(" ".join(words[i:j]) in regions for i in range(len(words)) for j in range(i + 1, min(i + 4, len(words)) + 1)):
        return True
    return any(w[:k] in regions for w in words for k in range(MIN_GLUED_REGION, len(w)))


def _stop_row(row: str) -> bool:
    return bool(_CONTACT_OR_DOC.search(row) or _PHONE_ONLY.match(row) or dates_in_line(row, month_first=False))


def find_address(rows: Sequence[str], after: int) -> str | None:
    """The issuer's postal address: header rows after row ``after`` (the company's last row).

    Rows before the address that are bracketed, registration/tax numbers or carry no
    digit and no street word are skipped; the address starts at the first row with a
    number or a street word (``Jalan``, ``Street``, ``Straße``, ``Lot``…), continues
    until a contact/tax/document/date row, and after the postcode row only takes
    rows naming a country or region or holding a street word. Rows are joined with a space.

    Returns:
        The address, or ``None`` when no row qualifies.
    """
    rows = [" ".join(row.split()) for row in rows[:HEADER_ROWS]]
    taken: list[str] = []
    seen_postcode = False
    for row in rows[after + 1:]:
        if not taken:
            if _BRACKETED.match(row) or _stop_row(row) or _letters(row) < 4:
                continue
            if not (re.match(r"^\W*\d", row) or _STREET_WORD.search(row) or re.search(r"\d\s*,", row)):
                continue
        elif _stop_row(row) or _BRACKETED.match(row) or (
                seen_postcode and not (_names_region(row) or _STREET_WORD.search(row))):
            break
        taken.append(row)
        seen_postcode = seen_postcode or bool(_POSTCODE.search(row))
        if len(taken) >= MAX_ADDRESS_ROWS:
            break
    return " ".join(taken) if taken else None


_CUSTOMER_LABEL = re.compile(
    r"\b(?:bill(?:ed)?\s*to|sold\s*to|invoice\s*to|billing\s*address|customer(?:\s*name)?|client|attn|"
    r"rechnungsempf[äa]nger|rechnungsadresse|kunde|factur[ée]\s*[àa]|adresse\s*de\s*facturation|"
    r"factuuradres|nabywca|odbiorca)\b\s*(?:address)?\s*:?", re.IGNORECASE)
#: Words of a caption, not of a name ("Nom de l'abonné", "Name and address").
_CAPTION_WORD = re.compile(r"\b(?:nom|name|naam|adresse|address|adres|abonn[ée]e?|subscriber)\b", re.IGNORECASE)
#: A label followed by these is a number or contact, not a name ("Customer No", "Kundennummer").
_CUSTOMER_NOT_NAME = re.compile(r"^\W*(?:no\b|nr\b|number|nummer|id\b|#|code|ref|service|support|e-?mail|phone)",
                                re.IGNORECASE)


def find_customer(rows: Sequence[str]) -> Finding | None:
    """The customer / bill-to party's name, or None.

    The name follows a customer label (Bill to, Sold to, Billing address, Customer, Client,
    ATTN, Rechnungsempfänger, Kunde, Facturé à, Nabywca …) on its line, else stands on the next
    non-empty row. A value that is an address, a number, a contact or a caption is not taken.

    Returns:
        :class:`conveyor.processors.extract.fields.evidence.Finding` with rule ``customer label``
        (same line) or ``customer label, next line``; or None.
    """
    for i, row in enumerate(rows):
        label = _CUSTOMER_LABEL.search(row)
        if not label:
            continue
        rest = row[label.end():].strip(" :-\t")
        if _CUSTOMER_NOT_NAME.match(rest) or _CUSTOMER_NOT_NAME.match(row[label.end() - 1:].strip(" :")):
            continue
        where, rule = (i, "customer label")
        if not rest:
            nxt = next((j for j in range(i + 1, min(i + 3, len(rows))) if rows[j].strip()), None)
            if nxt is None:
                continue
            rest, where, rule = rows[nxt].strip(), nxt, "customer label, next line"
        rest = re.sub(r"^(?:attn|z\.?\s*hd\.?)\s*:?\s*", "", rest, flags=re.IGNORECASE).strip(" ,;:")
        if (not _name_like(rest) or _address_like(rest) or _CONTACT_OR_DOC.search(rest) or _CAPTION_WORD.search(rest)
                or sum(c.isdigit() for c in rest) > 2 or len(rest.split()) > MAX_NAME_WORDS):
            continue
        return Finding(rest, where, rule)
    return None
