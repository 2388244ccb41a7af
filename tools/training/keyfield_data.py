"""Labelled documents for the key-field model: the built datasets plus ``../shared/corpus``.

Every document is a dict ``{"id", "source", "group", "fold", "type", "path", "sha256", "truth"}``:

* from the datasets cache (:mod:`conveyor.tools.datasets`, training splits only): SROIE receipts
  (vendor, address, date, total), ZUGFeRD invoices, credit notes and orders (number, dates, totals,
  seller, buyer, VAT id, IBAN), Kleister NDAs (parties, effective date) and FUNSD forms (no fields);
* from ``../shared/corpus``: SROIE ``key/`` (the same training split: byte-identical images count
  once), softmatic receipts (date and total from the file names), invoice2data PDFs (amount, date,
  number, currency of ``compare/*.json``).

``fold`` is what is left out together when measuring: the source, except where one source alone
labels its fields — SROIE's 600+ receipts (some 200 shops) label vendors and addresses, Kleister's
254 NDAs parties and effective dates — there a fold is a fifth of the groups (shops; a contract's
set of parties), by a stable hash, so no shop or party set is both trained on and tested.
"""
from __future__ import annotations

import csv
import hashlib
import json
import zlib
from pathlib import Path
from typing import Any

from conveyor.processors.extract.fields.normalise import normalise_amount, normalise_date
from conveyor.tools.datasets import load_manifest
from conveyor.tools.datasets.sroie import sroie_truth

__all__ = ["GROUP_FOLDS", "labelled_documents", "fold_of"]

#: Folds of whole groups within a source that alone labels some fields.
GROUP_FOLDS = 5
#: Sources folded by group rather than left out whole.
GROUP_FOLDED = frozenset({"sroie", "kleister-nda"})


def fold_of(source: str, group: str) -> str:
    """The fold a document is left out with (see the module docstring)."""
    if source in GROUP_FOLDED:
        return f"{source}-{zlib.crc32(group.encode()) % GROUP_FOLDS}"
    return source


def _doc(source: str, path: Path, rel: str, doc_type: str, truth: dict, group: str, sha: str | None = None) -> dict:
    sha = sha or hashlib.sha256(path.read_bytes()).hexdigest()
    return {"id": f"{source}:{rel}", "source": source, "group": group, "fold": fold_of(source, group),
            "type": doc_type, "path": path, "sha256": sha, "truth": truth}


def _shared_documents(corpus: Path) -> list[dict[str, Any]]:
    from conveyor.processors.extract.fields.normalise import normalise_company

    docs = []
    key_dir = corpus / "sroie" / "key"
    for img in sorted((corpus / "sroie" / "img").glob("*.jpg")):
        labels = json.loads((key_dir / f"{img.stem}.json").read_text(encoding="utf-8"))
        docs.append(_doc("sroie", img, f"sroie/img/{img.name}", "receipt", sroie_truth(labels),
                         "sroie:" + (normalise_company(labels.get("company")) or img.stem)))
    base = corpus / "softmatic_receipts_de"
    if (base / "ground_truth_from_filenames.csv").exists():
        with open(base / "ground_truth_from_filenames.csv", newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                amount, _ = normalise_amount(row["total_eur"])
                row_truth = {"dates": [normalise_date(row["date"], day_first=True)], "total_amount": f"{amount:.2f}"}
                group = row["file"].replace("B/", "A/").replace("_B.jpg", ".jpg")
                docs.append(_doc("softmatic", base / row["file"], f"softmatic_receipts_de/{row['file']}", "receipt",
                                 row_truth, f"softmatic:{group}"))
    for expected in sorted((corpus / "invoice2data" / "compare").glob("*.json")):
        pdf = expected.with_suffix(".pdf")
        if not pdf.exists():
            continue
        raw = json.loads(expected.read_text(encoding="utf-8"))
        raw = raw[0] if isinstance(raw, list) else raw
        truth: dict[str, Any] = {}
        amount, _ = normalise_amount(str(raw.get("amount", "")))
        if amount is not None:
            truth["total_amount"] = f"{amount:.2f}"
        if raw.get("date"):
            truth["dates"] = [str(raw["date"])[:10]]
        if raw.get("invoice_number"):
            truth["document_number"] = str(raw["invoice_number"])
        if raw.get("currency"):
            truth["currency"] = str(raw["currency"])
        doc_type = "receipt" if pdf.stem == "oyo" else "invoice"
        docs.append(_doc("invoice2data", pdf, f"invoice2data/compare/{pdf.name}", doc_type, truth,
                         f"invoice2data:{pdf.stem}"))
    return docs


def labelled_documents(corpus: Path | None, datasets_root: Path | None = None) -> list[dict[str, Any]]:
    """Every labelled document available (see the module docstring); byte duplicates once."""
    docs: list[dict[str, Any]] = []
    manifest = load_manifest(datasets_root)
    for d in (manifest or {}).get("documents", []):
        if (d.get("extraction") or {}).get("status", "ok") != "ok":
            continue
        docs.append({"id": f"{d['source']}:{d['path']}", "source": d["source"], "group": d["group"],
                     "fold": fold_of(d["source"], d["group"]), "type": d["type"], "path": Path(d["file"]),
                     "sha256": d["sha256"], "truth": d["truth"]})
    if corpus is not None and corpus.is_dir():
        docs += _shared_documents(corpus)
    seen, out = set(), []
    for d in docs:
        if d["sha256"] not in seen:
            seen.add(d["sha256"])
            out.append(d)
    return out
