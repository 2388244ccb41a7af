"""Third-party processors and sinks, registered through Python entry points.

* ``conveyor.processors``: each entry point names a :class:`conveyor.processors.base.Processor`
  subclass that declares ``name``, ``version``, ``inputs`` (roles it reads), ``output`` (the
  role it writes, or ``None``) and ``output_schema`` (its ``.avsc`` file), and implements
  ``process_batch`` (or ``process_one``). It is built with ``cls.from_settings(settings)``
  when it defines that classmethod, else ``cls()``. It becomes a stage of the pipeline with
  its own consumer group, retry and dead-letter topics: ``conveyor run <name>``.
* ``conveyor.sinks``: each entry point names a :class:`conveyor.sinks.base.Sink` subclass
  (``name``, ``version``, ``from_settings``, ``rows``, ``write``/``flush``/``close``, raising
  :class:`~conveyor.sinks.base.SinkBackpressureError` when slow); ``CONVEYOR_VECTOR_SINK``
  chooses the one the ``index`` stage writes and ``classify`` searches.

A plugin that cannot be loaded or breaks the contract is reported (one line) and left out;
the built-in stages run regardless.
"""
from __future__ import annotations

import logging
import re
from importlib.metadata import entry_points
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from conveyor.processors.base import Processor
from conveyor.sinks.base import Sink
from conveyor.streams.topology.spec import Output, StageContext, StageSpec

log = logging.getLogger(__name__)

PROCESSORS_GROUP = "conveyor.processors"
SINKS_GROUP = "conveyor.sinks"
NAME = re.compile(r"^[a-z][a-z0-9-]{0,40}$")
"""Stage and sink names: lower-case letters, digits and ``-`` (they end up in topic names)."""


class PluginError(ValueError):
    """A plugin breaks the contract (the message says how)."""


class UnknownSinkError(ValueError):
    """``CONVEYOR_VECTOR_SINK`` names no installed sink."""


def stage_of(cls: Any, plugin: str = "") -> StageSpec:
    """The :class:`StageSpec` of a processor class declared as the contract above says.

    Raises:
        PluginError: not a Processor subclass, or a bad name, version, inputs, output or schema.
    """
    if not (isinstance(cls, type) and issubclass(cls, Processor)):
        raise PluginError(f"{cls!r} is not a subclass of conveyor.processors.base.Processor")
    name, version = getattr(cls, "name", ""), getattr(cls, "version", "")
    if not isinstance(name, str) or not NAME.match(name):
        raise PluginError(f"{cls.__name__}.name {name!r} must match {NAME.pattern}")
    if not isinstance(version, str) or not version:
        raise PluginError(f"{cls.__name__}.version must be a non-empty string")
    inputs = tuple(cls.inputs or ())
    if not inputs or not all(isinstance(r, str) and r for r in inputs):
        raise PluginError(f"{cls.__name__}.inputs must name at least one input role")
    output = None
    if cls.output is not None:
        schema = cls.output_schema
        if not isinstance(schema, (Path, Traversable)) or not schema.is_file():
            raise PluginError(f"{cls.__name__}.output_schema must be an existing .avsc file, got {schema!r}")
        output = Output(cls.output, schema, 3, f"output of the {name} plugin")

    def build(ctx: StageContext) -> Processor:
        factory = getattr(cls, "from_settings", None)
        return factory(ctx.settings) if callable(factory) else cls()

    return StageSpec(name, inputs, output, processor=build, batch_size=getattr(cls, "batch_size", None),
                     description=(cls.__doc__ or name).strip().splitlines()[0], plugin=plugin or cls.__module__)


def plugin_stages(reserved: set[str]) -> tuple[list[StageSpec], list[str]]:
    """Stages of every ``conveyor.processors`` entry point, and one error line per plugin left
    out (unloadable, contract broken, or a name already taken)."""
    stages: list[StageSpec] = []
    errors: list[str] = []
    taken = set(reserved)
    for ep in entry_points(group=PROCESSORS_GROUP):
        try:
            spec = stage_of(ep.load(), ep.dist.name if ep.dist else ep.value)
            if spec.name in taken:
                raise PluginError(f"stage name {spec.name!r} is already taken")
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not stop the built-in stages
            errors.append(f"processor plugin {ep.name} ({ep.value}) left out: {exc}")
            log.warning(errors[-1])
            continue
        taken.add(spec.name)
        stages.append(spec)
    return stages, errors


def sink_classes() -> dict[str, type[Sink]]:
    """Installed sinks by name: the built-in ``milvus`` and every ``conveyor.sinks`` entry point
    (a broken one is logged and left out)."""
    from conveyor.sinks.milvus import MilvusSink

    out: dict[str, type[Sink]] = {MilvusSink.name: MilvusSink}
    for ep in entry_points(group=SINKS_GROUP):
        try:
            cls = ep.load()
            if not (isinstance(cls, type) and issubclass(cls, Sink)) or not NAME.match(getattr(cls, "name", "")):
                raise PluginError(f"{cls!r} is not a conveyor.sinks.base.Sink subclass with a valid name")
        except Exception as exc:  # noqa: BLE001 - reported, the others stay usable
            log.warning("sink plugin %s (%s) left out: %s", ep.name, ep.value, exc)
            continue
        out.setdefault(cls.name, cls)
    return out


def vector_sink_class(name: str) -> type[Sink]:
    """The sink class called ``name``.

    Raises:
        UnknownSinkError: no installed sink has that name (the message lists them).
    """
    classes = sink_classes()
    if name not in classes:
        raise UnknownSinkError(f"unknown sink {name!r} (CONVEYOR_VECTOR_SINK); available: {', '.join(classes)}")
    return classes[name]
