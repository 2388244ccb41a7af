"""``conveyor models``: the model registry's candidates, promotion, rollback and history
(:mod:`conveyor.streams.ops.model_registry`); ``retrain`` comes with the offline tools."""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Optional

import click

from conveyor.streams.cli.common import echo_json, kafka_settings
from conveyor.streams.config.settings import Settings

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

    from conveyor.streams.ops.model_registry import ModelRegistry

MODEL_NAMES = ("doctype", "intent-banking77")


class _ModelsGroup(click.Group):
    """Also lists the subcommands registered under the ``conveyor.models.commands`` entry-point
    group (the offline tools' ``retrain``); where the tools are not installed they are absent."""

    @staticmethod
    def _plugin_commands() -> dict[str, EntryPoint]:
        from importlib.metadata import entry_points

        return {ep.name: ep for ep in entry_points(group="conveyor.models.commands")}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self._plugin_commands()})

    def get_command(self, ctx: click.Context, name: str) -> Optional[click.Command]:
        found = super().get_command(ctx, name)
        if found is None and name in self._plugin_commands():
            plugin: click.Command = self._plugin_commands()[name].load()
            return plugin
        return found


def _live_line(live: dict[str, Any]) -> dict[str, Any]:
    """What the commands print of a live entry."""
    return {"live": {k: live[k] for k in ("candidate", "sha256", "promoted_by", "promoted_at")}}


def _registry() -> ModelRegistry:
    from conveyor.streams.ops.model_registry import ModelRegistry

    return ModelRegistry.of(Settings.from_env())


def _echo_live(change: Callable[[ModelRegistry], dict[str, Any]]) -> None:
    """Apply ``change(registry)`` and print the live entry it returns; a RegistryError becomes one line."""
    from conveyor.streams.ops.model_registry import RegistryError

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
def models_shadow(name: str, candidate: str, max_records: Optional[int]) -> None:
    """Score the stream's records with CANDIDATE beside the live NAME model: its predictions go
    to the shadow-predictions topic (never routed); prints agreement and review rates."""
    from conveyor.streams.ops.model_registry import ModelRegistry, RegistryError
    from conveyor.streams.ops.shadow import shadow_run

    settings = kafka_settings()
    try:
        folder = ModelRegistry.of(settings).candidate_dir(name, candidate)
    except RegistryError as exc:
        raise click.ClickException(str(exc)) from None
    echo_json(shadow_run(settings, name, folder, max_records=max_records))
