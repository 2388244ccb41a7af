"""Keyword and layout cues of a document's function, fed to the document-type model beside the embedding.

A sentence embedding of a whole document mostly sees *what it is about* (groceries, brake
cables, a tax treaty); the type is decided by *what it does*: a receipt records a payment
that has happened (cash tendered, change, a card slip, a cashier), an invoice asks for one
(due date, bill-to, payment terms, bank details), a credit note gives money back (credit note,
Gutschrift, refund), a purchase order asks for goods (order number, requested delivery), a
contract binds parties (whereas, hereby, shall, governed by), a form asks to be filled in (blank
lines, check boxes, "Signature", "Date:"), a tax form reports to a tax authority, a claim form
asks an insurer to pay for a service. Titles mislead (Malaysian point-of-sale
receipts print "TAX INVOICE"), so the cues below are the function's words, not the title's.
Definitions: ``docs/documents.md``.

Each cue group is a case-insensitive regular expression over the extracted text (English,
German, Dutch, French, Malay receipts' English); its feature is ``min(matches, 3) / 3``.
Three layout cues follow: the share of lines that end in an amount (item/price columns), the
text length (``log10(chars) / 5``) and whether a time of day is printed (``1.0``/``0.0``: a till
stamps the moment of sale, ``13:59``; a bill, a tax form or a letter seldom prints one). The
vector has :data:`CUE_NAMES` order, values in ``[0, 1]``; its size is part of the model's input
size, so changing a pattern means
retraining the document-type model (``make models``), whose leave-one-source-out table shows
what each group adds (``make eval``).
"""
from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from tokenizers import Tokenizer

#: Cue group → pattern. Group names are stable (they appear in the model's manifest).
CUE_PATTERNS: dict[str, re.Pattern[str]] = {
    "payment_made": re.compile(
        r"\b(?:cash|change\s*due|change|tendered|tender|r[üu]ckgeld|wechselgeld|gegeben|bar(?:geld)?|"
        r"kartenzahlung|ec[- ]?karte|girocard|visa|master\s?card|maestro|amex|debit|credit\s*card|"
        r"contactless|kontaktlos|paid|bezahlt|betaald|pinnen|esp[èe]ces|rendu|approved|auth(?:orization)?\s*code)\b",
        re.IGNORECASE),
    "point_of_sale": re.compile(
        r"\b(?:receipt|kassenbon|kassenbeleg|quittung|beleg|bon|kasse|kassierer|cashier|terminal|"
        r"trace|thank\s*you|vielen\s*dank|danke|come\s*again|server|table|tip|trinkgeld|"
        r"pos|gst|sst|rounding|round(?:ing)?\s*adj)\b",
        re.IGNORECASE),
    "payment_requested": re.compile(
        r"\b(?:due\s*date|date\s*due|payment\s*terms|terms|bill(?:ed)?\s*to|ship\s*to|invoice\s*(?:no|number|#|date)|"
        r"net\s*\d{1,2}|iban|bic|swift|f[äa]llig|zahlungsziel|zahlbar|rechnungs(?:nummer|datum)|factuurnummer|"
        r"vervaldatum|purchase\s*order|p\.?\s?o\.?\s*(?:no|number|#)|remit|account\s*(?:no|number)|sort\s*code|"
        r"ust-?id(?:nr)?|vat\s*(?:no|number|reg|id)|payable|balance\s*due|amount\s*due|please\s*pay|"
        r"date\s*limite|somme\s*[àa]\s*payer|[àa]\s*payer|termin\s*p[łl]atno[śs]ci|zahlung\s*bis|betalen\s*v[oó]{1,2}r)\b",
        re.IGNORECASE),
    "bill_title": re.compile(
        r"\b(?:invoice|facture|factuur|faktura|rechnung|bill|statement|sold\s*to|customer|client|kunde|klant|"
        r"nabywca|buyer|debtor)\b",
        re.IGNORECASE),
    "tax_report": re.compile(
        r"\b(?:form|irs|internal\s*revenue|w-?9|w-?8\s?ben|1099|w-2|withholding|taxpayer|tin|ssn|"
        r"social\s*security|omb\s*no|treasury|beneficial\s*owner|tax\s*year|wages)\b",
        re.IGNORECASE),
    "insurance_claim": re.compile(
        r"\b(?:claim|patient|insured|diagnosis|physician|npi|medicare|medicaid|policy\s*(?:no|number)|"
        r"member\s*id|cpt|icd|procedures?|group\s*number|subscriber|copay)\b",
        re.IGNORECASE),
    "credit_given": re.compile(
        r"\b(?:credit\s*note|credit\s*memo|gutschrift|rechnungskorrektur|korrektur|storno|stornierung|avoir|"
        r"creditnota|nota\s*de\s*cr[ée]dito|refund(?:ed)?|erstattung|r[üu]ckverg[üu]tung|credited|"
        r"corrected\s*invoice|self[- ]?billed)\b",
        re.IGNORECASE),
    "order_placed": re.compile(
        r"\b(?:purchase\s*order|order\s*(?:no|number|date|response|change|confirmation|acknowledg\w*)|"
        r"bestellung|bestellnummer|auftragsbest[äa]tigung|bon\s*de\s*commande|commande|bestelling|"
        r"requested\s*delivery|delivery\s*date|ordered|ship\s*via|buyer\s*reference|quantity\s*ordered)\b",
        re.IGNORECASE),
    "agreement": re.compile(
        r"\b(?:agreement|parties|party|whereas|hereby|hereto|herein|hereinafter|shall|governed\s*by|"
        r"in\s*witness\s*whereof|confidential(?:ity)?|disclos\w+|obligations?|terminat\w+|"
        r"vertrag|vereinbarung|contrat|overeenkomst)\b",
        re.IGNORECASE),
    "form_fields": re.compile(
        r"(?:_{4,}|\[\s?\]|☐|☑|☒|\b(?:please\s+(?:print|complete|check|indicate|return)|signature|"
        r"check\s+(?:one|all|box)|yes\s*/?\s*no|if\s+(?:yes|no|so)|fax\s*(?:no|number|:)|"
        r"pages?\s*(?:including|\(including)|to\s*:|from\s*:|subject\s*:|re\s*:|date\s*:|name\s*:|"
        r"approved\s*by|submitted\s*by|requested\s*by)\b)",
        re.IGNORECASE),
}
#: A line that ends in an amount (``12.50``, ``1,234.00``, ``7,16 €``, ``-3.00 A``).
_AMOUNT_AT_END = re.compile(r"\d[\d.,' ]*[.,]\d{2}\s*(?:[A-Z]{1,3}|€|\$|£)?\s*$")
#: A time of day with a two-digit hour ``HH:MM`` (00–23, optional seconds), also glued to a date by OCR
#: (``6/10/201913:59``); not followed by a digit, ``.`` or ``,`` (a ratio or an amount: ``12:30.5``,
#: ``10:15,00``; so also not ``13:59.`` at a sentence's end). No left boundary, so digits glued before
#: it (``1012:30``, ``Ref 2023:11``) count too: a cue, not a field value.
_TIME_OF_DAY = re.compile(r"(?:[01]\d|2[0-3]):[0-5]\d(?::[0-5]\d)?(?![\d.,])")
LAYOUT_CUES = ("amount_line_share", "text_length", "time_of_day")
CUE_NAMES: tuple[str, ...] = (*CUE_PATTERNS, *LAYOUT_CUES)
#: Feature name in a model manifest's ``input.features`` saying the model reads these cues.
FEATURES_NAME = "doc_cues"


def cue_vector(text: str) -> np.ndarray:
    """Cue features of a document's text.

    Args:
        text: The extracted text, pages joined, lines separated by ``"\\n"`` (may be empty).

    Returns:
        ``(len(CUE_NAMES),)`` float32 array in :data:`CUE_NAMES` order, each value in ``[0, 1]``.
    """
    values = [min(len(p.findall(text)), 3) / 3.0 for p in CUE_PATTERNS.values()]
    lines = [line for line in text.splitlines() if line.strip()]
    values.append(sum(1 for line in lines if _AMOUNT_AT_END.search(line)) / len(lines) if lines else 0.0)
    values.append(min(math.log10(len(text) + 1) / 5.0, 1.0))
    values.append(1.0 if _TIME_OF_DAY.search(text) else 0.0)
    return np.asarray(values, dtype=np.float32)


def record_text(record: Mapping[str, Any]) -> str:
    """The text of an ``Embedded`` record: its chunks' texts in order, one line each chunk."""
    chunks = sorted(record.get("chunks") or [], key=lambda c: c.get("chunk_index", 0))
    return "\n".join(c.get("text", "") for c in chunks)


def texts_cue_matrix(texts: list[str], tokenizer: Tokenizer) -> np.ndarray:
    """``(n, len(CUE_NAMES))`` cues of raw texts exactly as the classify stage computes them for the
    embedded records: over the embed stage's chunks (:func:`conveyor.processors.embed.chunking.chunk_text`
    with its defaults) joined by :func:`record_text`. ``tokenizer``: the embedder's tokenizer."""
    from conveyor.processors.embed.chunking import chunk_text

    rows = []
    for text in texts:
        chunks = [{"chunk_index": c.chunk_index, "text": c.text} for c in chunk_text(text, tokenizer)]
        rows.append(cue_vector(record_text({"chunks": chunks})))
    return np.stack(rows) if rows else np.zeros((0, len(CUE_NAMES)), dtype=np.float32)


def reads_cues(manifest: Mapping[str, Any]) -> bool:
    """Does a model with this manifest read the cues after the embedding (``input.features``)?"""
    return FEATURES_NAME in str((manifest.get("input") or {}).get("features", ""))
