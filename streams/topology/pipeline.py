"""The pipeline definition: the one place that lists every stage.

Each :class:`StageSpec` names a stage, its input roles, its output role and schema, its sink,
batch size and poll timeout, retry schedule, whether it uses the shared vector store (and
so may have to share a process with the other stages that do), and its default instances.
Everything else is derived from here: the topic catalogue (:mod:`conveyor.streams.kafka.topics`),
consumer groups, retry and dead-letter topics, ``conveyor run all``'s process groups
(:func:`process_groups`), the accounting main path (:meth:`Pipeline.main_path`) and the CLI's
list of names.

Built-in stages are listed in :data:`BUILTIN_STAGES`; third-party processors join through
the ``conveyor.processors`` entry-point group (:mod:`conveyor.streams.topology.plugins`).

Adding a built-in processor: its folder in ``processors/``, its schema in ``schemas/``, and
one entry in :data:`BUILTIN_STAGES` naming its class (built with ``from_settings(settings)`` or
no arguments) — or, when it needs the process's shared resources (the vector store), a factory
function in :mod:`conveyor.streams.runtime.stages`.
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Optional, cast

from conveyor.streams.topology.engines import engine_of
from conveyor.streams.topology.plugins import plugin_stages
from conveyor.streams.topology.spec import (  # re-exported: the definition's shapes
    EXTRACT_MAX_POLL_MS,
    RESULT_ROLE,
    ExtraTopic,
    Output,
    Pipeline,
    SchemaRef,
    Source,
    StageContext,
    StageSpec,
    UnknownStageError,
    schema_file,
)

if TYPE_CHECKING:
    from conveyor.processors.base import Processor

__all__ = ['EXTRACT_MAX_POLL_MS', 'RESULT_ROLE', 'ExtraTopic', 'Output', 'Pipeline', 'SchemaRef', 'Source',
           'StageContext', 'StageSpec', 'UnknownStageError', 'schema_file', 'BUILTIN_STAGES', 'SOURCES',
           'builtin_pipeline', 'pipeline', 'process_groups']


def _factory(module: str, name: str) -> Callable[[StageContext], Processor]:
    """A processor factory resolved on first use: ``module.name`` is either a function
    ``StageContext -> Processor`` or a Processor class, built with ``cls.from_settings(settings)``
    when it defines that classmethod, else ``cls()``."""
    def build(ctx: StageContext) -> Processor:
        import importlib

        from conveyor.processors.base import Processor

        target = getattr(importlib.import_module(module), name)
        if isinstance(target, type) and issubclass(target, Processor):
            make = getattr(target, "from_settings", None)
            return make(ctx.settings) if callable(make) else target()
        return cast("Processor", target(ctx))

    build.__qualname__ = f"{module}.{name}"
    return build


SOURCES: tuple[Source, ...] = (
    Source("documents", "document.avsc", 3, "raw documents produced by users (inline bytes or blob reference)"),
    Source("texts", "text.avsc", 3, "raw texts produced by users"),
)
"""The topics users produce to."""

BUILTIN_STAGES: tuple[StageSpec, ...] = (
    # One document per batch: OCR takes seconds per page and gains nothing from batching, so a
    # batch would only hold finished documents back; a 50-page scan may OCR for many minutes.
    StageSpec("extract", ("documents",),
              Output("extracted", "extracted.avsc", 3, "text, pages and key fields extracted from documents"),
              processor=_factory("conveyor.streams.runtime.stages", "extract"), batch_size=1,
              max_poll_interval_ms=EXTRACT_MAX_POLL_MS, instances=1,
              description="documents → text (PDF text layer, else RapidOCR) and key fields"),
    StageSpec("embed", ("texts", "extracted"),
              Output("embedded", "embedded.avsc", 3, "chunk embeddings of documents and texts"),
              processor=_factory("conveyor.processors.embed", "EmbedProcessor"), max_poll_interval_ms=EXTRACT_MAX_POLL_MS,
              description="texts and extracted documents → token chunks with MiniLM-L6 embeddings"),
    StageSpec("index", ("embedded",), sink="vector", uses_vector_store=True,
              description="embeddings → vector store upserts (CONVEYOR_VECTOR_SINK, default Milvus)"),
    StageSpec("classify", ("embedded",),
              Output("predictions", "prediction.avsc", 3, "one result per input: label, confidence, routing"),
              processor=_factory("conveyor.streams.runtime.stages", "classify"), uses_vector_store=True,
              description="embeddings → label, confidence, auto/review routing, near-duplicates"),
    StageSpec("drift", ("embedded", "predictions"),
              Output("drift", "drift_report.avsc", 1, "drift reports of the drift monitor"),
              engine="faust", retry=False,
              extra_topics=(ExtraTopic("drift-reference", 1, "the drift monitor's pinned or learned reference "
                                       "(compacted; `conveyor drift reference`)", (("cleanup.policy", "compact"),)),),
              description="windows of embeddings, labels, lengths, OCR confidence → drift reports (faust)"),
)
"""The built-in stages, in pipeline order."""


@functools.lru_cache(maxsize=1)
def pipeline() -> Pipeline:
    """The pipeline: :data:`SOURCES`, :data:`BUILTIN_STAGES` and every installed plugin stage
    (``conveyor.processors`` entry points), loaded once per process."""
    stages, errors = plugin_stages(reserved={s.name for s in BUILTIN_STAGES})
    return Pipeline(SOURCES, BUILTIN_STAGES + tuple(stages), tuple(errors))


def builtin_pipeline() -> Pipeline:
    """The pipeline without plugins (benchmarks and the fault suite measure the core)."""
    return Pipeline(SOURCES, BUILTIN_STAGES)


def process_groups(single_process_store: bool, *, with_drift: bool = True,
                   of: Optional[Pipeline] = None) -> list[list[str]]:
    """How ``run all`` splits the stages into processes: one process per stage, except that
    the stages using the vector store share one when the store allows one process only
    (``single_process_store``, e.g. a Milvus Lite file). ``with_drift=False`` leaves out the
    stages whose engine runs them alone and as one replica (the faust drift monitor); ``of``
    defaults to :func:`pipeline`."""
    p = of or pipeline()
    groups: list[list[str]] = []
    shared: Optional[list[str]] = None
    for s in p.stages:
        if not with_drift and engine_of(s).singleton:
            continue
        if s.uses_vector_store and single_process_store:
            if shared is None:
                shared = []
                groups.append(shared)
            shared.append(s.name)
        else:
            groups.append([s.name])
    return groups
