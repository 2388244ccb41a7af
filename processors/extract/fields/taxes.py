"""Tax on a document: the net and tax totals, and the issuer's VAT / tax id.

* Net and tax — a tax table row ``rate  tax  net  gross`` or ``tax + net = gross`` whose gross is
  the document's total (German receipts: ``A 7%  0,47  6,69  7,16``; an invoice's "Summe" row)
  gives both with rule ``sums to total``; otherwise a net line (Netto, Subtotal, excl. VAT, HT,
  untaxed …) and a tax line (MwSt, USt, VAT, GST, TVA, BTW …) whose amounts add up to the total
  give both with ``sums to total`` too; a labelled amount that does not add up has rule
  ``net label`` / ``tax label``. Tax is the smaller part (rates are below 100 %).
* Tax id — a token after a tax-id label (USt-IdNr, VAT, TVA, BTW, NIP, GSTIN, UID …) or any
  token shaped like an EU VAT number. Validated with python-stdnum where a validator exists (EU
  VAT numbers :mod:`stdnum.eu.vat`, Indian GSTIN, Polish NIP): rule ``checksum``; a token that
  fails its validator: ``invalid checksum`` (never emitted); a labelled token with no validator
  (German Steuernummer, Malaysian GST numbers): ``tax id label``. Ids on lines about the
  customer ("Ihre USt-IdNr", "client", "customer VAT") are skipped.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from decimal import Decimal

from stdnum.eu import vat as eu_vat
from stdnum.in_ import gstin
from stdnum.pl import nip

from conveyor.processors.extract.fields.amounts import amounts_in_line, format_amount
from conveyor.processors.extract.fields.evidence import Finding

_NET_LABEL = re.compile(
    r"\bnet(?:to)?\b|\bnetto\w*|sub\s*-?\s*total|zwischensumme|subtotaal|sous[\s-]*total|untaxed|"
    r"\bexcl(?:uding|\.)?\s*(?:vat|tax|gst|btw|mwst)|\bohne\s+(?:mwst|ust)|\bhors\s+taxes?\b|\bHT\b|\btotal\s+ht\b",
    re.IGNORECASE)
_TAX_LABEL = re.compile(
    r"\b(?:mwst|mw\.?st|ust|vat|gst|sst|tva|btw|iva|tax|taxes|steuer|umsatzsteuer|mehrwertsteuer|cgst|sgst|igst)\b",
    re.IGNORECASE)
_NOT_TAX_AMOUNT = re.compile(r"\b(?:incl(?:uding|\.)?|inkl\.?|ttc|brutto|gross)\b.*\btotal|\btotal\b.*\bincl",
                             re.IGNORECASE)
_TAX_ID_LABEL = re.compile(
    r"ust[-.\s]*id(?:[-.\s]*nr)?|umsatzsteuer[-\s]*id\w*|\buid\b|\bvat\s*(?:no|nr|number|reg\w*|id)?\b|"
    r"\bn[°º]?\s*(?:de\s+)?tva\b(?:\s*intra[-\s]*communautaire)?|\btva\s*(?:intra[-\s]*communautaire)?|\bbtw(?:[-\s]*(?:nr|nummer|id))?\b|\bp\.?\s*iva\b|\bnif\b|\bnip\b|"
    r"\bgstin\b|\bgst\s*(?:reg\w*|id|no)\b|st(?:euer)?[-.\s]*nr\b|steuernummer|\btax\s*id\b",
    re.IGNORECASE)
_CUSTOMERS_ID = re.compile(r"\b(?:ihre|your|votre|uw|customer|client|kunde\w*|acheteur|buyer|recipient)\b", re.IGNORECASE)
_ID_TOKEN = re.compile(r"[A-Z0-9][A-Z0-9./ -]{5,20}[A-Z0-9]")
_EU_VAT_SHAPE = re.compile(r"\b(?:AT|BE|BG|CY|CZ|DE|DK|EE|EL|ES|FI|FR|HR|HU|IE|IT|LT|LU|LV|MT|NL|PL|PT|RO|SE|SI|SK)"
                           r"[ ]?[0-9A-Z][0-9A-Z ]{7,13}\b")


def _rate_rows(lines: Sequence[str]) -> list[tuple[int, Decimal, Decimal, Decimal]]:
    """``(line, net, tax, gross)`` of each line with amounts ``x`` and ``y`` followed by ``x + y``."""
    rows = []
    for i, line in enumerate(lines):
        values = amounts_in_line(line)
        found = next(((x, y, z) for a, x in enumerate(values) for b, y in enumerate(values[a + 1:], a + 1)
                      for z in values[b + 1:] if x > 0 and y > 0 and x + y == z), None)
        if found:
            tax, net = sorted(found[:2])
            rows.append((i, net, tax, found[2]))
    return rows


def _sum_rows(lines: Sequence[str], total: Decimal) -> tuple[Finding, Finding] | None:
    rows = _rate_rows(lines)
    for i, net, tax, gross in rows:
        if gross == total:
            return Finding(format_amount(net), i, "sums to total"), Finding(format_amount(tax), i, "sums to total")
    if len(rows) >= 2 and sum(r[3] for r in rows) == total:
        net, tax = sum((r[1] for r in rows), Decimal(0)), sum((r[2] for r in rows), Decimal(0))
        return (Finding(format_amount(net), rows[0][0], "rate rows sum to total"),
                Finding(format_amount(tax), rows[0][0], "rate rows sum to total"))
    for i, line in enumerate(lines):  # "19,00 %  50,38  9,58" under a "Netto MwSt." header
        if not (_TAX_LABEL.search(line) or (i and _TAX_LABEL.search(lines[i - 1]))):
            continue
        values = amounts_in_line(line)
        pair = next(((x, y) for a, x in enumerate(values) for y in values[a + 1:] if x > 0 and y > 0 and x + y == total),
                    None)
        if pair:
            tax, net = sorted(pair)
            return Finding(format_amount(net), i, "sums to total"), Finding(format_amount(tax), i, "sums to total")
    return None


def _labelled(lines: Sequence[str], label: re.Pattern[str], unless: Sequence[re.Pattern[str]] = ()) -> list[tuple[int, Decimal]]:
    """``(line, last positive amount)`` of each line ``label`` matches and none of ``unless`` does."""
    out = []
    for i, line in enumerate(lines):
        if not label.search(line) or any(p.search(line) for p in unless):
            continue
        values = [v for v in amounts_in_line(line) if v > 0]
        if values:
            out.append((i, values[-1]))
    return out


def find_net_and_tax(lines: Sequence[str], total: str | None) -> tuple[Finding | None, Finding | None]:
    """The document's net (before tax) and tax totals, as decimal strings (see the module docstring).

    Args:
        lines: the document's lines.
        total: the document total the total finder chose (decimal string) or None.

    Returns:
        ``(net, tax)``, each a :class:`Finding` or None.
    """
    gross = Decimal(total) if total else None
    if gross is not None and gross > 0:
        rows = _sum_rows(lines, gross)
        if rows is not None:
            return rows
    nets = _labelled(lines, _NET_LABEL)
    taxes = _labelled(lines, _TAX_LABEL, unless=(_NET_LABEL, _NOT_TAX_AMOUNT))
    if gross is not None:
        for i, n in nets:
            for j, t in taxes:
                if i != j and t < n and n + t == gross:
                    return (Finding(format_amount(n), i, "sums to total"), Finding(format_amount(t), j, "sums to total"))
    net = Finding(format_amount(nets[-1][1]), nets[-1][0], "net label") if nets else None
    tax = Finding(format_amount(taxes[-1][1]), taxes[-1][0], "tax label") if taxes else None
    if gross is not None:
        net = net if net is not None and Decimal(net.value) < gross else None
        tax = tax if tax is not None and Decimal(tax.value) < gross else None
    return net, tax


def _validate(token: str) -> tuple[str, str] | None:
    """``(compact id, rule)`` for a token some validator knows, else None."""
    compact = re.sub(r"[\s./-]", "", token.upper())
    if sum(c.isdigit() for c in compact) < 7:
        return None  # every VAT / GST / NIP number has at least 7 digits; words are not ids
    if _EU_VAT_SHAPE.fullmatch(compact) or (compact[:2].isalpha() and compact[2:3].isdigit()):
        try:
            return eu_vat.validate(compact), "checksum"
        except Exception:  # noqa: BLE001 - stdnum raises its own ValidationError subclasses
            if _EU_VAT_SHAPE.fullmatch(compact):
                return compact, "invalid checksum"
    if len(compact) == 15 and gstin.is_valid(compact):
        return gstin.compact(compact), "checksum"
    if len(compact) == 10 and compact.isdigit() and nip.is_valid(compact):
        return nip.compact(compact), "checksum"
    return None


def find_tax_id(lines: Sequence[str]) -> Finding | None:
    """The issuer's VAT / tax id, compact (no spaces, dots or dashes; a German Steuernummer keeps
    its slashes), or None. See the module docstring for the rules."""
    fallback: Finding | None = None
    for i, line in enumerate(lines):
        if _CUSTOMERS_ID.search(line):
            continue
        label = _TAX_ID_LABEL.search(line)
        rest = line[label.end():] if label else line
        if label and not re.search(r"\d", rest) and i + 1 < len(lines):
            rest = lines[i + 1]  # "GSTIN" over its value
        tokens = [m.group(0) for m in _EU_VAT_SHAPE.finditer(rest.upper())]
        if label:
            m = _ID_TOKEN.search(rest.upper())
            tokens = ([m.group(0), m.group(0).split(" ")[0]] if m else []) + tokens
        for token in tokens:
            checked = _validate(token.strip(" .-/"))
            if checked and checked[1] == "checksum":
                return Finding(checked[0], i, "checksum")
            if checked and fallback is None and label:
                fallback = Finding(checked[0], i, checked[1])
        if label and fallback is None and tokens and sum(c.isdigit() for c in tokens[0]) >= 6:
            fallback = Finding(re.sub(r"[\s.-]", "", tokens[0].strip()), i, "tax id label")
    return fallback
