"""Engines: what runs a stage, and what that implies for the rest of the system.

A stage names its engine (:attr:`StageSpec.engine <conveyor.streams.topology.spec.StageSpec.engine>`);
everything that differs between engines is a property of :class:`Engine`, read where it matters,
instead of ``if engine == ...`` tests: whether stages share a process (``conveyor run all``'s
process groups), whether the stage runs as a single replica (Deployment strategy, autoscaling),
which Kafka resources it needs beyond its topics (ACLs), and the function that runs it.

* ``runner`` — :class:`conveyor.streams.runtime.runner.Runner`: transactional batches,
  several stages per process, scaled by partition lag.
* ``faust`` — a faust-streaming app (the drift monitor): its own process, one replica (its
  windowed tables are per worker), faust's internal topics under ``<ns>.<stage>-``.

A new engine is one more :class:`Engine` in :data:`ENGINES` and the function its ``entry`` names.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from conveyor.streams.config.settings import Settings
    from conveyor.streams.topology.spec import StageSpec


@dataclass(frozen=True)
class Engine:
    """One way of running stages.

    Attributes:
        name: the value of ``StageSpec.engine``.
        entry: ``"module:function"`` running stages of this engine in the calling process,
            ``function(names: list[str], settings: Settings) -> None`` (blocks until stopped);
            imported on first use, so naming an engine costs nothing until it runs.
        shares_process: several stages may run in one process (``conveyor run a b``, and
            ``run all``'s process groups); otherwise each stage runs alone.
        singleton: one replica at a time (k8s: ``Recreate``, never autoscaled).
        needs_processor: a stage on it must name a processor or a sink.
        transactional: it writes with Kafka transactions (ACLs grant its transactional-id
            prefix); otherwise it keeps internal topics under ``<group id>-`` (ACLs grant that
            prefix).
    """

    name: str
    entry: str
    shares_process: bool
    singleton: bool
    needs_processor: bool
    transactional: bool

    def runner(self) -> Callable[[list[str], Settings], None]:
        """The function :attr:`entry` names.

        Raises:
            ImportError, AttributeError: the entry does not exist (a broken engine definition).
        """
        module, _, func = self.entry.partition(":")
        return cast("Callable[[list[str], Settings], None]", getattr(importlib.import_module(module), func))

    def run(self, names: list[str], settings: Settings) -> None:
        """Run the stages ``names`` (all on this engine, as :func:`engine_for` chose) in this
        process until stopped."""
        self.runner()(names, settings)


ENGINES: dict[str, Engine] = {
    "runner": Engine("runner", "conveyor.streams.runtime.supervisor:run_stages", shares_process=True,
                     singleton=False, needs_processor=True, transactional=True),
    "faust": Engine("faust", "conveyor.streams.drift.app:run_stages", shares_process=False,
                    singleton=True, needs_processor=False, transactional=False),
}
"""The engines, by name."""


def engine_of(spec: StageSpec) -> Engine:
    """The engine of ``spec``.

    Raises:
        ValueError: ``spec.engine`` names no engine in :data:`ENGINES`.
    """
    try:
        return ENGINES[spec.engine]
    except KeyError:
        raise ValueError(f"stage {spec.name!r}: unknown engine {spec.engine!r}; known: {', '.join(ENGINES)}") from None


def engine_for(specs: Sequence[StageSpec]) -> Engine:
    """The one engine that runs ``specs`` (at least one) together in one process.

    Raises:
        ValueError: they cannot share a process: one runs on an engine that runs each stage
            alone, or they run on different engines (the message names the stages to start alone).
    """
    alone = [s.name for s in specs if not engine_of(s).shares_process]
    if len(specs) > 1 and (alone or len({engine_of(s).name for s in specs}) > 1):
        raise ValueError(f"{', '.join(alone or [s.name for s in specs])} runs on its own; "
                         "start it with its own `conveyor run`")
    return engine_of(specs[0])
