"""The offline tools' ``conveyor`` subcommands — ``stack``, ``demo``, ``eval`` — registered
through the ``conveyor.commands`` entry-point group (see ``pyproject.toml``), so the runtime
CLI (:mod:`conveyor.streams.cli`) never imports this package."""
from __future__ import annotations

import sys

import click

from conveyor.streams.cli import echo_json, settings_from_env, setup_logging
from conveyor.tools.evaluation.cli import eval_command

__all__ = ["stack", "demo", "eval_command"]


@click.group()
def stack() -> None:
    """Local stack: Kafka (KRaft) and Apicurio Registry on 127.0.0.1; Milvus Lite embedded."""


@stack.command("up")
@click.option("--timeout", default=300.0, show_default=True, help="Seconds to wait for readiness.")
def stack_up(timeout: float) -> None:
    """Start the stack (idempotent) and wait until it answers."""
    from conveyor.tools.stack import StackError, up

    try:
        echo_json(up(settings_from_env(), timeout=timeout, log=lambda m: click.echo(m, err=True)))
    except StackError as exc:
        raise click.ClickException(str(exc)) from exc


@stack.command("down")
def stack_down() -> None:
    """Stop what ``stack up`` started."""
    from conveyor.tools.stack import down

    echo_json(down(settings_from_env(), log=lambda m: click.echo(m, err=True)))


@stack.command("status")
def stack_status() -> None:
    """Report whether each part of the stack is up."""
    from conveyor.tools.stack import status

    st = status(settings_from_env())
    echo_json(st)
    if not all(part.get("up", True) for part in st.values() if isinstance(part, dict)):
        sys.exit(1)


@click.command("demo")
@click.option("--texts", "n_texts", type=int, default=200, show_default=True, help="banking77 texts to produce.")
@click.option("--timeout", type=float, default=900.0, show_default=True, help="Seconds to wait for results.")
def demo(n_texts: int, timeout: float) -> None:
    """The main job: stack up, topics, processors, demo corpus → summary. Exit 1 if any input is
    unaccounted. The stack stays up afterwards (``conveyor stack down`` stops it)."""
    from conveyor.tools.demo import run_demo

    import dataclasses
    import os

    from conveyor.streams import env

    settings = settings_from_env()
    # the demo shows progress and its summary; the processors' own INFO lines go to their log files
    setup_logging(settings if os.environ.get(env.LOG_LEVEL) else dataclasses.replace(settings, log_level="WARNING"))
    ok = run_demo(settings, n_texts=n_texts, timeout=timeout)
    sys.exit(0 if ok else 1)
