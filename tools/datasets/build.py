"""Build the training set: clones → cache files, manifest, the extract stage's text and OCR.

Run::

    python -m conveyor.tools.datasets [--clones DIR ...] [--out DIR] [--workers N] [--no-extract]

``--clones`` (repeatable; default ``$CONVEYOR_DATASETS_CLONES``, ``:``-separated, else ``../datasets``
beside the checkout) are folders holding the clones (:func:`conveyor.tools.datasets.clones.find_clone`).
A source whose clone is missing is listed with the command that gets it, and the build goes on
with the others; the exit code is 0 when at least one source was built, 1 otherwise.
Extraction (RapidOCR for images, the text layer for PDFs) is the slow part: about 1-2.5 s per
receipt image per core; it is cached, so a second build takes seconds.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from conveyor.tools.datasets import datasets_dir
from conveyor.tools.datasets.base import DatasetSource
from conveyor.tools.datasets.clones import CloneError, find_clone

__all__ = ["build", "main", "manifest_digest"]

CLONES_ENV = "CONVEYOR_DATASETS_CLONES"
REPO_ROOT = Path(__file__).resolve().parents[2]


def default_clone_roots() -> list[Path]:
    """``$CONVEYOR_DATASETS_CLONES`` (``:``-separated), else ``../datasets`` beside the checkout."""
    value = os.environ.get(CLONES_ENV)
    return [Path(p) for p in value.split(os.pathsep) if p] if value else [REPO_ROOT.parent / "datasets"]


def manifest_digest(documents: list[dict[str, Any]]) -> str:
    """sha256 of what a model learns from: each document's source, path, sha256, type and truth
    (sorted keys, in path order), so an unchanged training set gives the same digest."""
    keep = [{k: d.get(k) for k in ("source", "path", "sha256", "type", "truth")} for d in documents]
    keep.sort(key=lambda d: (d["source"], d["path"]))
    return hashlib.sha256(json.dumps(keep, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def _materialise(source: DatasetSource, roots: list[Path], out: Path, seen: dict[str, str]) -> tuple[dict, list[dict]]:
    """Write ``source``'s documents into ``out/files/<name>/``; returns ``(source summary, documents)``."""
    clone = find_clone(roots, source.repo)
    owner, name = source.repo.split("/")
    summary: dict[str, Any] = {"repo": source.repo, "split": source.split, "licence": source.licence}
    if clone is None:
        summary["missing"] = (f"no clone of {source.repo} under {', '.join(map(str, roots))}; get it with: "
                              f"git clone https://github.com/{source.repo} {roots[0] / name}")
        return summary, []
    summary.update(clone=str(clone.git_dir), commit=clone.commit)
    folder = out / "files" / source.name
    folder.mkdir(parents=True, exist_ok=True)
    documents, duplicates = [], []
    for item in source.items(clone):
        sha = hashlib.sha256(item.data).hexdigest()
        if sha in seen:
            duplicates.append({"path": item.path, "same_bytes_as": seen[sha]})
            continue
        seen[sha] = f"{source.name}:{item.path}"
        target = folder / f"{sha}{Path(item.path).suffix.lower()}"
        if not target.exists():
            tmp = target.with_suffix(target.suffix + ".tmp")
            tmp.write_bytes(item.data)
            tmp.replace(target)
        documents.append({"source": source.name, "repo": source.repo, "commit": summary["commit"], "path": item.path,
                          "sha256": sha, "file": str(target.relative_to(out)), "type": item.doc_type,
                          "type_rule": item.type_rule, "truth": item.truth, "label_source": item.label_source,
                          "group": item.group, "raw": item.raw})
    counts: dict[str, int] = {}
    for d in documents:
        counts[d["type"]] = counts.get(d["type"], 0) + 1
    summary.update(documents=len(documents), per_type=counts, duplicates_dropped=duplicates)
    return summary, documents


def _extract_one(path: str) -> dict[str, Any]:
    """Extraction status of one cached file (the pages themselves go to the evaluation cache)."""
    from conveyor.processors.errors import ConveyorError
    from conveyor.tools.evaluation.corpus_cache import cached_pages

    t0 = time.perf_counter()
    try:
        pages = cached_pages(Path(path))
    except ConveyorError as exc:  # a damaged or empty document: recorded, left out of training
        return {"status": "error", "error": f"{type(exc).__name__}: {exc}"}
    return {"status": "ok", "pages": len(pages), "methods": sorted({p["method"] for p in pages}),
            "seconds": round(time.perf_counter() - t0, 2)}


def extract_all(documents: list[dict[str, Any]], out: Path, workers: int) -> None:
    """Run the extract stage over every document (``workers`` processes), recording ``extraction``."""
    paths = [str(out / d["file"]) for d in documents]
    t0, done = time.perf_counter(), 0
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for doc, status in zip(documents, pool.map(_extract_one, paths, chunksize=4)):
            doc["extraction"] = status
            done += 1
            if done % 50 == 0 or done == len(paths):
                print(f"  extracted {done}/{len(paths)} ({time.perf_counter() - t0:.0f}s)", flush=True)


def build(roots: list[Path], out: Path, *, workers: int = 2, extract: bool = True,
          sources: tuple[DatasetSource, ...] | None = None) -> dict[str, Any]:
    """Build the cache at ``out`` from the clones under ``roots``; returns the manifest written."""
    from conveyor.tools.datasets import SOURCES

    out.mkdir(parents=True, exist_ok=True)
    seen: dict[str, str] = {}
    summaries, documents = {}, []
    for source in sources or SOURCES:
        try:
            summary, docs = _materialise(source, roots, out, seen)
        except CloneError as exc:
            summary, docs = {"repo": source.repo, "missing": f"clone unreadable: {exc}"}, []
        summaries[source.name] = summary
        documents += docs
        print(f"{source.name}: " + (summary.get("missing") or f"{len(docs)} documents {summary['per_type']}, "
                                    f"{len(summary['duplicates_dropped'])} byte duplicates dropped"), flush=True)
    if extract and documents:
        extract_all(documents, out, workers)
    manifest = {
        "description": "training documents of the public sources issue 24 names (training splits only); "
                       "built by python -m conveyor.tools.datasets",
        "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "manifest_sha256": manifest_digest(documents),
        "sources": summaries,
        "documents": documents,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return manifest


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Build the training set from local clones into a cache.")
    ap.add_argument("--clones", type=Path, action="append", help="folder holding the clones (repeatable)")
    ap.add_argument("--out", type=Path, default=None, help="cache folder (default $CONVEYOR_DATASETS_DIR)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2, help="extraction processes")
    ap.add_argument("--no-extract", action="store_true", help="materialise and label only")
    args = ap.parse_args(argv)
    out = args.out or datasets_dir()
    manifest = build(args.clones or default_clone_roots(), out, workers=args.workers, extract=not args.no_extract)
    missing = {n: s["missing"] for n, s in manifest["sources"].items() if "missing" in s}
    failed = [d for d in manifest["documents"] if (d.get("extraction") or {}).get("status") == "error"]
    print(f"wrote {out / 'manifest.json'}: {len(manifest['documents'])} documents, manifest sha256 "
          f"{manifest['manifest_sha256'][:12]}; extraction failed for {len(failed)}")
    for name, why in missing.items():
        print(f"MISSING {name}: {why}")
    return 0 if manifest["documents"] else 1
