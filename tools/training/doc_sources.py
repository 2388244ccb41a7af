"""Labelled documents of ``../shared/corpus`` by source, for the document-type model.

Document types are defined by **function**, not by title (``docs/documents.md``):

* ``receipt`` — records a payment that has already been made at a point of sale (cash
  tendered, change, a card slip); a Malaysian "TAX INVOICE" from a till is a receipt;
* ``invoice`` — asks for a payment not made yet (a bill: supplier, customer, amounts due,
  payment terms or bank details), including a cash-sale invoice with a due date;
* ``tax_form`` — a form filed with or for a tax authority (W-9, W-8BEN, 1099, W-2, a tax
  treaty application);
* ``credit_note`` — credits the recipient: a credit note, a self-billed "Gutschrift", an invoice
  correction with a negative total;
* ``purchase_order`` — orders goods or services (an order, an order change, the supplier's
  order response);
* ``form`` — asks to be filled in, and is neither a tax form nor a claim form (consent forms,
  fax cover sheets, questionnaires, request and report forms);
* ``contract`` — an agreement binding named parties (NDAs);
* ``claim_form`` — asks an insurer to pay for a service (CMS-1500);
* ``other`` — everything else (insurance cards, delivery notes, bills of lading, filings).

A **source** is one corpus folder (one origin, one scanner, one country; the Azure samples are
five: its invoices, each IRS form set, and the single samples) or one public dataset built by
``make datasets`` (:mod:`conveyor.tools.datasets`: SROIE, FUNSD, Kleister NDA, ZUGFeRD — their
training splits only): leave-one-source-out evaluation trains without it and tests on it.
``shippable`` sources may train the shipped model: the corpus folders whose licence allows it
(``MANIFEST.md``), the SROIE training split in ``../shared`` (the split issue 24 names), and every
dataset source (only the weights derived from them ship, never their files); Mindee and CMS-1500
are test sources only.
``claim_form`` is defined and labelled, but no shippable source holds one, so the shipped model
cannot name it (its claim forms are counted wrong and go to review).

Label rules are ``(pattern relative to the corpus root, label, why)``; the first match wins and
every document file of a source must match one.
"""
from __future__ import annotations

import fnmatch
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LABELS = ["receipt", "invoice", "credit_note", "purchase_order", "tax_form", "form", "contract", "other"]
"""Types the shipped model predicts (``claim_form`` has no shippable training document)."""
DEFINED_TYPES = ["receipt", "invoice", "credit_note", "purchase_order", "tax_form", "form", "contract", "claim_form",
                 "other"]
DOC_SUFFIXES = {".pdf", ".png", ".jpg", ".jpeg", ".tif", ".tiff", ".txt"}
#: Files under the source folders that are not documents to classify.
NOT_DOCUMENTS = ("*.json", "*.md", "*.yml", "*.csv", "*/LICENSE*", "invoice2data/templates/*",
                 "sroie/box/*", "sroie/key/*")


@dataclass(frozen=True)
class Source:
    """One corpus folder with its label rules."""

    name: str
    folder: str
    shippable: bool
    rules: tuple[tuple[str, str, str], ...]


SOURCES: tuple[Source, ...] = (
    Source("softmatic", "softmatic_receipts_de", True, (
        ("softmatic_receipts_de/*/*.jpg", "receipt", "German supermarket / DIY store receipts (flatbed scans)"),
    )),
    Source("invoice2data", "invoice2data", True, (
        ("invoice2data/compare/oyo.*", "receipt",
         "OYO hotel 'PAYMENT RECEIPT': paid through cash at the hotel, balance 0 (a receipt by function)"),
        ("invoice2data/compare/*.pdf", "invoice", "vendor invoices with a text layer"),
        ("invoice2data/compare/*.png", "invoice", "PNG renders of some of those invoices (OCR path)"),
        ("invoice2data/compare/*.txt", "invoice", "pre-extracted text of an ORLEN fuel invoice (Faktura)"),
        ("invoice2data/files/camelot-*.pdf", "invoice", "Dutch invoices with tables (bol.com Factuur, Betaaloverzicht)"),
    )),
    Source("azure-invoices", "azure_form_recognizer_samples/invoices_labeled", True, (
        ("azure_form_recognizer_samples/invoices_labeled/*/*.pdf", "invoice",
         "Contoso project statements billing a customer ('Sold To'), no payment recorded"),
    )),
    Source("azure-1099", "azure_form_recognizer_samples/irs_1099misc_labeled", True, (
        ("azure_form_recognizer_samples/irs_1099misc_labeled/*", "tax_form", "IRS 1099-MISC (filled / scanned)"),
    )),
    Source("azure-w8ben", "azure_form_recognizer_samples/irs_w8ben_labeled", True, (
        ("azure_form_recognizer_samples/irs_w8ben_labeled/*", "tax_form", "IRS W-8BEN (filled / handwritten)"),
    )),
    Source("azure-w9", "azure_form_recognizer_samples/irs_w9_labeled", True, (
        ("azure_form_recognizer_samples/irs_w9_labeled/*", "tax_form", "IRS W-9 (filled / scanned)"),
    )),
    Source("azure-singles", "azure_form_recognizer_samples/singles", True, (
        ("azure_form_recognizer_samples/singles/w2.png", "tax_form", "IRS W-2"),
        ("azure_form_recognizer_samples/singles/layout-page-001.jpg", "tax_form",
         "layout sample whose content is a Japanese Application Form for Income Tax Convention"),
        ("azure_form_recognizer_samples/singles/[Ii]nvoice*", "invoice", "sample invoices"),
        ("azure_form_recognizer_samples/singles/sample-invoice.pdf", "invoice", "sample invoice"),
        ("azure_form_recognizer_samples/singles/simple-invoice.png", "invoice", "sample invoice"),
        ("azure_form_recognizer_samples/singles/contoso-receipt.png", "receipt", "receipt photo"),
        ("azure_form_recognizer_samples/singles/receipt.png", "receipt", "receipt photo"),
        ("azure_form_recognizer_samples/singles/contoso-allinone.jpg", "receipt",
         "photo of a Contoso cafe receipt (sub-total, tax, tip, total)"),
        ("azure_form_recognizer_samples/singles/cosent-form-test-document.pdf", "form", "consent form to fill in"),
        ("azure_form_recognizer_samples/singles/covid-informed-consent-form.pdf", "form", "consent form to fill in"),
        ("azure_form_recognizer_samples/singles/insurance-card.png", "other", "health insurance card"),
        ("azure_form_recognizer_samples/singles/sample-layout.pdf", "other", "layout sample: an SEC 10-Q filing"),
    )),
    Source("sroie", "sroie", True, (  # the SROIE training split (issue 24); the files never ship
        ("sroie/img/*", "receipt",
         "Malaysian point-of-sale receipts (cash/card tendered, change); most are titled TAX INVOICE"),
    )),
    Source("mindee", "mindee_samples", False, (
        ("mindee_samples/expense_receipts__*.jpg", "receipt", "restaurant / shop receipt photos"),
        ("mindee_samples/invoices__*", "invoice", "invoices (one multi-page PDF)"),
        ("mindee_samples/invoice_splitter__*.pdf", "invoice", "a PDF of several invoices"),
        ("mindee_samples/financial_document__default_sample.jpg", "invoice",
         "an invoice (bill to, due date, terms); seen by eye"),
        ("mindee_samples/delivery_notes__*.jpg", "other", "delivery note"),
        ("mindee_samples/bill_of_lading__*.jpg", "other", "bill of lading"),
        ("mindee_samples/us_healthcare_cards__*.jpg", "other", "health insurance card"),
    )),
    Source("cms1500", "cms1500_claim_forms", False, (
        ("cms1500_claim_forms/*.pdf", "claim_form", "CMS-1500 health insurance claim forms (filled, blank)"),
    )),
)

SHIPPABLE_SOURCES: tuple[Source, ...] = tuple(s for s in SOURCES if s.shippable)
"""The sources the shipped model may be trained on."""


def source_of(rel: str) -> Source:
    """The source whose folder holds ``rel`` (a path relative to the corpus root).

    Raises:
        KeyError: no source holds it.
    """
    for src in SOURCES:
        if rel.startswith(src.folder + "/"):
            return src
    raise KeyError(rel)


def group_of(rel: str) -> str:
    """CV group of a document: itself, or the original it is a near-duplicate of."""
    p = Path(rel)
    if rel.startswith("softmatic_receipts_de/B/") and p.stem.endswith("_B"):
        return f"softmatic_receipts_de/A/{p.stem[:-2]}.jpg"  # uncropped re-scan of the A file
    if rel.startswith("invoice2data/compare/") and p.suffix == ".png":
        return str(p.with_suffix(".pdf"))  # PNG render of the PDF
    if rel.startswith("sroie/key/") or rel.startswith("sroie/img/"):
        return rel  # one receipt; the datasets' SROIE groups are shops (byte duplicates are dropped)
    return rel


def label_of(rel: str) -> tuple[str, str] | None:
    """``(label, why)`` of the first rule of ``rel``'s source that matches, else None."""
    try:
        rules = source_of(rel).rules
    except KeyError:
        return None
    for pattern, label, why in rules:
        if fnmatch.fnmatchcase(rel, pattern):
            return label, why
    return None


def dataset_documents(root: Path | None = None) -> list[dict[str, Any]]:
    """The documents of the built datasets (:func:`conveyor.tools.datasets.load_manifest`) whose
    extraction succeeded, as :func:`list_documents` returns them (``rel`` is ``source:path``);
    ``[]`` when the datasets were not built."""
    from conveyor.tools.datasets import load_manifest

    manifest = load_manifest(root)
    return [{"path": Path(d["file"]), "rel": f"{d['source']}:{d['path']}", "source": d["source"], "shippable": True,
             "label": d["type"], "why": d["type_rule"], "sha256": d["sha256"], "group": d["group"]}
            for d in (manifest or {}).get("documents", [])
            if (d.get("extraction") or {}).get("status", "ok") == "ok"]


def all_documents(corpus: Path, datasets_root: Path | None = None) -> list[dict[str, Any]]:
    """:func:`dataset_documents` then :func:`list_documents` of ``corpus``, byte-identical files once
    (the SROIE receipts of ``../shared`` are part of the SROIE training split)."""
    docs, seen = [], set()
    for doc in dataset_documents(datasets_root) + list_documents(corpus):
        if doc["sha256"] not in seen:
            seen.add(doc["sha256"])
            docs.append(doc)
    return docs


def list_documents(corpus: Path, sources: tuple[Source, ...] = SOURCES) -> list[dict[str, Any]]:
    """Every labelled document file of ``sources`` present under ``corpus`` (byte duplicates once).

    Returns:
        Dicts ``{"path", "rel", "source", "shippable", "label", "why", "sha256", "group"}``;
        a source folder that is absent contributes nothing.

    Raises:
        SystemExit: a document file of a source matches no label rule.
    """
    docs: list[dict[str, Any]] = []
    seen: dict[str, str] = {}
    unmatched: list[str] = []
    for src in sources:
        for path in sorted((corpus / src.folder).rglob("*")):
            if not path.is_file():
                continue
            rel = path.relative_to(corpus).as_posix()
            if any(fnmatch.fnmatchcase(rel, pat) for pat in NOT_DOCUMENTS) or path.suffix.lower() not in DOC_SUFFIXES:
                continue
            match = label_of(rel)
            if match is None:
                unmatched.append(rel)
                continue
            sha = hashlib.sha256(path.read_bytes()).hexdigest()
            if sha in seen:
                print(f"  skip {rel}: byte-identical to {seen[sha]}")
                continue
            seen[sha] = rel
            docs.append({"path": path, "rel": rel, "source": src.name, "shippable": src.shippable,
                         "label": match[0], "why": match[1], "sha256": sha, "group": group_of(rel)})
    if unmatched:
        raise SystemExit(f"no label rule for: {unmatched}")
    return docs
