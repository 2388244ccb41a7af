"""Calibrate field-level confidence: how often each field's kind of evidence is right, per source.

Reads the labelled key fields of ``../shared/corpus`` through the extraction evaluation
(:mod:`conveyor.tools.evaluation.extraction`: SROIE, softmatic, invoice2data, Azure; the OCR and
text layer cached under ``CONVEYOR_EVAL_CACHE``), with each predicted field's rule
(:mod:`conveyor.processors.extract.fields.evidence`). Then:

* the shipped table (``processors/extract/fields/confidence.json``): per field and rule, documents
  ``n``, ``correct`` and ``precision``, from the **shippable** sources (softmatic, invoice2data,
  azure, and the SROIE training split's receipts in ``../shared``);
* per source, leave-one-source-out: the table rebuilt without that source decides which of the
  source's fields would be emitted (:func:`conveyor.processors.extract.fields.confidence.gate`'s
  rule); their precision (aim >= 0.97) and coverage (emitted / labelled) go into the same file
  under ``per_source``, where ``make eval`` reads them.

Run::

    python -m conveyor.tools.training.field_confidence [--corpus ../shared/corpus]
"""
from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from conveyor.processors.extract.fields.confidence import MIN_DOCUMENTS, TABLE_PATH, THRESHOLD, rule_confidence
from conveyor.tools.training.common import DEFAULT_CORPUS

#: Evaluation dataset -> source. Not used: ``invoice2data-png`` (PNG renders of PDFs already
#: counted: near-duplicates would count twice) and the templates row (in-sample by construction).
DATASET_SOURCE = {"sroie": "sroie", "softmatic": "softmatic", "invoice2data-pdf": "invoice2data",
                  "azure-invoices": "azure-invoices",
                  "azure-irs_w8ben": "azure-w8ben", "azure-irs_1099misc": "azure-1099"}
#: Sources whose labels may calibrate the shipped table: the shippable folders and the SROIE training split
#: (issue 24 names it for training, tuning and thresholds).
SHIPPABLE = {"softmatic", "invoice2data", "azure-invoices", "azure-w8ben", "azure-1099", "sroie"}
FIELDS = ("dates", "total_amount", "currency", "document_number", "vendor", "due_date", "time", "net_amount",
          "tax_amount", "supplier_tax_id", "iban", "customer", "payment_method")


def labelled_rows(corpus: Path) -> list[dict[str, Any]]:
    """One row per (document, labelled field): ``source``, ``key``, ``rule``, ``ok``, ``printed`` (the
    document prints the field; for the fields beyond the first five a label may say it does not)."""
    from conveyor.tools.evaluation import extraction as ex
    from conveyor.tools.evaluation.extra_fields import extra_field_rows

    documents: list[dict[str, Any]] = []
    ex.sroie_rows(corpus, documents)
    ex.softmatic_rows(corpus, documents)
    ex.invoice2data_rows(corpus, documents)
    ex.azure_rows(corpus, documents)
    extra_field_rows(corpus, documents)
    rows = []
    for d in documents:
        source = DATASET_SOURCE.get(d["dataset"])
        if source is None or d.get("key") not in FIELDS:
            continue
        rows.append({"source": source, "file": d["file"], "key": d["key"], "rule": d.get("rule") or "no value",
                     "ok": bool(d["ok"]), "printed": d.get("printed", True)})
    return rows


def build_table(rows: Iterable[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """``{field: {rule: {"n", "correct", "precision"}}}`` of ``rows`` (rows without a value left out)."""
    counts: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    for r in rows:
        if r["rule"] == "no value":
            continue
        c = counts[r["key"]][r["rule"]]
        c[0] += 1
        c[1] += r["ok"]
    return {f: {rule: {"n": n, "correct": k, "precision": round(k / n, 4)} for rule, (n, k) in sorted(rules.items())}
            for f, rules in sorted(counts.items())}


def score_source(rows: list[dict[str, Any]], table: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per field: labelled documents that print it, those that do not, emitted, right among emitted,
    precision and coverage (right values emitted / documents that print the field)."""
    out = {}
    for field in FIELDS:
        mine = [r for r in rows if r["key"] == field]
        if not mine:
            continue
        emitted = [r for r in mine if r["rule"] != "no value"
                   and (rule_confidence({"fields": table}, field, r["rule"]) or 0.0) >= THRESHOLD]
        right = sum(r["ok"] for r in emitted)
        printed = [r for r in mine if r.get("printed", True)]
        covered = sum(r["ok"] for r in emitted if r.get("printed", True))
        out[field] = {"labelled": len(printed), "not_printed": len(mine) - len(printed), "emitted": len(emitted),
                      "right": right, "precision": round(right / len(emitted), 4) if emitted else None,
                      "coverage": round(covered / len(printed), 4) if printed else None,
                      "accuracy_without_abstention": round(sum(r["ok"] for r in mine) / len(mine), 4),
                      "aim": THRESHOLD, "met": (right / len(emitted) >= THRESHOLD) if emitted else None}
    return out


def measure(corpus: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(shipped table, per-source scores)``: the table from the shippable sources, and for
    each source the fields its left-out table (the shipped one for test-only sources) would emit."""
    rows = labelled_rows(corpus)
    shipped = build_table(r for r in rows if r["source"] in SHIPPABLE)
    per_source = {}
    for source in sorted({r["source"] for r in rows}):
        table = shipped if source not in SHIPPABLE else build_table(
            r for r in rows if r["source"] in SHIPPABLE and r["source"] != source)
        per_source[source] = {"shippable": source in SHIPPABLE,
                              "fields": score_source([r for r in rows if r["source"] == source], table)}
    return shipped, per_source


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    ap.add_argument("--out", type=Path, default=TABLE_PATH)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    shipped, per_source = measure(args.corpus)
    doc = {
        "description": "precision of each field's evidence rule on the shippable corpus sources "
                       "(processors/extract/fields/evidence.py); a rule below the threshold is withheld",
        "threshold": THRESHOLD, "min_documents": MIN_DOCUMENTS,
        "sources": sorted(SHIPPABLE), "command": "python -m conveyor.tools.training.field_confidence",
        "fields": shipped, "per_source": per_source,
    }
    args.out.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    for source, res in per_source.items():
        for field, r in res["fields"].items():
            print(f"  {source:<15} {field:<16} emitted {r['emitted']:>2}/{r['labelled']:<2} right {r['right']:>2} "
                  f"precision {r['precision']}  (all values: {r['accuracy_without_abstention']})")
    print(f"wrote {args.out} in {time.perf_counter() - t0:.1f}s")
    return doc


if __name__ == "__main__":
    main()
