"""Labelled training data from public repositories, built reproducibly into a local cache.

``make datasets`` (``python -m conveyor.tools.datasets``) reads local clones of the repositories
issue 24 names — only the split each may be learned from — and writes, under
``$CONVEYOR_DATASETS_DIR`` (default ``~/.cache/conveyor/datasets``, outside the repository):

* ``files/<source>/<sha256><suffix>``: every document once (byte-identical files dropped);
* ``manifest.json``: per document its repository, commit, path, sha256, type and why, true key
  fields and the file they were read from (``label_source``), CV group and extraction status;
  per source its licence, counts and, when its clone is missing, how to get it;
* the extract stage's own text and OCR boxes per document, in the evaluation cache
  (:mod:`conveyor.tools.evaluation.corpus_cache`, ``$CONVEYOR_EVAL_CACHE``), which training and
  evaluation read back.

Sources (one module each): :mod:`.sroie` (receipts, company / date / address / total),
:mod:`.funsd` (forms), :mod:`.kleister` (NDAs: parties, effective date), :mod:`.zugferd` (invoices,
credit notes, purchase orders with their XML truth). Nothing from them is committed; models
trained on them record the manifest's sha256.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

__all__ = ["DATASETS_ENV", "datasets_dir", "load_manifest", "require_manifest", "SOURCES"]

#: Environment variable naming the cache folder.
DATASETS_ENV = "CONVEYOR_DATASETS_DIR"


def datasets_dir() -> Path:
    """``$CONVEYOR_DATASETS_DIR`` or ``~/.cache/conveyor/datasets``."""
    return Path(os.environ.get(DATASETS_ENV) or Path.home() / ".cache" / "conveyor" / "datasets")


def load_manifest(root: Path | None = None) -> dict[str, Any] | None:
    """The built ``manifest.json`` (documents' ``file`` made absolute), or None when not built."""
    root = root or datasets_dir()
    try:
        manifest = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    for doc in manifest["documents"]:
        doc["file"] = str(root / doc["file"])
    return manifest


def require_manifest(root: Path | None = None) -> dict[str, Any]:
    """:func:`load_manifest`, or SystemExit with one line saying how to build it (the document models
    learn mostly from these datasets: training without them would silently lose most of the data)."""
    manifest = load_manifest(root)
    if manifest is None or not manifest.get("documents"):
        raise SystemExit(f"no built datasets at {root or datasets_dir()}: run `make datasets CLONES=<folder with "
                         "the clones>` first (docs/quality.md, Training data)")
    return manifest


def _sources():
    from conveyor.tools.datasets import funsd, kleister, sroie, zugferd

    return (sroie.SOURCE, funsd.SOURCE, kleister.SOURCE, zugferd.SOURCE)


def __getattr__(name: str):
    if name == "SOURCES":
        return _sources()
    raise AttributeError(name)
