"""``conveyor eval``: the click command wrapping :func:`conveyor.tools.evaluation.run_evaluation`
(registered with the other tool commands in :mod:`conveyor.tools.cli`)."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from conveyor.tools.evaluation.report import DEFAULT_OUT_DIR


@click.command("eval")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_OUT_DIR,
              show_default=True, help="folder for eval.json and eval.md")
@click.option("--corpus", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="shared corpus (default ../shared/corpus)")
@click.option("--section", "sections", multiple=True, help="run only these sections (repeatable)")
@click.option("--threads", type=int, default=2, show_default=True, help="threads for embedding uncached texts")
@click.option("--strict", is_flag=True, help="exit 1 when a measured figure misses its aim")
def eval_command(out_dir: Path, corpus: Path | None, sections: tuple[str, ...], threads: int, strict: bool) -> None:
    """Measure model quality and routing; write eval.json and eval.md.

    Exit status 1 when a section fails (or, with --strict, an aim is missed);
    sections whose data is absent are skipped.
    """
    from conveyor.tools.evaluation import run_evaluation

    try:
        results, paths = run_evaluation(out_dir, corpus=corpus, sections=sections or None, threads=threads)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    click.echo(paths["markdown"].read_text(encoding="utf-8"))
    click.echo(f"wrote {paths['json']} and {paths['markdown']}")
    failed = [r.name for r in results if r.status == "error"]
    missed = [f"{row.section}.{row.metric}" for r in results for row in r.rows if row.met is False]
    for r in results:
        if r.status == "error":
            click.echo(f"section {r.name} failed: {r.message}", err=True)
    if missed:
        click.echo(f"aims missed: {', '.join(missed)}", err=True)
    if failed or (strict and missed):
        sys.exit(1)
