"""Evaluation report plumbing: rows, sections, the runner, JSON and markdown output.

A *section* is a function ``section(ctx) -> SectionResult`` that measures one
part of the pipeline (intent classification, document types, later extraction,
drift, duplicates …). It raises :class:`SkipSection` when its inputs are absent
(e.g. ``../shared/corpus`` is not there). :func:`run_sections` runs the sections
it is given, never lets one section's failure stop the others, and
:func:`write_report` writes ``eval.json`` (everything, including each
section's details) and ``eval.md`` (one table: section, metric, value, aim,
met?, note) to the output folder.
"""
from __future__ import annotations

import json
import math
import platform
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

#: Default output folder, relative to the working directory.
DEFAULT_OUT_DIR = Path("build") / "eval"


class SkipSection(Exception):
    """A section's inputs are absent; the message says which."""


@dataclass
class EvalContext:
    """What every section may read.

    Attributes:
        corpus: the shared corpus folder (``../shared/corpus``).
        cache_dir: embedding cache (``CONVEYOR_TRAIN_CACHE``).
        models_dir: folder of the shipped models.
        threads: CPU threads a section may use.
    """

    corpus: Path
    cache_dir: Path
    models_dir: Path
    threads: int = 2

    def require_corpus(self) -> Path:
        """The corpus folder.

        Raises:
            SkipSection: it does not exist.
        """
        corpus = Path(self.corpus)
        if not corpus.is_dir():
            raise SkipSection(f"shared corpus not found at {corpus}")
        return corpus


@dataclass
class Row:
    """One measured figure.

    ``aim`` is ``(">=" | "<=", target)`` or None (reported, no aim); ``met`` is
    derived from it (None without an aim or without a value).
    """

    section: str
    metric: str
    value: float | int | str | None
    aim: tuple[str, float] | None = None
    note: str = ""

    @property
    def met(self) -> bool | None:
        if self.aim is None or not isinstance(self.value, (int, float)) or isinstance(self.value, bool):
            return None
        op, target = self.aim
        if op == ">=":
            return self.value >= target
        if op == "<=":
            return self.value <= target
        raise ValueError(f"unknown aim operator {op!r}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["aim"] = None if self.aim is None else f"{self.aim[0]} {self.aim[1]:g}"
        d["met"] = self.met
        return d


@dataclass
class SectionResult:
    """Rows of a section plus free-form details (tables, thresholds, sources)."""

    name: str
    rows: list[Row] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    status: str = "ok"  # ok | skipped | error
    message: str = ""
    seconds: float = 0.0


Section = Callable[[EvalContext], SectionResult]


def run_sections(sections: Mapping[str, Section], ctx: EvalContext) -> list[SectionResult]:
    """Run each section; a skipped or failing section becomes a result with that status."""
    results = []
    for name, fn in sections.items():
        t0 = time.perf_counter()
        try:
            res = fn(ctx)
        except SkipSection as exc:
            res = SectionResult(name, status="skipped", message=str(exc))
        except Exception as exc:  # noqa: BLE001 - reported, the other sections still run
            res = SectionResult(name, status="error", message=f"{type(exc).__name__}: {exc}",
                                details={"traceback": traceback.format_exc()})
        res.seconds = round(time.perf_counter() - t0, 2)
        results.append(res)
    return results


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return f"{value:.4f}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


def to_markdown(results: list[SectionResult]) -> str:
    """One markdown table of every row (section, metric, value, aim, met?, note), then a line per
    skipped or failed section."""
    lines = ["| section | metric | value | aim | met? | note |", "|---|---|---|---|---|---|"]
    for res in results:
        for row in res.rows:
            aim = "–" if row.aim is None else f"{row.aim[0].replace('>=', '≥').replace('<=', '≤')} {row.aim[1]:g}"
            met = {True: "yes", False: "**no**", None: "–"}[row.met]
            note = row.note.replace("|", "\\|")
            lines.append(f"| {row.section} | {row.metric} | {_fmt(row.value)} | {aim} | {met} | {note} |")
    for res in results:
        if res.status != "ok":
            lines.append(f"\n*{res.name}*: {res.status} — {res.message}")
    return "\n".join(lines) + "\n"


def write_report(results: list[SectionResult], out_dir: Path) -> dict[str, Path]:
    """Write ``eval.json`` and ``eval.md`` to ``out_dir`` (created); returns their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    doc = {
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "python": platform.python_version(),
        "sections": [
            {"name": r.name, "status": r.status, "message": r.message, "seconds": r.seconds,
             "rows": [row.to_dict() for row in r.rows], "details": r.details}
            for r in results
        ],
        "aims_met": all(row.met is not False for r in results for row in r.rows),
    }
    paths = {"json": out_dir / "eval.json", "markdown": out_dir / "eval.md"}
    paths["json"].write_text(json.dumps(doc, indent=2, ensure_ascii=False, default=float) + "\n", encoding="utf-8")
    paths["markdown"].write_text(to_markdown(results), encoding="utf-8")
    return paths
