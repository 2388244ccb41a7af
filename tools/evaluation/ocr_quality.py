"""OCR quality: character error rate of the pipeline's OCR next to raw RapidOCR.

References: the SROIE line transcripts (``sroie/box/*.csv``, human, upper-cased) and
``bad_and_edge_files/ocrmypdf/linn.txt`` (the exact text of ``linn.png``). Variants,
each adding one step: raw RapidOCR with its defaults on the image file; the
pipeline's boxes (image loading, size limits, padding) joined into plain rows; with
deskewed rows; with two-column reading order; with post-OCR repair (= as shipped).
CER: :mod:`.cer` (RapidFuzz Levenshtein). OCR results come from the cache of
:mod:`.corpus_cache`.
"""
from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conveyor.tools.evaluation.cer import corpus_cer
from conveyor.tools.evaluation.corpus_cache import cached_pages, cached_raw_ocr

__all__ = ["ocr_rows", "line_pairs"]


def _sroie_boxes(box_csv: Path) -> list[tuple[str, tuple[float, float, float, float]]]:
    """``(text, (x0, y0, x1, y1))`` of each annotated line of a SROIE ``box/*.csv``, in file order."""
    boxes = []
    with open(box_csv, newline="", encoding="utf-8", errors="replace") as fh:
        for row in csv.reader(fh):
            if len(row) >= 9:
                xs, ys = [float(v) for v in row[0:8:2]], [float(v) for v in row[1:8:2]]
                boxes.append((",".join(row[8:]), (min(xs), min(ys), max(xs), max(ys))))
    return boxes


def _sroie_reference(box_csv: Path) -> str:
    return "\n".join(text for text, _ in _sroie_boxes(box_csv))


def line_pairs(lines: list, boxes: list[tuple[str, tuple[float, float, float, float]]], *,
               repair: bool = True) -> list[tuple[str, str]]:
    """``(hypothesis, reference)`` per annotated line: the OCR boxes whose centre lies in
    the annotated box (grown by half its height), left to right, with their post-OCR
    repair. OCR boxes outside every annotated box (text the annotation skipped) are
    ignored, so this CER measures recognition, not reading order. ``repair=False``
    leaves the OCR text as recognised (the raw baseline)."""
    from conveyor.processors.extract.postocr import fix_confusions

    pairs = []
    centres = [(sum(x for x, _ in line.box) / 4, sum(y for _, y in line.box) / 4, line) for line in lines]
    for text, (x0, y0, x1, y1) in boxes:
        grow = (y1 - y0) / 2
        inside = sorted((cx, line.text) for cx, cy, line in centres
                        if x0 - grow <= cx <= x1 + grow and y0 - grow / 2 <= cy <= y1 + grow / 2)
        hypothesis = " ".join(t for _, t in inside)
        pairs.append((fix_confusions(hypothesis) if repair else hypothesis, text))
    return pairs


def ocr_rows(corpus: Path) -> list[dict[str, Any]]:
    """CER of raw RapidOCR and of the pipeline step by step (rows without deskew, with
    deskew, with two-column reading order, with post-OCR repair = as shipped) on SROIE (``box/`` transcripts) and
    ``linn.png`` (``linn.txt``).

    Page CER compares the page text with the transcript in its annotated line order
    (reading order counts); SROIE's per-line CER compares each annotated line with the
    OCR boxes inside it (recognition only, :func:`line_pairs`)."""
    from conveyor.processors.extract.layout import group_rows

    def plain_rows(lines: list, deskew: bool = False, columns: bool = False) -> str:
        return "\n".join(" ".join(item[0].text for item in row)
                         for row in group_rows(lines, deskew=deskew, columns=columns))

    sets = {
        "sroie": [(img, _sroie_reference(corpus / "sroie" / "box" / f"{img.stem}.csv"))
                  for img in sorted((corpus / "sroie" / "img").glob("*.jpg"))],
        "ocrmypdf-linn": [(corpus / "bad_and_edge_files" / "ocrmypdf" / "linn.png",
                           (corpus / "bad_and_edge_files" / "ocrmypdf" / "linn.txt").read_text(encoding="utf-8"))],
    }
    rows = []
    for dataset, pairs in sets.items():
        pairs = [(path, ref) for path, ref in pairs if path.exists()]
        if not pairs:
            continue
        variants = {
            "raw RapidOCR (defaults)": [(plain_rows(cached_raw_ocr(p)), ref) for p, ref in pairs],
            "pipeline, rows without deskew, columns or repair": [(plain_rows(cached_pages(p)[0]["lines"]), ref)
                                                                 for p, ref in pairs],
            "pipeline, deskewed rows": [(plain_rows(cached_pages(p)[0]["lines"], True), ref) for p, ref in pairs],
            "pipeline, deskewed rows and columns": [(plain_rows(cached_pages(p)[0]["lines"], True, True), ref)
                                                    for p, ref in pairs],
            "pipeline (shipped)": [(cached_pages(p)[0]["text"], ref) for p, ref in pairs],
        }
        if dataset != "sroie":  # linn.png is a palette PNG: RapidOCR's own loader reads palette indices as grey
            variants["raw RapidOCR (defaults) on RGB"] = [(plain_rows(cached_raw_ocr(p, rgb=True)), ref) for p, ref in pairs]
        if dataset == "sroie":
            def per_line(source: Callable[[Path], list], repair: bool) -> list[tuple[str, str]]:
                return [pair for p, _ in pairs for pair in line_pairs(  # noqa: B023 - called within this iteration
                    source(p), _sroie_boxes(corpus / "sroie" / "box" / f"{p.stem}.csv"), repair=repair)]

            variants["raw RapidOCR (defaults), per line"] = per_line(cached_raw_ocr, False)
            variants["pipeline without post-OCR repair, per line"] = per_line(lambda p: cached_pages(p)[0]["lines"], False)
            variants["pipeline (shipped), per line"] = per_line(lambda p: cached_pages(p)[0]["lines"], True)
        for variant, hyp_ref in variants.items():
            sensitive, insensitive = corpus_cer(hyp_ref), corpus_cer(hyp_ref, case_sensitive=False)
            # SROIE's transcripts are upper-cased (the receipts are not): compare case-insensitively there.
            fold = dataset == "sroie"
            rows.append({"section": "ocr", "dataset": dataset, "field": variant, "metric": "CER",
                         "value": round(insensitive if fold else sensitive, 4),
                         "case": "insensitive" if fold else "sensitive",
                         "value_other_case": round(sensitive if fold else insensitive, 4),
                         "n": len(hyp_ref), "aim": None, "met": None,
                         "library": "rapidfuzz.distance.Levenshtein"})
    return rows
