"""Candidates for each key field: every value a document could mean, with what the rules say of it.

A candidate is a value read from one row (a date, an amount) or from a run of consecutive rows
(a vendor name, an address), with field-specific evidence (``signals``: numbers, named) that the
model reads beside the generic row features of :mod:`.features`. Generators never decide; the
model ranks their candidates (:mod:`.model`). The rules' own choice (:mod:`..fields`) is one of the
signals (``rule_pick``), so the model learns where to trust the rules.

Per field:

* ``dates`` (the document date) — every date on every row (:func:`..fields.dates.dates_in_line`),
  with its label rank (issue-date label, a date label, none, another date's label), a clock time
  beside it, how often it appears and where it lies among the document's dates;
* ``total_amount`` — every positive amount, with its row's kind (total, sub-total, payment, change,
  tax…; :mod:`..fields.totals`), the rules' score for it, whether it equals what was paid, its rank;
* ``vendor`` — runs of 1-3 rows among the first :data:`HEADER_ROWS` rows of the first page, with
  legal form, name-likeness, address-likeness and the rules' company;
* ``vendor_address`` — runs of 1-:data:`MAX_ADDRESS_ROWS` rows there, with street words,
  postcodes, regions, contact rows inside and their distance from the rules' company;
* ``effective_date`` (contracts) — every date of the preamble and of the signature block, with the
  words around it ("effective", "as of", "made", "dated", "in witness");
* ``parties`` (contracts, several values) — organisation names ending in a legal form and person
  names in the preamble, with "between … and …", a defined alias after them ("the Company") and how
  often they recur.

Why one module of ~440 lines: the six generators share the per-document view (:class:`_Doc`:
rows, the rules' fields, the date order) and the :data:`GENERATORS` / :data:`SIGNALS` tables a
new field is added to; split by field, each addition would touch two files and the shared view a
third.
"""
from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from statistics import median
from typing import Any

from conveyor.processors.extract.fields import month_first_dates, parties, totals
from conveyor.processors.extract.fields.amounts import amounts_in_line, format_amount
from conveyor.processors.extract.fields.currency import find_currency
from conveyor.processors.extract.fields.dates import (
    _date_rank,
    _followed_by_time,
    dates_in_line,
)
from conveyor.processors.extract.fields.normalise import (
    has_legal_form,
    normalise_company,
    repair_legal_form,
)
from conveyor.processors.extract.kie.rows import DocRow

__all__ = ["Candidate", "GENERATORS", "HEADER_ROWS", "MAX_ADDRESS_ROWS", "MULTI_VALUED", "SIGNALS", "candidates"]

#: Rows of the first page where the vendor and its address are looked for.
HEADER_ROWS = 16
#: Most rows of a vendor name and of an address candidate.
MAX_NAME_ROWS = 3
MAX_ADDRESS_ROWS = 5
#: Most candidates of one field per document (the rest are dropped in document order).
MAX_CANDIDATES = 400


@dataclass(frozen=True)
class Candidate:
    """One possible value of ``field``.

    Attributes:
        field: the KeyFields field.
        value: the value as the field holds it (ISO date, decimal string, cleaned text).
        rows: indices (into the document's rows) of the rows it was read from, top to bottom.
        context: the text of those rows without the value (the label beside an amount or a date).
        signals: field-specific evidence, named as in :data:`SIGNALS`.
    """

    field: str
    value: str
    rows: tuple[int, ...]
    context: str
    signals: dict[str, float] = dataclasses.field(default_factory=dict)  # the attribute `field` shadows the function


@dataclass
class _Doc:
    """What several generators need, computed once per document."""

    rows: Sequence[DocRow]
    rule_fields: dict[str, Any]
    lines: list[str]
    month_first: bool
    first_page: list[int]


def _doc(rows: Sequence[DocRow], rule_fields: dict[str, Any]) -> _Doc:
    lines = [r.text for r in rows]
    first_page = [i for i, r in enumerate(rows) if r.page == 0]
    return _Doc(rows, rule_fields, lines, month_first_dates(lines, find_currency(lines)), first_page)


# ------------------------------------------------------------------------------------------ dates
DATE_SIGNALS = ("rule_pick", "rule_rank", "label_rank", "with_time", "occurrences", "distinct", "is_earliest",
                "is_latest", "year_offset", "position_in_row", "dates_on_row", "ambiguous")


def _date_candidates(doc: _Doc) -> list[Candidate]:
    found = []
    previous = ""
    for index, line in enumerate(doc.lines):
        hits = dates_in_line(line, month_first=doc.month_first)
        for start, iso, rest in hits:
            context = rest if re.search(r"[^\W\d_]{2,}", rest) else previous + " " + rest
            found.append((index, start, iso, rest, _date_rank(context), _followed_by_time(line, start), len(hits)))
        if line.strip():
            previous = line
    if not found:
        return []
    isos = [f[2] for f in found]
    distinct = sorted(set(isos))
    years = [int(iso[:4]) for iso in isos]
    rule_dates = list(doc.rule_fields.get("dates") or [])
    out = []
    for index, start, iso, rest, rank, with_time, on_row in found:
        day, month = int(iso[8:]), int(iso[5:7])
        out.append(Candidate("dates", iso, (index,), rest, {
            "rule_pick": float(bool(rule_dates) and rule_dates[0] == iso),
            "rule_rank": float(rule_dates.index(iso)) if iso in rule_dates else 9.0,
            "label_rank": float(rank), "with_time": float(with_time), "occurrences": float(isos.count(iso)),
            "distinct": float(len(distinct)), "is_earliest": float(iso == distinct[0]),
            "is_latest": float(iso == distinct[-1]), "year_offset": float(abs(int(iso[:4]) - median(years))),
            "position_in_row": start / max(len(doc.lines[index]), 1), "dates_on_row": float(on_row),
            "ambiguous": float(day <= 12 and month <= 12 and day != month),
        }))
    return out


# ---------------------------------------------------------------------------------------- amounts
ROW_KINDS = ("strong", "weak", "subtotal", "payment", "change", "excluded")
TOTAL_SIGNALS = ("rule_pick", "rule_score", "in_paid", "rank_desc", "is_max", "occurrences", "last_on_row",
                 "cents", "log_value", "amounts_on_row", "right_aligned", "after_rounding") + tuple(
    f"kind_{k}" for k in ROW_KINDS + ("none",))


def _total_candidates(doc: _Doc) -> list[Candidate]:
    repaired = [totals._repair_labels(line) for line in doc.lines]
    kinds = [totals._row_kind(line) for line in repaired]
    per_row = [[a for a in amounts_in_line(line) if 0 < a < 10_000_000] for line in repaired]
    values = [v[-1] if v else None for v in per_row]
    paid = totals._paid_amounts(kinds, values)
    scores: dict[tuple[int, Decimal], float] = {}
    for page in sorted({r.page for r in doc.rows}):
        idx = [i for i, r in enumerate(doc.rows) if r.page == page]
        for c in totals.total_candidates([doc.lines[i] for i in idx]):
            key = (idx[c.row], c.value)
            scores[key] = max(scores.get(key, 0.0), c.score)
    everything = sorted({a for row in per_row for a in row}, reverse=True)
    flat = [a for row in per_row for a in row]
    rule_total = doc.rule_fields.get("total_amount")
    right_edges = sorted(doc.rows[i].right for i, row in enumerate(per_row) if row)
    column = right_edges[len(right_edges) // 2] if right_edges else 1.0
    out = []
    for index, amounts in enumerate(per_row):
        row = doc.rows[index]
        rounding_before = any(totals._ROUNDING.search(repaired[j]) for j in range(max(0, index - 3), index))
        for position, amount in enumerate(amounts):
            value = format_amount(amount)
            signals = {
                "rule_pick": float(rule_total is not None and Decimal(rule_total) == amount),
                "rule_score": scores.get((index, amount), 0.0), "in_paid": float(amount in paid),
                "rank_desc": float(min(everything.index(amount), 20)), "is_max": float(amount == everything[0]),
                "occurrences": float(flat.count(amount)), "last_on_row": float(position == len(amounts) - 1),
                "cents": float(amount.as_tuple().exponent == -2), "log_value": math.log10(float(amount) + 1.0),
                "amounts_on_row": float(len(amounts)),
                "right_aligned": float(row.geometry and row.right >= column - 0.05),
                "after_rounding": float(rounding_before),
            }
            for kind in ROW_KINDS + ("none",):
                signals[f"kind_{kind}"] = float((kinds[index] or "none") == kind)
            out.append(Candidate("total_amount", value, (index,), repaired[index], signals))
    return out


# ------------------------------------------------------------------------------------ header spans
VENDOR_SIGNALS = ("rule_pick", "rule_overlap", "legal_form", "name_like", "address_like", "contact", "region",
                  "start", "first_name_like", "digits", "label_stripped", "repaired")
#: A one- to three-word label before a colon at the start of a name row ("Owned by:", "Dimiliki:").
_NAME_LABEL = re.compile(r"^\W*(?:[^\W\d_]+[\s.]*){1,3}[:：]\s*(?=\S)")


@lru_cache(maxsize=8192)
def name_value(text: str) -> tuple[str, bool, bool]:
    """``(name, label stripped, legal form repaired)`` of a header span: registration numbers in
    brackets dropped (:func:`..fields.parties.clean_company`), a label before a colon dropped
    ("Owned By: CHEF LEE SDN BHD"), a misread legal form repaired (:func:`..fields.normalise.repair_legal_form`)."""
    value = parties.clean_company(text)
    stripped = _NAME_LABEL.sub("", value)
    label = stripped != value and sum(ch.isalpha() for ch in stripped) >= 3
    value = parties.clean_company(stripped) if label else value
    repaired = repair_legal_form(value)
    return (repaired or value), label, repaired is not None
ADDRESS_SIGNALS = ("rule_pick", "rule_overlap", "postcode", "street_words", "region", "contact", "commas",
                   "after_vendor", "starts_with_digit", "ends_with_region", "digits", "name_like_first")


#: Row tests of :mod:`..fields.parties`, memoised: a row is tested once however many spans hold it.
_name_like = lru_cache(maxsize=8192)(parties._name_like)
_address_like = lru_cache(maxsize=8192)(parties._address_like)
_region = lru_cache(maxsize=8192)(parties._names_region)
_stop_row = lru_cache(maxsize=8192)(parties._stop_row)


def _contact(row: str) -> bool:
    return bool(parties._CONTACT_OR_DOC.search(row))


def _header(doc: _Doc) -> list[int]:
    """Indices of the non-empty header rows of the first page."""
    return [i for i in doc.first_page if doc.lines[i].strip()][:HEADER_ROWS]


def _spans(header: list[int], longest: int) -> Iterator[tuple[int, tuple[int, ...]]]:
    """``(position in header, row indices)`` of every run of 1..``longest`` consecutive header rows."""
    for k in range(len(header)):
        for n in range(1, min(longest, len(header) - k) + 1):
            yield k, tuple(header[k:k + n])


def _rule_rows(doc: _Doc, header: list[int], value: str | None) -> set[int]:
    """Header rows whose text is part of the rules' value (for the overlap signal)."""
    target = normalise_company(value)
    return {i for i in header if target and normalise_company(doc.lines[i]) and normalise_company(doc.lines[i]) in target}


def _vendor_candidates(doc: _Doc) -> list[Candidate]:
    header = _header(doc)
    rule_vendor = normalise_company(doc.rule_fields.get("vendor"))
    rule_rows = _rule_rows(doc, header, doc.rule_fields.get("vendor"))
    name_like = {i: _name_like(doc.lines[i]) for i in header}
    first_name_like = next((i for i in header if name_like[i]), None)
    out = []
    for k, span in _spans(header, MAX_NAME_ROWS):
        n = len(span)
        value, label, repaired = name_value(" ".join(doc.lines[i] for i in span))
        if not re.search(r"[^\W\d_]{2,}", value):
            continue
        out.append(Candidate("vendor", value, span, "", {
            "rule_pick": float(bool(rule_vendor) and normalise_company(value) == rule_vendor),
            "rule_overlap": len(rule_rows & set(span)) / n, "legal_form": float(has_legal_form(value)),
            "name_like": sum(name_like[i] for i in span) / n,
            "address_like": float(any(_address_like(doc.lines[i]) for i in span)),
            "contact": float(any(_contact(doc.lines[i]) for i in span)),
            "region": float(any(_region(doc.lines[i]) for i in span)),
            "start": float(k), "first_name_like": float(span[0] == first_name_like),
            "digits": float(sum(ch.isdigit() for ch in value)),
            "label_stripped": float(label), "repaired": float(repaired),
        }))
    return out


def _address_candidates(doc: _Doc) -> list[Candidate]:
    header = _header(doc)
    rule_address = doc.rule_fields.get("vendor_address")
    rule_rows = _rule_rows(doc, header, rule_address)
    first_lines = [doc.lines[i] for i in doc.first_page]
    heights = [doc.rows[i].height for i in doc.first_page] if doc.rows and doc.rows[0].geometry else None
    vendor_last = parties.find_company(first_lines, heights)[1]
    rule_key = normalise_company(rule_address)
    out = []
    for _k, span in _spans(header, MAX_ADDRESS_ROWS):
        rows = [doc.lines[i] for i in span]
        value = " ".join(rows)
        if sum(ch.isalnum() for ch in value) < 6:
            continue
        out.append(Candidate("vendor_address", value, span, "", {
            "rule_pick": float(bool(rule_key) and normalise_company(value) == rule_key),
            "rule_overlap": len(rule_rows & set(span)) / len(span),
            "postcode": float(any(parties._POSTCODE.search(r) for r in rows)),
            "street_words": float(sum(bool(parties._STREET_WORD.search(r)) for r in rows)),
            "region": float(sum(_region(r) for r in rows)),
            "contact": float(sum(bool(_stop_row(r)) for r in rows)),
            "commas": float(value.count(",")),
            "after_vendor": float(doc.rows[span[0]].line - vendor_last) if vendor_last >= 0 else -99.0,
            "starts_with_digit": float(bool(re.match(r"^\W*\d", rows[0]))),
            "ends_with_region": float(_region(rows[-1]) or bool(parties._POSTCODE.search(rows[-1]))),
            "digits": float(sum(ch.isdigit() for ch in value)),
            "name_like_first": float(_name_like(rows[0])),
        }))
    return out


# --------------------------------------------------------------------------------------- contracts
#: Rows of a contract read for its parties (the preamble) and, with the last rows (the signature
#: block), for its effective date.
PREAMBLE_ROWS = 80
CLOSING_ROWS = 60
EFFECTIVE_SIGNALS = ("effective", "as_of", "made", "dated", "witness", "position", "occurrences", "first_date",
                     "in_preamble", "in_closing")
_EFFECTIVE = re.compile(r"effective", re.IGNORECASE)
_AS_OF = re.compile(r"\bas\s+of\b", re.IGNORECASE)
_MADE = re.compile(r"\b(?:made|entered|executed|signed)\b", re.IGNORECASE)
_DATED = re.compile(r"\bdated?\b", re.IGNORECASE)
_WITNESS = re.compile(r"witness|signature|/s/", re.IGNORECASE)


def _contract_rows(doc: _Doc) -> list[int]:
    n = len(doc.lines)
    keep = list(range(min(n, PREAMBLE_ROWS))) + list(range(max(PREAMBLE_ROWS, n - CLOSING_ROWS), n))
    return [i for i in keep if doc.lines[i].strip()]


def _effective_date_candidates(doc: _Doc) -> list[Candidate]:
    rows = _contract_rows(doc)
    found = []
    for k, i in enumerate(rows):
        line = doc.lines[i]
        joined = line + (" " + doc.lines[rows[k + 1]] if k + 1 < len(rows) else "")
        for start, iso, rest in dates_in_line(joined, month_first=True):
            if start < len(line):  # starts on this row (a date broken over two rows is read from the first)
                found.append((i, iso, line, rest[:len(line) + 40]))
    isos = [f[1] for f in found]
    out = []
    for i, iso, _line, rest in found:
        context = " ".join(doc.lines[j] for j in range(max(0, i - 1), min(len(doc.lines), i + 2)))
        out.append(Candidate("effective_date", iso, (i,), rest, {
            "effective": float(bool(_EFFECTIVE.search(context))), "as_of": float(bool(_AS_OF.search(context))),
            "made": float(bool(_MADE.search(context))), "dated": float(bool(_DATED.search(context))),
            "witness": float(bool(_WITNESS.search(context))), "position": i / max(len(doc.lines), 1),
            "occurrences": float(isos.count(iso)), "first_date": float(iso == isos[0]),
            "in_preamble": float(i < PREAMBLE_ROWS), "in_closing": float(i >= len(doc.lines) - CLOSING_ROWS),
        }))
    return out


PARTY_SIGNALS = ("legal_form", "person_like", "between", "and_before", "alias_after", "described_after",
                 "occurrences", "offset", "tokens", "all_caps", "starts_sentence")
#: Legal forms that end an organisation's name in a contract's preamble (a comma may precede them): in
#: any case, and the short ones that are also words ("as", "co", "se") only as legal forms are written.
_ORG_END = re.compile(r"^(?:(?i:Inc|Incorporated|Corp|Corporation|Company|LLC|L\.L\.C|Ltd|Limited|L\.P|LLP|L\.L\.P|"
                      r"N\.A|plc|GmbH|S\.A|N\.V|B\.V|Bancorp|Bancshares|Holdings)|Co|CO|LP|AG|AS|ASA|SE)\.?,?$")
#: Lower-case words allowed inside a name ("Bank of America", "Heidrick & Struggles").
_CONNECTORS = frozenset({"of", "and", "&", "the", "de", "du", "la", "for", "y"})
#: Most words of a name before its legal form.
MAX_PARTY_TOKENS = 7
_TOKEN = re.compile(r"[^\s]+")
_NOT_PERSON = re.compile(
    r"\b(?:This|The|Agreement|Company|Corporation|Employee|Executive|Party|Parties|Section|State|States|United|"
    r"Delaware|Nevada|New|York|California|Texas|Florida|Confidential|Information|Non|Disclosure|Effective|Date|"
    r"Whereas|Now|Therefore|In|Witness|Board|Directors|Inc|Corp|Chief|Officer|President|Vice|Exhibit|Article|"
    r"Recipient|Discloser|Consultant|Employer|Holder|Purchaser|Seller|Buyer|Stock|Plan|Act|Street|Road|Avenue|"
    r"Suite|Name|Title|By|Dear|Re|Mr|Ms|Mrs|Dr)\b")


def _name_word(token: str) -> bool:
    """Can ``token`` be a word of a name: capitalised, a number, an initial or a connector?"""
    word = token.strip(",;:()[]\"“”'’")
    return bool(word) and (word[0].isupper() or word[0].isdigit() or word.lower() in _CONNECTORS) and word == token.rstrip(",")


def _party_spans(tokens: list[re.Match[str]]) -> list[tuple[int, int, str]]:
    """``(first token, last token, kind)`` of every name-like run: organisations end in a legal form
    (each run of 1..:data:`MAX_PARTY_TOKENS` name words before it is a candidate), persons are 2-4
    capitalised words or initials not ending in one."""
    words = [t.group(0) for t in tokens]
    spans = []
    for j, word in enumerate(words):
        if _ORG_END.match(word) and j > 0:
            i = j - 1
            while i >= 0 and j - i <= MAX_PARTY_TOKENS and _name_word(words[i]) and not words[i].endswith((".", ";", ":")) \
                    or (i >= 0 and j - i <= MAX_PARTY_TOKENS and re.fullmatch(r"[A-Z]\.", words[i])):
                if words[i].lower() not in _CONNECTORS:
                    spans.append((i, j, "org"))
                i -= 1
    for i in range(len(words)):
        for n in (2, 3, 4):
            run = words[i:i + n]
            if len(run) < n or not all(re.fullmatch(r"(?:[A-Z][a-z]+(?:-[A-Z][a-z]+)?|[A-Z]\.),?", w) for w in run):
                continue
            if run[0].endswith(".") or run[-1].rstrip(",").endswith(".") or any(w.endswith(",") for w in run[:-1]):
                continue
            spans.append((i, i + n - 1, "person"))
    return spans


def _party_candidates(doc: _Doc) -> list[Candidate]:
    rows = [i for i in range(min(len(doc.lines), PREAMBLE_ROWS)) if doc.lines[i].strip()]
    if not rows:
        return []
    text, starts = "", []
    for i in rows:
        starts.append(len(text))
        text += doc.lines[i] + " "
    tokens = list(_TOKEN.finditer(text))
    full = normalise_company(" ".join(doc.lines))
    seen: set[str] = set()
    out = []
    for first, last, kind in _party_spans(tokens):
        a, b = tokens[first].start(), tokens[last].end()
        value = text[a:b].strip(" ,;:()\"“”")
        key = normalise_company(value)
        if len(key) < 4 or key in seen or (kind == "person" and _NOT_PERSON.search(value)):
            continue
        seen.add(key)
        k = max(j for j, st in enumerate(starts) if st <= a)
        before, after = text[max(0, a - 40):a].lower(), text[b:b + 40]
        out.append(Candidate("parties", value, (rows[k],), before + " " + after, {
            "legal_form": float(kind == "org"), "person_like": float(kind == "person"),
            "between": float("between" in before), "and_before": float(before.rstrip().endswith("and")),
            "alias_after": float(bool(re.match(r"\s*,?\s*\(", after))),
            "described_after": float(bool(re.match(r"\s*,\s*an?\s", after))),
            "occurrences": float(full.count(key)), "offset": a / 1000.0,
            "tokens": float(last - first + 1), "all_caps": float(value.upper() == value),
            "starts_sentence": float(bool(re.search(r"(?:^|[.:;]\s*)$", text[max(0, a - 3):a]))),
        }))
    return out


GENERATORS: dict[str, Callable[[_Doc], list[Candidate]]] = {
    "dates": _date_candidates,
    "total_amount": _total_candidates,
    "vendor": _vendor_candidates,
    "vendor_address": _address_candidates,
    "effective_date": _effective_date_candidates,
    "parties": _party_candidates,
}
#: Field-specific signal names, in feature order.
SIGNALS: dict[str, tuple[str, ...]] = {
    "dates": DATE_SIGNALS, "total_amount": TOTAL_SIGNALS, "vendor": VENDOR_SIGNALS, "vendor_address": ADDRESS_SIGNALS,
    "effective_date": EFFECTIVE_SIGNALS, "parties": PARTY_SIGNALS,
}
#: Fields holding several values (each candidate at or above the threshold is emitted).
MULTI_VALUED = frozenset({"parties"})


def candidates(rows: Sequence[DocRow], rule_fields: dict[str, Any],
               fields: Sequence[str] | None = None) -> dict[str, list[Candidate]]:
    """``{field: [Candidate, ...]}`` of a document.

    Args:
        rows: :func:`conveyor.processors.extract.kie.rows.document_rows` of the document.
        rule_fields: what the rules found (a KeyFields dict plus ``vendor_address``, as
            :func:`conveyor.processors.extract.fields.extract_key_fields` returns it).
        fields: the fields wanted (default: every field of :data:`GENERATORS`).
    """
    doc = _doc(rows, rule_fields)
    return {name: GENERATORS[name](doc)[:MAX_CANDIDATES] for name in (fields or GENERATORS)}
