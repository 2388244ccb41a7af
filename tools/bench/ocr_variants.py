"""OCR speed/quality table: the extract stage's OCR under each :class:`OcrOptions` variant.

Every variant OCRs the same real receipt scans from ``../shared/corpus`` through the
pipeline's own path (:func:`conveyor.processors.extract.extract_pages`: image loading, size
limits, padding, row grouping, post-OCR repair) with the process engine rebuilt by
:func:`conveyor.processors.extract.ocr.configure`, and reports per page:

* ``cpu_s_per_page`` — CPU seconds of this process (all ONNX Runtime threads) per page,
  ``time.process_time``; ``wall_s_per_page`` — elapsed seconds per page;
* ``sroie_line_cer`` — character error rate of each annotated SROIE line against the OCR
  boxes inside it, case-insensitive (:func:`conveyor.tools.evaluation.ocr_quality.line_pairs`);
* the key-field exact-match accuracy of :mod:`conveyor.tools.evaluation.extraction` on the
  same pages: SROIE company/date/address/total, softmatic (German receipts) date/total, as
  "correct/n", and in ``missed`` the files each field got wrong.

``speedup`` is the baseline's (first variant's) CPU seconds per page divided by the
variant's. The first page of each variant is a warm-up and is not timed.

Run: ``python -m conveyor.tools.bench.ocr_variants [--limit N] [--out FILE]`` (JSON lines).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from conveyor.processors.extract import extract_pages, ocr
from conveyor.processors.extract.ocr import OcrOptions

BEFORE = "full-resolution detection (before)"
"""The baseline variant: RapidOCR 1.4's own settings, what the extract stage ran before."""

#: Variants, each changing one setting from RapidOCR's defaults, then combinations.
VARIANTS: dict[str, OcrOptions] = {
    BEFORE: OcrOptions(),
    "detector long side 2000": OcrOptions(det_max_side=2000),
    "detector long side 1600": OcrOptions(det_max_side=1600),
    "detector long side 1280": OcrOptions(det_max_side=1280),
    "no angle classifier": OcrOptions(use_angle_cls=False),
    "recognition batch 24": OcrOptions(rec_batch_num=24),
    "recognition batch 1": OcrOptions(rec_batch_num=1),
    "1 thread": OcrOptions(intra_op_threads=1),
    "detector 1600, no angle classifier": OcrOptions(det_max_side=1600, use_angle_cls=False),
    "detector 1600, no angle classifier, batch 24": OcrOptions(det_max_side=1600, use_angle_cls=False,
                                                               rec_batch_num=24),
    "detector 1280, no angle classifier": OcrOptions(det_max_side=1280, use_angle_cls=False),
    "detector 1280, no angle classifier, 1 thread": OcrOptions(det_max_side=1280, use_angle_cls=False,
                                                              intra_op_threads=1),
    "1 thread, batch 1": OcrOptions(intra_op_threads=1, rec_batch_num=1),
    "detector 2000, 1 thread, batch 1": OcrOptions(det_max_side=2000, intra_op_threads=1, rec_batch_num=1),
    "detector 1600, 1 thread, batch 1": OcrOptions(det_max_side=1600, intra_op_threads=1, rec_batch_num=1),
    "detector 1600, no angle classifier, 1 thread, batch 1": OcrOptions(det_max_side=1600, use_angle_cls=False,
                                                                       intra_op_threads=1, rec_batch_num=1),
}


def receipt_items(corpus: Path, limit: int | None = None) -> list[tuple[str, Path]]:
    """``(dataset, image)`` of the SROIE and softmatic receipt scans, ``limit`` of each
    (``None``: all); absent datasets are skipped."""
    sroie = sorted((corpus / "sroie" / "img").glob("*.jpg"))
    softmatic = sorted((corpus / "softmatic_receipts_de").glob("*/*.jpg"))
    return [("sroie", p) for p in sroie[:limit]] + [("softmatic", p) for p in softmatic[:limit]]


def run_variant(name: str, options: OcrOptions, items: list[tuple[str, Path]], corpus: Path) -> dict[str, Any]:
    """One row of the table for ``options`` over ``items``.

    Raises:
        ValueError: ``items`` is empty.
    """
    from conveyor.tools.evaluation.cer import corpus_cer
    from conveyor.tools.evaluation.extraction import pages_fields, softmatic_rows, sroie_rows
    from conveyor.tools.evaluation.ocr_quality import _sroie_boxes, line_pairs

    if not items:
        raise ValueError("no receipt scans to OCR")
    ocr.configure(options)
    extract_pages(items[0][1].read_bytes(), items[0][1].name)  # warm-up: engine and models loaded
    pages_of: dict[Path, list[dict[str, Any]]] = {}
    cpu = wall = 0.0
    pages = 0
    for _dataset, path in items:
        data = path.read_bytes()
        c0, w0 = time.process_time(), time.perf_counter()
        pages_of[path] = extract_pages(data, path.name)
        cpu += time.process_time() - c0
        wall += time.perf_counter() - w0
        pages += len(pages_of[path])
    pairs = [pair for dataset, path in items if dataset == "sroie"
             for pair in line_pairs(pages_of[path][0]["lines"], _sroie_boxes(corpus / "sroie" / "box" / f"{path.stem}.csv"))]
    row: dict[str, Any] = {"variant": name, "options": options.__dict__, "pages": pages,
                           "cpu_s_per_page": round(cpu / pages, 3), "wall_s_per_page": round(wall / pages, 3),
                           "sroie_line_cer": round(corpus_cer(pairs, case_sensitive=False), 4) if pairs else None}
    wanted = {path for _, path in items}

    def fields(path: Path, templates=None) -> dict[str, Any]:
        if path not in wanted:
            raise LookupError("not in this run's sample")
        return pages_fields(pages_of[path], templates)

    documents: list[dict[str, Any]] = []
    sroie_rows(corpus, documents, fields_fn=fields)
    softmatic_rows(corpus, documents, fields_fn=fields)
    names = {path.name for path in wanted}
    row["missed"] = {}
    for key in dict.fromkeys(f"{d['dataset']}_{d['field']}" for d in documents):
        done = [d for d in documents if f"{d['dataset']}_{d['field']}" == key and d["file"] in names]
        row[key] = f"{sum(d['ok'] for d in done)}/{len(done)}"
        row["missed"][key] = sorted(d["file"] for d in done if not d["ok"])
    return row


def run(corpus: Path, limit: int | None = None, variants: dict[str, OcrOptions] | None = None) -> list[dict[str, Any]]:
    """The table: one row per variant (:func:`run_variant`), ``speedup`` against the first.
    The process engine is left with :data:`conveyor.processors.extract.ocr.DEFAULT_OPTIONS`.

    Raises:
        ValueError: no receipt scans under ``corpus``.
    """
    items = receipt_items(corpus, limit)
    rows = []
    try:
        for name, options in (variants or VARIANTS).items():
            rows.append(run_variant(name, options, items, corpus))
            rows[-1]["speedup"] = round(rows[0]["cpu_s_per_page"] / rows[-1]["cpu_s_per_page"], 2)
            rows[-1]["default"] = options == ocr.DEFAULT_OPTIONS
    finally:
        ocr.configure(ocr.DEFAULT_OPTIONS)
    return rows


def main(argv: list[str] | None = None) -> int:
    """CLI: print one JSON line per variant (also to ``--out``)."""
    from conveyor.tools.training.common import DEFAULT_CORPUS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--limit", type=int, default=None, help="scans per dataset (default: all)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    out = args.out.open("w") if args.out else None
    for row in run(args.corpus, args.limit):
        line = json.dumps(row)
        print(line, flush=True)
        if out:
            out.write(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
