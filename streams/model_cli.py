"""``conveyor models``: the model registry's candidates, promotion, rollback and history
(:mod:`conveyor.streams.model_registry`); ``retrain`` comes with the offline tools."""
from __future__ import annotations

import click

from conveyor.streams.settings import Settings

MODEL_NAMES = ("doctype", "intent-banking77")


class _ModelsGroup(click.Group):
    """Also lists the subcommands registered under the ``conveyor.models.commands`` entry-point
    group (the offline tools' ``retrain``); where the tools are not installed they are absent."""

    @staticmethod
    def _plugin_commands() -> dict:
        from importlib.metadata import entry_points

        return {ep.name: ep for ep in entry_points(group="conveyor.models.commands")}

    def list_commands(self, ctx):
        return sorted({*super().list_commands(ctx), *self._plugin_commands()})

    def get_command(self, ctx, name):
        found = super().get_command(ctx, name)
        if found is None and name in self._plugin_commands():
            return self._plugin_commands()[name].load()
        return found


def echo_json(obj: dict) -> None:
    """:func:`conveyor.streams.cli.echo_json` (imported when a command runs: ``cli`` imports this
    module while it loads)."""
    from conveyor.streams.cli import echo_json as echo

    echo(obj)


def _live_line(live: dict) -> dict:
    """What the commands print of a live entry."""
    return {"live": {k: live[k] for k in ("candidate", "sha256", "promoted_by", "promoted_at")}}


def _registry():
    from conveyor.streams.model_registry import ModelRegistry

    return ModelRegistry.of(Settings.from_env())


def _echo_live(change) -> None:
    """Apply ``change(registry)`` and print the live entry it returns; a RegistryError becomes one line."""
    from conveyor.streams.model_registry import RegistryError

    try:
        live = change(_registry())
    except RegistryError as exc:
        raise click.ClickException(str(exc)) from None
    echo_json(_live_line(live))


@click.group("models", cls=_ModelsGroup)
def models() -> None:
    """Live models, candidates, promotion and rollback (recorded: who, when, which sha256)."""


@models.command("list")
@click.argument("name", type=click.Choice(MODEL_NAMES))
def models_list(name: str) -> None:
    """The live model of NAME, then every candidate with its gate decision (JSON lines)."""
    registry = _registry()
    echo_json(_live_line(registry.live(name)))
    for candidate in registry.candidates(name):
        echo_json(candidate)


@models.command("promote")
@click.argument("name", type=click.Choice(MODEL_NAMES))
@click.argument("candidate")
@click.option("--reason", default="", help="Why (recorded).")
def models_promote(name: str, candidate: str, reason: str) -> None:
    """Serve CANDIDATE (its folder name or a sha256 prefix) as NAME from the next classify start."""
    _echo_live(lambda registry: registry.promote(name, candidate, reason=reason or "promoted by hand"))


@models.command("rollback")
@click.argument("name", type=click.Choice(MODEL_NAMES))
def models_rollback(name: str) -> None:
    """Serve again the model that was live before the current one."""
    _echo_live(lambda registry: registry.rollback(name))


@models.command("history")
@click.argument("name", type=click.Choice(MODEL_NAMES))
def models_history(name: str) -> None:
    """Every promotion, rejection and rollback of NAME, oldest first."""
    for event in _registry().history(name):
        echo_json(event)


@models.command("shadow")
@click.argument("name", type=click.Choice(MODEL_NAMES))
@click.argument("candidate")
@click.option("--max-records", type=int, default=None, help="Score at most N records.")
def models_shadow(name: str, candidate: str, max_records) -> None:
    """Score the stream's records with CANDIDATE beside the live NAME model: its predictions go
    to the shadow-predictions topic (never routed); prints agreement and review rates."""
    from conveyor.streams.cli import kafka_settings
    from conveyor.streams.model_registry import ModelRegistry, RegistryError
    from conveyor.streams.shadow import shadow_run

    settings = kafka_settings()
    try:
        folder = ModelRegistry.of(settings).candidate_dir(name, candidate)
    except RegistryError as exc:
        raise click.ClickException(str(exc)) from None
    echo_json(shadow_run(settings, name, folder, max_records=max_records))
