"""``make eval``: measured quality figures of the pipeline, as JSON and a markdown table.

:func:`run_evaluation` runs the registered sections (:data:`SECTIONS`, one
function per part of the pipeline returning rows of metric, value, aim) and
writes ``eval.json`` and ``eval.md`` to ``build/eval/`` (or another folder).
Sections whose inputs are absent (``../shared/corpus`` missing) are skipped
with a note. To add a section (extraction, drift, duplicates …), write a
``section(ctx) -> SectionResult`` function and add it to :data:`SECTIONS`.

Run::

    python -m conveyor.tools.evaluation [--out build/eval] [--corpus ../shared/corpus] [--section intent]
"""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from conveyor.tools.evaluation.decisions import decisions_section
from conveyor.tools.evaluation.doctype import doctype_section
from conveyor.tools.evaluation.drift import drift_section
from conveyor.tools.evaluation.duplicates import duplicates_section
from conveyor.tools.evaluation.extraction import extraction_section
from conveyor.tools.evaluation.fields import fields_section
from conveyor.tools.evaluation.intent import intent_section
from conveyor.tools.evaluation.report import (
    DEFAULT_OUT_DIR,
    EvalContext,
    Row,
    Section,
    SectionResult,
    SkipSection,
    run_sections,
    write_report,
)

__all__ = ["SECTIONS", "run_evaluation", "EvalContext", "Row", "SectionResult", "SkipSection", "DEFAULT_OUT_DIR"]

#: Section name → function, in report order.
SECTIONS: dict[str, Section] = {
    "intent": intent_section,
    "doctype": doctype_section,
    "decisions": decisions_section,
    "extraction": extraction_section,
    "fields": fields_section,
    "duplicates": duplicates_section,
    "drift": drift_section,
}


def run_evaluation(
    out_dir: str | Path = DEFAULT_OUT_DIR,
    *,
    corpus: str | Path | None = None,
    cache_dir: str | Path | None = None,
    models_dir: str | Path | None = None,
    sections: Iterable[str] | None = None,
    threads: int = 2,
) -> tuple[list[SectionResult], dict[str, Path]]:
    """Run the sections and write the report.

    Args:
        out_dir: folder for ``eval.json`` / ``eval.md`` (created).
        corpus: shared corpus (default ``../shared/corpus`` next to the repository).
        cache_dir: embedding cache (default ``CONVEYOR_TRAIN_CACHE``).
        models_dir: shipped models (default ``processors/models``).
        sections: names from :data:`SECTIONS` (default all).
        threads: CPU threads for embedding texts that are not cached.

    Returns:
        ``(results, paths)``.

    Raises:
        ValueError: an unknown section name.
    """
    from conveyor.processors.models import MODELS_DIR
    from conveyor.tools.training.common import DEFAULT_CACHE_DIR, DEFAULT_CORPUS

    names = list(sections) if sections else list(SECTIONS)
    unknown = [n for n in names if n not in SECTIONS]
    if unknown:
        raise ValueError(f"unknown sections {unknown}; choose from {list(SECTIONS)}")
    ctx = EvalContext(
        corpus=Path(corpus) if corpus else DEFAULT_CORPUS,
        cache_dir=Path(cache_dir) if cache_dir else DEFAULT_CACHE_DIR,
        models_dir=Path(models_dir) if models_dir else MODELS_DIR,
        threads=threads,
    )
    results = run_sections({n: SECTIONS[n] for n in names}, ctx)
    return results, write_report(results, Path(out_dir))
