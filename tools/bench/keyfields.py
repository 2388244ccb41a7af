"""The key-field model's cost (issue 24): CPU per page beside the rules alone, and its size.

For each document of the demo corpus (shippable receipts, invoices and forms; OCR and text layer
from the evaluation cache, so OCR itself is not timed), the extract stage's field step is run with
the model (:func:`conveyor.processors.extract.fields_from_pages`) and without it (``use_model=False``),
``repeat`` times each after a warm-up, with the per-text memo caches emptied before each run (as a
new document finds them); CPU time (``time.process_time``) per page is the median over the repeats,
averaged over the documents. Targets: the model adds at most
:data:`CPU_AIM_MS` per page and :data:`SIZE_AIM_MB` to the image (its folder on disk).

Run::

    python -m conveyor.tools.bench.keyfields [--repeat 5]
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

CPU_AIM_MS = 50.0
SIZE_AIM_MB = 50.0


def _clear_caches() -> None:
    """Empty the per-text memo caches of the field code (``functools.lru_cache``): a new document
    meets them empty, so each timed run must too; what loads once per process (the models, the
    legal-form and region lists) stays loaded."""
    import importlib

    for name in ("conveyor.processors.extract.fields.dates", "conveyor.processors.extract.fields.normalise",
                 "conveyor.processors.extract.kie.candidates", "conveyor.processors.extract.kie.features"):
        module = importlib.import_module(name)
        for attr in vars(module).values():
            if hasattr(attr, "cache_clear") and attr.cache_info().maxsize not in (None, 1):
                attr.cache_clear()


def _cpu_ms(fn: Callable[[], Any], repeat: int) -> float:
    fn()  # warm-up: model loading, the once-per-process lists
    times = []
    for _ in range(repeat):
        _clear_caches()
        t0 = time.process_time()
        fn()
        times.append((time.process_time() - t0) * 1000)
    return statistics.median(times)


def keyfield_cost(paths: list[Path], repeat: int = 5) -> list[dict[str, Any]]:
    """Rows ``{"document", "pages", "rules_ms_per_page", "model_ms_per_page", "added_ms_per_page"}`` and a
    summary row ``{"summary": ..., "model_mb", "targets"}`` (see the module docstring)."""
    from conveyor.processors.extract import fields_from_pages
    from conveyor.processors.extract.kie import default_model
    from conveyor.tools.evaluation.corpus_cache import cached_pages

    model = default_model()
    rows: list[dict[str, Any]] = []
    for path in paths:
        pages = cached_pages(path)
        rules = _cpu_ms(lambda: fields_from_pages(pages, use_model=False), repeat) / len(pages)  # noqa: B023 - timed now
        both = _cpu_ms(lambda: fields_from_pages(pages, model=model), repeat) / len(pages)  # noqa: B023 - timed now
        rows.append({"document": path.name, "pages": len(pages), "rules_ms_per_page": round(rules, 1),
                     "model_ms_per_page": round(both, 1), "added_ms_per_page": round(both - rules, 1)})
    added = statistics.mean(r["added_ms_per_page"] for r in rows) if rows else None
    size = sum(p.stat().st_size for p in model.directory.iterdir()) / 1e6 if model else None
    summary = {"summary": "keyfield model", "documents": len(rows), "added_ms_per_page_mean": round(added, 1)
               if added is not None else None, "added_ms_per_page_max": max((r["added_ms_per_page"] for r in rows),
                                                                            default=None),
               "model_mb": round(size, 2) if size is not None else None,
               "targets": [{"target": f"key-field model adds <= {CPU_AIM_MS:.0f} ms CPU per page",
                            "value": round(added, 1) if added is not None else None, "aim": CPU_AIM_MS,
                            "met": added is not None and added <= CPU_AIM_MS},
                           {"target": f"key-field model adds <= {SIZE_AIM_MB:.0f} MB to the image",
                            "value": round(size, 2) if size is not None else None, "aim": SIZE_AIM_MB,
                            "met": size is not None and size <= SIZE_AIM_MB}]}
    return rows + [summary]


def demo_documents() -> list[Path]:
    """The demo corpus's documents that have text (not its damaged files)."""
    from conveyor.tools.demo.run import CORPUS

    return sorted(p for folder in ("receipts", "invoices", "forms") for p in (CORPUS / folder).iterdir())


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m conveyor.tools.bench.keyfields", description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)
    for row in keyfield_cost(demo_documents(), args.repeat):
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
