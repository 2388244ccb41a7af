"""The ``conveyor`` command line. Output meant for scripts is one JSON object per line."""
from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, TypeVar

import click

from conveyor.streams.cli.acls import acls as _acls_command
from conveyor.streams.cli.common import echo_json, kafka_settings, settings_from_env
from conveyor.streams.cli.models import models as _models_group
from conveyor.streams.config.settings import Settings
from conveyor.streams.drift.cli import drift as _drift_group

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

    from conveyor.dlq.inspect import DeadLetter, DeadLetterFilter

_F = TypeVar("_F", bound=Callable[..., Any])


def setup_logging(settings: Settings) -> None:
    """Log to stderr at ``settings.log_level`` in ``settings.log_format`` (:mod:`conveyor.streams.telemetry.logs`)."""
    from conveyor.streams.telemetry.logs import configure

    try:
        configure(settings.log_level, settings.log_format)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None


class _Main(click.Group):
    """The command group; a Kafka connection or authentication failure (its message names the
    broker, protocol, mechanism and user, never the password) becomes ``Error: <message>``
    on stderr and exit code 1 instead of a traceback. Subcommands registered under the
    ``conveyor.commands`` entry-point group (the offline tools' ``stack``, ``demo``, ``eval``)
    are loaded when asked for; where ``conveyor.tools`` is not installed they are absent."""

    def _plugin_commands(self) -> dict[str, EntryPoint]:
        from importlib.metadata import entry_points

        return {ep.name: ep for ep in entry_points(group="conveyor.commands") if ep.name not in self.commands}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self._plugin_commands()})

    def get_command(self, ctx: click.Context, name: str) -> Optional[click.Command]:
        cmd = super().get_command(ctx, name)
        if cmd is not None:
            return cmd
        ep = self._plugin_commands().get(name)
        if ep is None:
            return None
        try:
            loaded: click.Command = ep.load()
            return loaded
        except ImportError as exc:  # e.g. a runtime image without conveyor.tools
            logging.getLogger(__name__).debug("command %s not available: %s", name, exc)
            return None

    def invoke(self, ctx: click.Context) -> Any:
        from conveyor.streams.config.security import KafkaConnectionError

        try:
            return super().invoke(ctx)
        except KafkaConnectionError as exc:
            raise click.ClickException(str(exc)) from None


@click.group(cls=_Main)
def main() -> None:
    """Conveyor: streaming document and text intake on Kafka (extract → embed → index/classify)."""


# -- topics --------------------------------------------------------------------------
@main.group()
def topics() -> None:
    """Topic catalogue of the namespace (CONVEYOR_NAMESPACE)."""


@topics.command("create")
def topics_create() -> None:
    """Create all topics, register their schemas, set BACKWARD compatibility."""
    from conveyor.streams.kafka.admin import create_topics

    for name, state in create_topics(settings_from_env()).items():
        echo_json({"topic": name, "state": state})


@topics.command("list")
def topics_list() -> None:
    """Print every topic of the catalogue and whether it exists."""
    from conveyor.streams.kafka.admin import list_topics

    for row in list_topics(settings_from_env()):
        echo_json(row)


# -- run -----------------------------------------------------------------------------
def _stage_names() -> str:
    from conveyor.streams.topology.pipeline import pipeline

    return ", ".join(pipeline().names)


class _RunCommand(click.Command):
    """``conveyor run``: its help lists the pipeline's stages (plugins included) when shown."""

    def format_help_text(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        super().format_help_text(ctx, formatter)
        with formatter.indentation():
            formatter.write_text(f"Stages: {_stage_names()}, or all.")


@main.command("run", cls=_RunCommand)
@click.argument("names", nargs=-1, required=True)
def run(names: tuple[str, ...]) -> None:
    """Run processors: NAMES are stages of the pipeline, or ``all``.

    Several runner stages given together share this process (one thread each).
    ``all`` supervises every stage as a child process and restarts crashes.
    """
    from conveyor.streams.topology.engines import engine_for
    from conveyor.streams.topology.pipeline import UnknownStageError, pipeline

    p = pipeline()
    for line in p.errors:
        click.echo(f"warning: {line}", err=True)
    if names != ("all",):
        try:
            specs = [p.stage(n) for n in names]
        except UnknownStageError as exc:
            raise click.ClickException(str(exc)) from None
        try:
            engine = engine_for(specs)
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
    settings = kafka_settings()
    setup_logging(settings)
    from conveyor.streams.runtime import health

    if names == ("all",):
        from conveyor.streams.runtime.supervisor import Supervisor, process_groups

        Supervisor(settings, process_groups(settings)).run_forever()
        return
    from conveyor.streams.telemetry import metrics

    for spec in specs:  # counters at 0 before the first record, so the first increase is seen
        metrics.initialise(spec.name)
    health.serve(settings.metrics_port, settings.metrics_addr)
    engine.run([s.name for s in specs], settings)


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
    from conveyor.streams.kafka.io import InputProducer, iter_files

    failures = 0
    with InputProducer(kafka_settings()) as producer:
        for path, error in iter_files(paths):
            if error is None:
                try:
                    echo_json(producer.document(path))
                    continue
                except OSError as exc:
                    error = f"cannot read {path}: {exc.strerror or exc}"
            failures += 1
            echo_json({"path": str(path), "error": error})
    if failures:
        sys.exit(1)


@produce.command("texts")
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--text-column", required=True, help="Column holding the text.")
@click.option("--id-column", default=None, help="Column holding the id (default: generated).")
@click.option("--limit", type=int, default=None, help="Produce at most N rows.")
def produce_texts(csv_file: Path, text_column: str, id_column: Optional[str], limit: Optional[int]) -> None:
    """Produce the rows of CSV_FILE as texts; one JSON line per text."""
    from conveyor.streams.kafka.io import InputProducer, read_texts_csv

    with InputProducer(kafka_settings()) as producer:
        try:
            for doc_id, text in read_texts_csv(csv_file, text_column, id_column, limit):
                echo_json(producer.text(text, doc_id=doc_id, source=csv_file.name))
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
    from conveyor.streams.kafka.io import abbreviate, consume
    from conveyor.streams.kafka.topics import resolve

    settings = kafka_settings()
    name = resolve(settings, topic)
    for rec in consume(settings, name, from_beginning=from_beginning, max_messages=max_messages, timeout=timeout):
        echo_json(abbreviate(rec))


# -- dlq -----------------------------------------------------------------------------
@main.group()
def dlq() -> None:
    """Dead-letter topics."""


def _dlq_filter_options(fn: _F) -> _F:
    """The selection options shared by ``dlq list``, ``show`` and ``replay``."""
    opts = [
        click.option("--topic", "origin_topic", default=None,
                     help="Origin topic the records failed on (role like `texts` or full name)."),
        click.option("--processor", default=None, help="Failing processor (a stage name, e.g. extract, embed)."),
        click.option("--error-class", type=click.Choice(["permanent", "transient"]), default=None),
        click.option("--exception", default=None, help="Substring of the exception class, e.g. CorruptDocument."),
        click.option("--since", default=None, help="Failed at or after: ISO 8601 (UTC if no zone) or epoch ms."),
        click.option("--until", default=None, help="Failed before: ISO 8601 or epoch ms."),
        click.option("--doc-id", "doc_ids", multiple=True, help="Only this doc id (repeatable)."),
        click.option("--timeout", type=float, default=60.0, show_default=True,
                     help="Seconds to read each dead-letter topic to its end."),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


def _dlq_filter(origin_topic: Optional[str], processor: Optional[str], error_class: Optional[str],
                exception: Optional[str], since: Optional[str], until: Optional[str],
                doc_ids: tuple[str, ...]) -> DeadLetterFilter:
    from conveyor.dlq.inspect import DeadLetterFilter, parse_time

    try:
        return DeadLetterFilter(origin_topic=origin_topic, processor=processor, error_class=error_class,
                                exception=exception, since=parse_time(since), until=parse_time(until),
                                doc_ids=frozenset(doc_ids))
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc


def _table(rows: list[dict[str, Any]]) -> None:
    cols = ["ref", "key", "processor", "error.class", "exception", "attempt", "failed at", "message"]
    lines = [cols]
    for r in rows:
        e = r["error"]
        failed = e.get("failed.at", "")
        when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(failed) / 1000)) if failed.isdigit() else failed
        lines.append([r["ref"], r["key"] or "", e.get("processor", ""), e.get("error.class", ""),
                      e.get("exception.class", "").rsplit(".", 1)[-1], e.get("attempt", ""), when,
                      e.get("exception.message", "").replace("\n", " ")[:60]])
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(cols))]
    for line in lines:
        click.echo("  ".join(str(v).ljust(w) for v, w in zip(line, widths)).rstrip())


@dlq.command("list")
@_dlq_filter_options
@click.option("--format", "fmt", type=click.Choice(["json", "table"]), default="json", show_default=True)
def dlq_list(origin_topic: Optional[str], processor: Optional[str], error_class: Optional[str],
             exception: Optional[str], since: Optional[str], until: Optional[str], doc_ids: tuple[str, ...],
             timeout: float, fmt: str) -> None:
    """Print the selected dead letters with their error headers (JSON lines or a table)."""
    from conveyor.dlq.inspect import list_dead_letters
    from conveyor.streams.kafka.deadletters import KafkaDeadLetterStore

    flt = _dlq_filter(origin_topic, processor, error_class, exception, since, until, doc_ids)
    try:
        rows = list_dead_letters(KafkaDeadLetterStore(kafka_settings()), timeout=timeout, flt=flt)
        if fmt == "table":
            _table(list(rows))
        else:
            for rec in rows:
                echo_json(rec)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc


@dlq.command("show")
@_dlq_filter_options
@click.option("--ref", "refs", multiple=True, help="Only this dead letter, `<dlq topic>:<partition>:<offset>`.")
def dlq_show(origin_topic: Optional[str], processor: Optional[str], error_class: Optional[str],
             exception: Optional[str], since: Optional[str], until: Optional[str], doc_ids: tuple[str, ...],
             timeout: float, refs: tuple[str, ...]) -> None:
    """Print the selected dead letters in full — stack trace, original headers and the
    original payload decoded when it can be (bytes abbreviated) — as JSON lines."""
    from conveyor.dlq.inspect import decode_payload, iter_dead_letters
    from conveyor.streams.kafka.deadletters import KafkaDeadLetterStore
    from conveyor.streams.kafka.io import abbreviate

    store = KafkaDeadLetterStore(kafka_settings())
    flt = _dlq_filter(origin_topic, processor, error_class, exception, since, until, doc_ids)
    try:
        for d in iter_dead_letters(store, flt, timeout=timeout):
            if refs and d.ref not in refs:
                continue
            echo_json({**d.summary(stacktrace=True), **abbreviate(decode_payload(store, d))})
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc


@dlq.command("replay")
@_dlq_filter_options
@click.option("--to", "to_topic", default=None, help="Publish to this topic instead of each origin topic.")
@click.option("--dry-run", is_flag=True, help="Print what would be replayed; publish nothing.")
@click.option("--rate", type=float, default=None, help="At most N records per second.")
@click.option("--force", is_flag=True, help="Replay dead letters that were replayed before, again.")
@click.option("--quiet", is_flag=True, help="No per-record lines, only the totals.")
def dlq_replay(origin_topic: Optional[str], processor: Optional[str], error_class: Optional[str],
               exception: Optional[str], since: Optional[str], until: Optional[str], doc_ids: tuple[str, ...],
               timeout: float, to_topic: Optional[str], dry_run: bool, rate: Optional[float], force: bool,
               quiet: bool) -> None:
    """Re-publish the selected dead letters to their origin topic (or --to) with the original
    key, value and headers plus conveyor.replay.* provenance headers. Dead letters already
    replayed are skipped (ledger topic `dlq.replays`), so running a replay twice does not
    produce duplicate results. Who ran it (CONVEYOR_PRINCIPAL, else the OS user) is recorded in
    each replayed record's `conveyor.replay.by` header and its ledger entry. Prints one JSON line
    per record, then the totals."""
    from tqdm import tqdm

    from conveyor.dlq.replay import replay
    from conveyor.streams.kafka.deadletters import KafkaDeadLetterStore
    from conveyor.streams.ops.audit import principal

    store = KafkaDeadLetterStore(kafka_settings())
    flt = _dlq_filter(origin_topic, processor, error_class, exception, since, until, doc_ids)

    def progress(items: Iterable[DeadLetter], total: int) -> Iterable[DeadLetter]:
        return tqdm(items, total=total, unit="rec", file=sys.stderr, disable=quiet or not sys.stderr.isatty())

    try:
        report = replay(store, flt, to_topic=to_topic, dry_run=dry_run, rate=rate, force=force,
                        timeout=timeout, on_record=None if quiet else echo_json, progress=progress,
                        by=principal())
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    echo_json(report.totals())


main.add_command(_drift_group)
main.add_command(_models_group)
main.add_command(_acls_command)


if __name__ == "__main__":
    main()
