"""Kleister NDA contracts: ``applicaai/kleister-nda``, ``train/`` only (254 NDAs from SEC EDGAR).

``train/in.tsv.xz`` names each document's PDF (under ``documents/``, which holds every split: only
the files ``train/in.tsv.xz`` names are read) and ``train/expected.tsv`` holds its keys on the same
line: ``party=Nike_Inc.`` (one per party, ``_`` for spaces), ``effective_date=2001-04-18``,
``jurisdiction=Oregon``, ``term=7_years``. A document without an ``effective_date`` key does not
state one. ``dev-0/`` and ``test-A/`` are kept for an evaluation outside the project.
"""
from __future__ import annotations

import lzma
from collections.abc import Iterator

from conveyor.tools.datasets.base import DatasetSource, Item
from conveyor.tools.datasets.clones import Clone

SPLIT = "train"


def kleister_truth(expected_line: str) -> tuple[dict, dict]:
    """``(truth, raw)`` of one ``expected.tsv`` line: ``parties`` (names, ``_`` → space) and
    ``effective_date`` (ISO, None when the line has none); raw keeps every key's values."""
    raw: dict[str, list[str]] = {}
    for token in expected_line.split():
        key, _, value = token.partition("=")
        if value:
            raw.setdefault(key, []).append(value.replace("_", " "))
    dates = raw.get("effective_date")
    truth = {"parties": raw.get("party", []), "effective_date": dates[0] if dates else None}
    return truth, raw


def items(clone: Clone) -> Iterator[Item]:
    """Every training NDA (PDF) with its expected keys."""
    split = clone.files(SPLIT)
    documents = clone.files("documents")
    inputs = clone.read(split[f"{SPLIT}/in.tsv.xz"])
    expected = clone.read(split[f"{SPLIT}/expected.tsv"])
    if inputs is None or expected is None:
        return
    names = [line.split("\t", 1)[0] for line in lzma.decompress(inputs).decode("utf-8").splitlines() if line]
    for name, line in zip(names, expected.decode("utf-8").splitlines()):
        path = f"documents/{name}"
        data = clone.read(documents[path]) if path in documents else None
        if data is None:
            continue
        truth, raw = kleister_truth(line)
        yield Item(path=path, data=data, doc_type="contract",
                   type_rule="Kleister NDA: non-disclosure agreements filed with the SEC (EDGAR)", truth=truth,
                   label_source=f"{SPLIT}/expected.tsv (line of {name} in {SPLIT}/in.tsv.xz)",
                   group="kleister:" + "|".join(sorted(p.lower() for p in truth["parties"])), raw=raw)


SOURCE = DatasetSource(
    name="kleister-nda", repo="applicaai/kleister-nda", split=SPLIT,
    licence="not stated in the repository; the documents are public SEC EDGAR filings: read, never committed",
    items=items,
)
