"""The offline tools' ``conveyor`` subcommands — ``stack``, ``demo``, ``eval`` — registered
through the ``conveyor.commands`` entry-point group (see ``pyproject.toml``), so the runtime
CLI (:mod:`conveyor.streams.cli.main`) never imports this package."""
from __future__ import annotations

import sys

import click

from conveyor.streams.cli.common import echo_json, settings_from_env
from conveyor.streams.cli.main import setup_logging
from conveyor.tools.evaluation.cli import eval_command

__all__ = ["stack", "demo", "eval_command"]


@click.group()
def stack() -> None:
    """Local stack: Kafka (KRaft) and Apicurio Registry on 127.0.0.1; Milvus Lite embedded."""


def _stack_settings(brokers: int | None, tls: bool | None = None):
    """Settings for the stack commands: ``--brokers``, else ``CONVEYOR_KAFKA_BROKERS``, else the
    count the last ``stack up`` of this home recorded. TLS: ``tls`` when given (``up``: its
    ``--tls`` flag or ``CONVEYOR_STACK_TLS``), else what the last ``stack up`` recorded
    (``status``, ``down``)."""
    import os

    from conveyor.streams.config import env
    from conveyor.tools.stack import recorded_brokers, recorded_tls, with_brokers, with_tls

    settings = settings_from_env()
    if brokers is None and not os.environ.get(env.KAFKA_BROKERS):
        brokers = recorded_brokers(settings)
    try:
        settings = with_brokers(settings, brokers) if brokers else settings
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--brokers") from exc
    if tls is None:
        tls = recorded_tls(settings)
    return with_tls(settings) if tls or settings.stack_tls else settings


_BROKERS = click.option("--brokers", type=click.Choice(["1", "3"]), default=None,
                        callback=lambda _ctx, _p, v: int(v) if v else None,
                        help="Kafka nodes: 1, or 3 (a KRaft cluster, replication factor 3, min.insync.replicas 2). "
                             "Default: CONVEYOR_KAFKA_BROKERS, else what the last `stack up` started.")


@stack.command("up")
@click.option("--timeout", default=300.0, show_default=True, help="Seconds to wait for readiness.")
@_BROKERS
@click.option("--tls", is_flag=True, default=False,
              help="Start with TLS: a private CA (openssl) in <home>/tls, SASL_SSL Kafka, HTTPS registry; "
                   "clients load <home>/tls/client.env.")
def stack_up(timeout: float, brokers: int | None, tls: bool) -> None:
    """Start the stack (idempotent) and wait until it answers."""
    from conveyor.tools.stack import StackError, up

    settings = _stack_settings(brokers, tls)  # a plain `up` after a TLS stack's `down` starts it plain
    try:
        echo_json(up(settings, timeout=timeout, log=lambda m: click.echo(m, err=True)))
    except StackError as exc:
        raise click.ClickException(str(exc)) from exc
    if settings.kafka_brokers > 1:
        click.echo(f"clients: export CONVEYOR_KAFKA_BROKERS={settings.kafka_brokers} "
                   f"(bootstrap {settings.bootstrap_servers})", err=True)
    if settings.stack_tls:
        click.echo(f"clients: set -a; . {settings.home / 'tls' / 'client.env'}; set +a", err=True)


@stack.command("down")
def stack_down() -> None:
    """Stop what ``stack up`` started (every Kafka node of this home)."""
    from conveyor.tools.stack import down

    echo_json(down(_stack_settings(None), log=lambda m: click.echo(m, err=True)))


@stack.command("status")
@_BROKERS
def stack_status(brokers: int | None) -> None:
    """Report whether each part of the stack is up; with three nodes, each node, the active
    controller and the partition leaders."""
    from conveyor.tools.stack import status

    st = status(_stack_settings(brokers))
    echo_json(st)
    if not all(part.get("up", True) for part in st.values() if isinstance(part, dict)):
        sys.exit(1)


@click.command("demo")
@click.option("--texts", "n_texts", type=int, default=200, show_default=True, help="banking77 texts to produce.")
@click.option("--timeout", type=float, default=900.0, show_default=True, help="Seconds to wait for results.")
def demo(n_texts: int, timeout: float) -> None:
    """The main job: stack up, topics, processors, demo corpus → summary. Exit 1 if any input is
    unaccounted. The stack stays up afterwards (``conveyor stack down`` stops it)."""
    import dataclasses
    import os

    from conveyor.streams.config import env
    from conveyor.tools.demo import run_demo

    settings = settings_from_env()
    # the demo shows progress and its summary; the processors' own INFO lines go to their log files
    setup_logging(settings if os.environ.get(env.LOG_LEVEL) else dataclasses.replace(settings, log_level="WARNING"))
    ok = run_demo(settings, n_texts=n_texts, timeout=timeout)
    sys.exit(0 if ok else 1)
