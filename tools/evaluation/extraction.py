"""Evaluation section "Extraction": key-field accuracy and OCR character error rate.

Exact-match accuracy per field after normalising both sides
(:mod:`conveyor.processors.extract.fields.normalise`): dates as ISO 8601, amounts as
decimals, company names case/whitespace/punctuation-folded, addresses as letters
and digits. Ground truth, all read from ``../shared/corpus`` (never copied):

* SROIE ``sroie/key/*.json`` (human): company, date (day first), address, total;
* softmatic ``ground_truth_from_filenames.csv``: date, total;
* invoice2data ``compare/*.json`` (that project's test expectations): issuer,
  amount, date, invoice_number, currency — for the text-layer PDFs (and the one
  pre-extracted text) and, separately, for the PNG renders (OCR);
* Azure ``*.labels.json`` (human): the labelled fields this extractor supports.

An ablation (:func:`layout_ablation_rows`) scores the receipts again without the OCR
layout. OCR quality (CER of the pipeline's OCR next to raw RapidOCR) is measured by
:mod:`.ocr_quality` and reported in this section too.

:func:`extraction_section` is the report section (``section(ctx) -> SectionResult`` of
:mod:`conveyor.tools.evaluation.report`); :func:`run` returns the same figures as plain
dicts; ``python -m conveyor.tools.evaluation.extraction [CORPUS] [--details]`` prints them
as JSON lines.
"""
from __future__ import annotations

import csv
import json
import re
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from conveyor.processors.extract.fields import extract_extra_fields, extract_key_fields
from conveyor.processors.extract.fields.evidence import locate
from conveyor.processors.extract.fields.issuers import load_issuer_templates, match_issuer
from conveyor.processors.extract.fields.normalise import (
    normalise_address,
    normalise_amount,
    normalise_company,
    normalise_date,
    strip_legal_form,
)
from conveyor.processors.extract.layout import page_layout
from conveyor.processors.extract.pdf import normalise_text
from conveyor.tools.evaluation.corpus_cache import cached_pages
from conveyor.tools.evaluation.ocr_quality import ocr_rows
from conveyor.tools.training.common import DEFAULT_CORPUS

__all__ = ["run", "extraction_section", "AIMS", "document_fields", "pages_fields", "sroie_rows", "softmatic_rows",
           "invoice2data_rows", "azure_rows", "layout_ablation_rows", "ocr_rows"]

#: Accuracy aims of issue 4 (fraction of documents), by (dataset, field).
AIMS: dict[tuple[str, str], float] = {
    ("sroie", "total"): 0.95, ("sroie", "date"): 0.95, ("sroie", "company"): 0.85, ("sroie", "address"): 0.75,
    ("softmatic", "date"): 0.95, ("softmatic", "total"): 0.95,
    **{("invoice2data-pdf", f): 0.90 for f in ("issuer", "amount", "date", "invoice_number", "currency")},
}

Compare = Callable[[Any, Any], bool]


def _same_date(day_first: bool) -> Compare:
    return lambda predicted, expected: bool(predicted) and predicted == normalise_date(str(expected), day_first=day_first)


def _same_amount(predicted: Any, expected: Any) -> bool:
    value = normalise_amount(expected)[0]
    return predicted is not None and value is not None and normalise_amount(predicted)[0] == value


def _same_company(predicted: Any, expected: Any) -> bool:
    return bool(predicted) and normalise_company(predicted) == normalise_company(expected)


def _same_issuer(predicted: Any, expected: Any) -> bool:
    """Issuer names compare without legal forms (``"Amazon Web Services, Inc."`` = ``"Amazon Web Services"``)."""
    return bool(predicted) and normalise_company(strip_legal_form(predicted)) == normalise_company(strip_legal_form(expected))


def _same_address(predicted: Any, expected: Any) -> bool:
    return bool(predicted) and normalise_address(predicted) == normalise_address(expected)


def _same_identifier(predicted: Any, expected: Any) -> bool:
    def norm(value: Any) -> str:
        return re.sub(r"[\W_]+", "", str(value or "")).casefold()

    return bool(predicted) and norm(predicted) == norm(expected)


def _same_text(predicted: Any, expected: Any) -> bool:
    return predicted is not None and str(predicted).strip().upper() == str(expected).strip().upper()


def document_fields(path: Path, issuer_templates: list | None = None) -> dict[str, Any]:
    """Key fields (with address) of one corpus file, from the extraction cache.

    ``.txt`` files are read as already-extracted text. With ``issuer_templates``
    (:func:`conveyor.processors.extract.fields.issuers.load_issuer_templates`) the result also
    has ``"known_issuer"``: the matching template's issuer, else the generic ``vendor``.
    """
    if path.suffix.lower() == ".txt":
        text = normalise_text(path.read_text(encoding="utf-8", errors="replace"))
        fields = extract_key_fields(text)
        pages = [{"text": text, "method": "text_layer"}]
        extra, extra_evidence = extract_extra_fields(pages, fields)
        fields["evidence"] = {f: ev.rule for f, ev in {**locate(fields, pages), **extra_evidence}.items()}
        fields.update(extra)
        if issuer_templates is not None:
            fields["known_issuer"] = match_issuer(text, issuer_templates) or fields["vendor"]
        return fields
    return pages_fields(cached_pages(path), issuer_templates)


def pages_fields(pages: list[dict[str, Any]], issuer_templates: list | None = None) -> dict[str, Any]:
    """Key fields (with address, and ``"known_issuer"`` as in :func:`document_fields`) of the
    page dicts of :func:`conveyor.processors.extract.extract_pages`."""
    text = "\n\n".join(page["text"] for page in pages).strip("\n")
    first = pages[0]
    layout = page_layout(first["lines"], first["size"]) if first.get("lines") else None
    fields = extract_key_fields(text, first_page_text=first["text"], layout=layout)
    extra, extra_evidence = extract_extra_fields(pages, fields)
    fields["evidence"] = {f: ev.rule for f, ev in {**locate(fields, pages, layout), **extra_evidence}.items()}  # rule per field
    fields.update(extra)
    if issuer_templates is not None:
        fields["known_issuer"] = match_issuer(text, issuer_templates) or fields["vendor"]
    return fields


def _score(dataset: str, items: Iterable[tuple[Path, dict[str, Any]]], fields: dict[str, tuple[str, Compare]],
           documents: list[dict[str, Any]], issuer_templates: list | None = None,
           fields_fn: Callable[..., dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Rows of per-field exact-match accuracy; ``items`` are ``(file, ground truth)``;
    ``fields`` maps a ground-truth key to (predicted key, comparison)."""
    correct = {name: 0 for name in fields}
    counts = {name: 0 for name in fields}
    for path, truth in items:
        try:
            predicted = (fields_fn or document_fields)(path, issuer_templates)
        except Exception as exc:  # noqa: BLE001 - a failed document counts as wrong on every field
            predicted = {"error": f"{type(exc).__name__}: {exc}"}
        for name, (key, same) in fields.items():
            if truth.get(name) in (None, ""):
                continue
            value = predicted.get(key)
            if key == "dates":
                value = value[0] if value else None
            ok = bool(same(value, truth[name]))
            counts[name] += 1
            correct[name] += ok
            documents.append({"dataset": dataset, "file": path.name, "field": name, "key": key,
                              "rule": (predicted.get("evidence") or {}).get(key),
                              "expected": truth[name], "predicted": value, "ok": ok})
    rows = []
    for name in fields:
        if not counts[name]:
            continue
        aim = AIMS.get((dataset, name))
        value = correct[name] / counts[name]
        rows.append({"section": "extraction", "dataset": dataset, "field": name, "metric": "exact match",
                     "value": round(value, 4), "correct": correct[name], "n": counts[name],
                     "aim": aim, "met": None if aim is None else value >= aim})
    return rows


def sroie_rows(corpus: Path, documents: list[dict[str, Any]], fields_fn=None) -> list[dict[str, Any]]:
    """SROIE: company, date, address, total of ``sroie/img/*.jpg`` against ``sroie/key``
    (``fields_fn``: how fields are extracted, default :func:`document_fields`)."""
    items = [(img, json.loads((corpus / "sroie" / "key" / f"{img.stem}.json").read_text()))
             for img in sorted((corpus / "sroie" / "img").glob("*.jpg"))]
    fields = {"company": ("vendor", _same_company), "date": ("dates", _same_date(True)),
              "address": ("address", _same_address), "total": ("total_amount", _same_amount)}
    return _score("sroie", items, fields, documents, fields_fn=fields_fn)


def softmatic_rows(corpus: Path, documents: list[dict[str, Any]], fields_fn=None) -> list[dict[str, Any]]:
    """softmatic receipts: date and total against the file-name ground truth
    (``fields_fn`` as in :func:`sroie_rows`)."""
    base = corpus / "softmatic_receipts_de"
    with open(base / "ground_truth_from_filenames.csv", newline="", encoding="utf-8") as fh:
        items = [(base / row["file"], {"date": row["date"], "total": row["total_eur"]}) for row in csv.DictReader(fh)]
    return _score("softmatic", items, {"date": ("dates", _same_date(False)), "total": ("total_amount", _same_amount)},
                  documents, fields_fn=fields_fn)


_I2D_FIELDS = {"issuer": ("vendor", _same_issuer), "amount": ("total_amount", _same_amount),
               "date": ("dates", _same_date(False)), "invoice_number": ("document_number", _same_identifier),
               "currency": ("currency", _same_text)}


def invoice2data_items(corpus: Path, suffixes: tuple[str, ...]) -> list[tuple[Path, dict[str, Any]]]:
    """``(file, expected)`` for invoice2data's ``compare/`` files with one of ``suffixes``."""
    items = []
    for expected in sorted((corpus / "invoice2data" / "compare").glob("*.json")):
        truth = json.loads(expected.read_text())
        truth = truth[0] if isinstance(truth, list) else truth
        for suffix in suffixes:
            path = expected.with_suffix(suffix)
            if path.exists():
                items.append((path, truth))
    return items


def invoice2data_rows(corpus: Path, documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """invoice2data: text-layer PDFs (+ the pre-extracted ``.txt``) and PNG renders, scored
    separately; plus the issuer named by invoice2data's own templates where one matches
    (in-sample: those templates were written for these very invoices)."""
    rows = (_score("invoice2data-pdf", invoice2data_items(corpus, (".pdf", ".txt")), _I2D_FIELDS, documents)
            + _score("invoice2data-png", invoice2data_items(corpus, (".png",)), _I2D_FIELDS, documents))
    templates_dir = corpus / "invoice2data" / "templates"
    if templates_dir.is_dir():
        templates = load_issuer_templates(templates_dir)
        rows += _score("invoice2data-pdf-templates", invoice2data_items(corpus, (".pdf", ".txt")),
                       {"issuer": ("known_issuer", _same_issuer)}, documents, templates)
    return rows


#: Azure label -> (our field name, predicted key, comparison), per labelled folder.
#: W-8BEN's signature ``Date`` is the document date; US forms write dates month first.
_AZURE_FIELDS: dict[str, dict[str, tuple[str, Compare]]] = {
    "invoices_labeled": {"Receipt No": ("document_number", _same_identifier)},
    "irs_w8ben_labeled": {"Date": ("dates", _same_date(False))},
    "irs_1099misc_labeled": {"PayerName": ("vendor", _same_company)},
}


def azure_rows(corpus: Path, documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Azure labelled invoices and forms: the labelled fields we extract (see ``_AZURE_FIELDS``)."""
    rows = []
    base = corpus / "azure_form_recognizer_samples"
    for folder, fields in _AZURE_FIELDS.items():
        items = []
        for labels in sorted((base / folder).rglob("*.labels.json")):
            data = json.loads(labels.read_text())
            truth = {item["label"]: " ".join(v["text"] for v in item["value"]) for item in data.get("labels", [])}
            items.append((labels.with_name(labels.name[: -len(".labels.json")]), truth))
        rows += _score(f"azure-{folder.replace('_labeled', '')}", items, fields, documents)
    return rows


def _flat_boxes_fields(path: Path, issuer_templates: list | None = None) -> dict[str, Any]:
    """Key fields from the OCR boxes one per line in detection order (no rows, no layout)."""
    pages = cached_pages(path)
    return extract_key_fields("\n".join(line.text for line in pages[0]["lines"]))


def _rows_only_fields(path: Path, issuer_templates: list | None = None) -> dict[str, Any]:
    """Key fields from the reading-order rows without layout evidence (size, alignment)."""
    pages = cached_pages(path)
    return extract_key_fields(pages[0]["text"])


def layout_ablation_rows(corpus: Path) -> list[dict[str, Any]]:
    """SROIE and softmatic accuracy when the OCR layout is not used: boxes one per line
    in detection order ("flat boxes"), or reading-order rows without the size/alignment
    evidence ("rows only"). Shows what the layout contributes."""
    rows: list[dict[str, Any]] = []
    for name, variant in (("flat-boxes", _flat_boxes_fields), ("rows-only", _rows_only_fields)):
        for row in sroie_rows(corpus, [], variant) + softmatic_rows(corpus, [], variant):
            rows.append({**row, "dataset": f"{row['dataset']}-{name}", "aim": None, "met": None})
    return rows


def run(corpus_dir: str | Path) -> dict[str, Any]:
    """Run the whole extraction section.

    Args:
        corpus_dir: The shared corpus folder (``../shared/corpus``).

    Returns:
        ``{"rows": [row, ...], "documents": [per-document field results], "runtime_s": float}``;
        a row is ``{"section", "dataset", "field", "metric", "value", "n", "aim", "met", ...}``.

    Raises:
        FileNotFoundError: ``corpus_dir`` does not exist.
    """
    corpus = Path(corpus_dir)
    if not corpus.is_dir():
        raise FileNotFoundError(f"corpus folder {corpus} not found")
    start = time.monotonic()
    documents: list[dict[str, Any]] = []
    rows = (sroie_rows(corpus, documents) + softmatic_rows(corpus, documents)
            + invoice2data_rows(corpus, documents) + azure_rows(corpus, documents) + layout_ablation_rows(corpus)
            + ocr_rows(corpus))
    return {"rows": rows, "documents": documents, "runtime_s": round(time.monotonic() - start, 1)}


def _metric(row: dict[str, Any]) -> str:
    name = f"{row['dataset']}_{row['field']}".replace("-", "_").replace(" ", "_").replace("#", "").lower()
    if row["metric"] == "CER":
        return "cer_" + name.replace(",", "").replace("(", "").replace(")", "").replace("__", "_")
    return f"{name}_accuracy"


def extraction_section(ctx) -> Any:
    """The report section ``extraction``: one row per dataset and field (exact-match
    accuracy, aims of :data:`AIMS`) and per OCR variant (CER, no aim).

    Args:
        ctx: :class:`conveyor.tools.evaluation.report.EvalContext` (``ctx.corpus`` is read).

    Returns:
        A :class:`conveyor.tools.evaluation.report.SectionResult`; ``details`` holds every
        document's expected and predicted values, and the OCR cache version.

    Raises:
        SkipSection: ``ctx.corpus`` does not exist.
    """
    from conveyor.tools.evaluation.corpus_cache import cache_dir, code_version
    from conveyor.tools.evaluation.report import Row, SectionResult

    result = run(ctx.require_corpus())
    rows = []
    for row in result["rows"]:
        aim = AIMS.get((row["dataset"], row["field"]))
        if row["metric"] == "CER":
            other = "sensitive" if row["case"] == "insensitive" else "insensitive"
            note = f"case-{row['case']}, n={row['n']}; case-{other} {row['value_other_case']:.4f}"
        else:
            note = f"{row['correct']}/{row['n']}"
        rows.append(Row("extraction", _metric(row), row["value"], None if aim is None else (">=", aim), note))
    details = {
        "documents": result["documents"],
        "normalisation": "dates ISO 8601 (dateparser), amounts Decimal (price-parser), company and address: "
                         "case-folded letters and digits only; identifiers: letters and digits, case-folded",
        "cer_library": "rapidfuzz.distance.Levenshtein",
        "ocr_cache": {"dir": str(cache_dir()), "code_version": code_version()},
        "runtime_s": result["runtime_s"],
    }
    return SectionResult("extraction", rows=rows, details=details)


def main(argv: list[str] | None = None) -> int:
    """``python -m conveyor.tools.evaluation.extraction [CORPUS] [--details]``: rows (and
    with ``--details`` the per-document results) as JSON lines on stdout."""
    args = list(sys.argv[1:] if argv is None else argv)
    details = "--details" in args
    args = [a for a in args if a != "--details"]
    corpus = Path(args[0]) if args else DEFAULT_CORPUS
    result = run(corpus)
    for row in result["rows"] + (result["documents"] if details else []):
        print(json.dumps(row, ensure_ascii=False, default=str))
    print(json.dumps({"runtime_s": result["runtime_s"]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
