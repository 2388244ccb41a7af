"""Evaluation helpers: the CER function, and the extraction evaluation over the
invoice2data PDFs (text layer: fast) read from ../shared/corpus (skipped when absent)."""
from __future__ import annotations

import pytest

from conveyor.tools.evaluation.cer import cer, collapse_whitespace, corpus_cer


def test_cer_counts_edits_per_reference_character():
    assert cer("TOTAL 27.55", "TOTAL 27.55") == 0.0
    assert cer("T0TAL 27.55", "TOTAL 27.55") == pytest.approx(1 / 11)  # one substitution
    assert cer("TOTAL", "TOTAL 27.55") == pytest.approx(6 / 11)  # six deletions
    assert cer("abc", "") == 1.0 and cer("", "") == 0.0
    assert cer("total", "TOTAL", case_sensitive=False) == 0.0


def test_cer_ignores_how_whitespace_and_lines_are_laid_out():
    assert collapse_whitespace(" a \n\n b\t c ") == "a b c"
    assert cer("NO. 53,\nJALAN BESAR", "NO. 53, JALAN   BESAR") == 0.0


def test_corpus_cer_is_micro_averaged():
    pairs = [("abcd", "abcd"), ("x", "y")]  # 0 edits / 4 chars, 1 edit / 1 char
    assert corpus_cer(pairs) == pytest.approx(1 / 5)


def test_invoice2data_pdf_extraction_meets_its_floor(corpus_dir, tmp_path, monkeypatch):
    from conveyor.tools.evaluation import extraction

    monkeypatch.setenv("CONVEYOR_EVAL_CACHE", str(tmp_path))  # text layer only: nothing slow to cache
    documents: list[dict] = []
    rows = extraction._score(
        "invoice2data-pdf", extraction.invoice2data_items(corpus_dir, (".pdf",)), extraction._I2D_FIELDS, documents
    )
    accuracy = {row["field"]: row["value"] for row in rows}
    assert min(row["n"] for row in rows) >= 7  # the Sammy Maystone test invoice has no amount
    # Floors a little under the measured figures (amount, date, currency 1.0; invoice number 0.875):
    # a regression in the field rules fails here.
    assert accuracy["amount"] >= 0.85
    assert accuracy["date"] >= 0.85
    assert accuracy["currency"] >= 0.85
    assert accuracy["invoice_number"] >= 0.75
    assert all(doc["predicted"] is not None for doc in documents if doc["field"] == "date")
