"""The ``conveyor`` command line. Output meant for scripts is one JSON object per line."""
from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Optional

import click

from streams.settings import Settings


def _settings() -> Settings:
    return Settings.from_env()


def _echo(obj: dict) -> None:
    click.echo(json.dumps(obj, default=str, ensure_ascii=False))


def _setup_logging(settings: Settings) -> None:
    logging.basicConfig(level=getattr(logging, settings.log_level.upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)


@click.group()
def main() -> None:
    """Conveyor: streaming document and text intake on Kafka (extract → embed → index/classify)."""


# -- stack ---------------------------------------------------------------------------
@main.group()
def stack() -> None:
    """Local stack: Kafka (KRaft) and Apicurio Registry on 127.0.0.1; Milvus Lite embedded."""


@stack.command("up")
@click.option("--timeout", default=300.0, show_default=True, help="Seconds to wait for readiness.")
def stack_up(timeout: float) -> None:
    """Start the stack (idempotent) and wait until it answers."""
    from streams.stack import StackError, up

    try:
        _echo(up(_settings(), timeout=timeout, log=lambda m: click.echo(m, err=True)))
    except StackError as exc:
        raise click.ClickException(str(exc)) from exc


@stack.command("down")
def stack_down() -> None:
    """Stop what ``stack up`` started."""
    from streams.stack import down

    _echo(down(_settings(), log=lambda m: click.echo(m, err=True)))


@stack.command("status")
def stack_status() -> None:
    """Report whether each part of the stack is up."""
    from streams.stack import status

    st = status(_settings())
    _echo(st)
    if not all(part.get("up", True) for part in st.values() if isinstance(part, dict)):
        sys.exit(1)


# -- topics --------------------------------------------------------------------------
@main.group()
def topics() -> None:
    """Topic catalogue of the namespace (CONVEYOR_NAMESPACE)."""


@topics.command("create")
def topics_create() -> None:
    """Create all topics, register their schemas, set BACKWARD compatibility."""
    from streams.admin import create_topics

    for name, state in create_topics(_settings()).items():
        _echo({"topic": name, "state": state})


@topics.command("list")
def topics_list() -> None:
    """Print every topic of the catalogue and whether it exists."""
    from streams.admin import list_topics

    for row in list_topics(_settings()):
        _echo(row)


# -- run -----------------------------------------------------------------------------
@main.command("run")
@click.argument("names", nargs=-1, required=True)
def run(names: tuple[str, ...]) -> None:
    """Run processors: NAMES are extract, embed, index, classify, drift, or ``all``.

    Several runner stages given together share this process (one thread each).
    ``all`` supervises every processor as a child process and restarts crashes.
    """
    settings = _settings()
    _setup_logging(settings)
    from streams import metrics

    if names == ("all",):
        from streams.supervisor import Supervisor, process_groups

        Supervisor(settings, process_groups(settings)).run_forever()
        return
    metrics.serve(settings.metrics_port)
    if names == ("drift",):
        from streams.drift import run_drift

        run_drift(settings)
        return
    from streams.supervisor import run_stages

    try:
        run_stages(list(names), settings)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc


# -- produce -------------------------------------------------------------------------
@main.group()
def produce() -> None:
    """Produce inputs: documents (files) or texts (CSV rows)."""


@produce.command("documents")
@click.argument("paths", nargs=-1, required=True)
def produce_documents(paths: tuple[str, ...]) -> None:
    """Produce files and/or directories (recursively); one JSON line per file.

    Unreadable paths are reported with an ``error`` and make the exit code 1.
    """
    from streams.io import InputProducer, iter_files

    failures = 0
    with InputProducer(_settings()) as producer:
        for path, error in iter_files(paths):
            if error is None:
                try:
                    _echo(producer.document(path))
                    continue
                except OSError as exc:
                    error = f"cannot read {path}: {exc.strerror or exc}"
            failures += 1
            _echo({"path": str(path), "error": error})
    if failures:
        sys.exit(1)


@produce.command("texts")
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--text-column", required=True, help="Column holding the text.")
@click.option("--id-column", default=None, help="Column holding the id (default: generated).")
@click.option("--limit", type=int, default=None, help="Produce at most N rows.")
def produce_texts(csv_file: Path, text_column: str, id_column: Optional[str], limit: Optional[int]) -> None:
    """Produce the rows of CSV_FILE as texts; one JSON line per text."""
    from streams.io import InputProducer, read_texts_csv

    with InputProducer(_settings()) as producer:
        try:
            for doc_id, text in read_texts_csv(csv_file, text_column, id_column, limit):
                _echo(producer.text(text, doc_id=doc_id, source=csv_file.name))
        except KeyError as exc:
            raise click.ClickException(str(exc.args[0])) from exc


# -- consume -------------------------------------------------------------------------
@main.command("consume")
@click.argument("topic")
@click.option("--from-beginning", is_flag=True, help="Start at the earliest offset.")
@click.option("--max-messages", type=int, default=None, help="Stop after N records.")
@click.option("--timeout", type=float, default=10.0, show_default=True, help="Stop after S idle seconds.")
def consume_cmd(topic: str, from_beginning: bool, max_messages: Optional[int], timeout: float) -> None:
    """Print TOPIC's records as JSON lines (a role like ``predictions`` or a full name)."""
    from streams.io import abbreviate, consume
    from streams.topics import catalogue

    settings = _settings()
    specs = catalogue(settings)
    name = specs[topic].name if topic in specs else topic
    for rec in consume(settings, name, from_beginning=from_beginning, max_messages=max_messages, timeout=timeout):
        _echo(abbreviate(rec))


# -- dlq -----------------------------------------------------------------------------
@main.group()
def dlq() -> None:
    """Dead-letter topics."""


@dlq.command("list")
@click.option("--processor", default=None, help="Only this processor's dead letters.")
@click.option("--timeout", type=float, default=60.0, show_default=True,
              help="Seconds to read each dead-letter topic to its end.")
def dlq_list(processor: Optional[str], timeout: float) -> None:
    """Print every dead letter with its error headers, as JSON lines."""
    from dlq.inspect import list_dead_letters

    for rec in list_dead_letters(_settings(), timeout=timeout, processor=processor):
        _echo(rec)


# -- demo ----------------------------------------------------------------------------
@main.command("demo")
@click.option("--texts", "n_texts", type=int, default=200, show_default=True, help="banking77 texts to produce.")
@click.option("--timeout", type=float, default=900.0, show_default=True, help="Seconds to wait for results.")
def demo(n_texts: int, timeout: float) -> None:
    """The main job: stack up, topics, processors, demo corpus → summary. Exit 1 if any input is
    unaccounted. The stack stays up afterwards (``conveyor stack down`` stops it)."""
    from streams.demo import run_demo

    settings = _settings()
    _setup_logging(settings)
    ok = run_demo(settings, n_texts=n_texts, timeout=timeout)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
