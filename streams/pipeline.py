"""The pipeline definition: the one place that lists every stage.

Each :class:`StageSpec` names a stage, its input roles, its output role and schema, its sink,
batch size and poll timeout, retry schedule, whether it uses the shared vector store (and
so may have to share a process with the other stages that do), and its default instances.
Everything else is derived from here: the topic catalogue (:mod:`conveyor.streams.topics`),
consumer groups, retry and dead-letter topics, ``conveyor run all``'s process groups
(:func:`process_groups`), the accounting main path (:meth:`Pipeline.main_path`) and the CLI's
list of names.

Built-in stages are listed in :data:`BUILTIN_STAGES`; third-party processors join through
the ``conveyor.processors`` entry-point group (:mod:`conveyor.streams.plugins`).

Adding a built-in processor: its folder in ``processors/``, its schema in ``schemas/``, and
one entry in :data:`BUILTIN_STAGES` naming its class (built with ``from_settings(settings)`` or
no arguments) — or, when it needs the process's shared resources (the vector store), a factory
function in :mod:`conveyor.streams.stages`.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import TYPE_CHECKING, Callable, Literal, Optional, Sequence, Union

if TYPE_CHECKING:
    from conveyor.processors.base import Processor
    from conveyor.streams.stages import StageContext

SchemaRef = Union[str, Traversable]
"""A schema: a file name in ``conveyor.schemas`` (built-ins) or a file (plugins)."""

EXTRACT_MAX_POLL_MS = 1_800_000
"""30 min: the longest one extract batch (one document, up to 50 OCR'd pages) may take; also
embed's (a text near the character limit embeds for tens of seconds; a batch may take minutes)."""
RESULT_ROLE = "predictions"
"""The role holding each input's one result (the accounting's end of the main path)."""


def schema_file(ref: SchemaRef) -> Traversable:
    """The ``.avsc`` file of ``ref`` (a name in the ``conveyor.schemas`` package, or a file)."""
    return files("conveyor.schemas") / ref if isinstance(ref, str) else ref


@dataclass(frozen=True)
class Source:
    """A topic users produce to: role, schema, partitions, description."""

    role: str
    schema: SchemaRef
    partitions: int
    description: str


@dataclass(frozen=True)
class Output:
    """A stage's output topic: role, schema, partitions, description, extra topic configs."""

    role: str
    schema: SchemaRef
    partitions: int = 3
    description: str = ""


@dataclass(frozen=True)
class ExtraTopic:
    """Another topic a stage owns (e.g. the drift monitor's compacted reference topic)."""

    role: str
    partitions: int
    description: str
    config: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class StageSpec:
    """One stage of the pipeline.

    Attributes:
        name: stage (processor) name; its consumer group is ``<ns>.<name>``, its topics
            ``<ns>.retry.<name>`` and ``<ns>.dlq.<name>``.
        inputs: roles of the topics it reads.
        output: its output topic, or ``None`` (a sink stage, or one that only observes).
        processor: factory ``StageContext -> Processor`` (imported lazily); ``None`` for a
            sink stage, whose records the sink maps to rows itself.
        sink: ``"vector"`` for the stage that writes the configured vector sink
            (``CONVEYOR_VECTOR_SINK``), else ``None``.
        uses_vector_store: it opens the vector store (writes it, or searches it): with a
            single-process store (Milvus Lite file) all such stages share one process.
        engine: ``runner`` (:class:`conveyor.streams.runner.Runner`) or ``faust`` (drift).
        batch_size: records per batch (``None``: ``CONVEYOR_BATCH_SIZE``).
        poll_timeout: seconds one ``consume`` call waits for records.
        max_poll_interval_ms: librdkafka ``max.poll.interval.ms`` when a batch may take long.
        retry: whether it has a retry topic (transient failures retried with backoff).
        retry_delays: its backoff schedule in seconds (``None``: ``CONVEYOR_RETRY_DELAYS[_<NAME>]``).
        instances: default replicas (``run all`` starts one per process group; k8s uses this).
        extra_topics: other topics it owns.
        description: one line for ``conveyor run --help`` and the docs.
    """

    name: str
    inputs: tuple[str, ...]
    output: Optional[Output] = None
    processor: Optional[Callable[["StageContext"], "Processor"]] = None
    sink: Optional[Literal["vector"]] = None
    uses_vector_store: bool = False
    engine: Literal["runner", "faust"] = "runner"
    batch_size: Optional[int] = None
    poll_timeout: float = 0.5
    max_poll_interval_ms: Optional[int] = None
    retry: bool = True
    retry_delays: Optional[tuple[float, ...]] = None
    instances: int = 1
    extra_topics: tuple[ExtraTopic, ...] = ()
    description: str = ""
    plugin: Optional[str] = None
    """Distribution that registered it (``None``: built in)."""

    def __post_init__(self) -> None:
        if self.processor is None and self.sink is None and self.engine == "runner":
            raise ValueError(f"stage {self.name!r} needs a processor or a sink")


def _factory(module: str, name: str) -> Callable[["StageContext"], "Processor"]:
    """A processor factory resolved on first use: ``module.name`` is either a function
    ``StageContext -> Processor`` or a Processor class, built with ``cls.from_settings(settings)``
    when it defines that classmethod, else ``cls()``."""
    def build(ctx: "StageContext") -> "Processor":
        import importlib

        from conveyor.processors.base import Processor

        target = getattr(importlib.import_module(module), name)
        if isinstance(target, type) and issubclass(target, Processor):
            make = getattr(target, "from_settings", None)
            return make(ctx.settings) if callable(make) else target()
        return target(ctx)

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
              processor=_factory("conveyor.streams.stages", "extract"), batch_size=1,
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
              processor=_factory("conveyor.streams.stages", "classify"), uses_vector_store=True,
              description="embeddings → label, confidence, auto/review routing, near-duplicates"),
    StageSpec("drift", ("embedded", "predictions"),
              Output("drift", "drift_report.avsc", 1, "drift reports of the drift monitor"),
              engine="faust", retry=False,
              extra_topics=(ExtraTopic("drift-reference", 1, "the drift monitor's pinned or learned reference "
                                       "(compacted; `conveyor drift reference`)", (("cleanup.policy", "compact"),)),),
              description="windows of embeddings, labels, lengths, OCR confidence → drift reports (faust)"),
)
"""The built-in stages, in pipeline order."""


@dataclass(frozen=True)
class Pipeline:
    """Sources plus stages (built-in first, then plugins), with the views derived from them."""

    sources: tuple[Source, ...]
    stages: tuple[StageSpec, ...]
    errors: tuple[str, ...] = field(default=())
    """Plugins that could not be loaded (one line each; ``conveyor run`` reports them)."""

    @property
    def names(self) -> tuple[str, ...]:
        """Every stage name, in order."""
        return tuple(s.name for s in self.stages)

    def stage(self, name: str) -> StageSpec:
        """The stage called ``name``.

        Raises:
            UnknownStageError: no such stage (the message lists the available ones).
        """
        for s in self.stages:
            if s.name == name:
                return s
        raise UnknownStageError(name, self.names)

    @property
    def runner_stages(self) -> tuple[StageSpec, ...]:
        """Stages run by the runner (all but the faust drift monitor)."""
        return tuple(s for s in self.stages if s.engine == "runner")

    @property
    def retrying(self) -> tuple[str, ...]:
        """Names of the stages with a retry topic."""
        return tuple(s.name for s in self.stages if s.retry)

    def producer_of(self, role: str) -> Optional[StageSpec]:
        """The stage whose output is ``role`` (``None`` for a source)."""
        return next((s for s in self.stages if s.output is not None and s.output.role == role), None)

    def main_path(self, result_role: str = RESULT_ROLE) -> tuple[str, ...]:
        """Stages on the way from the sources to ``result_role``: their dead letters are an
        input's result (the others — index, drift, plugins off the path — are side branches)."""
        path: list[str] = []

        def visit(role: str) -> None:
            stage = self.producer_of(role)
            if stage is None or stage.name in path:
                return
            for r in stage.inputs:
                visit(r)
            path.append(stage.name)

        visit(result_role)
        return tuple(s.name for s in self.stages if s.name in path)


class UnknownStageError(ValueError):
    """A stage name that is not in the pipeline."""

    def __init__(self, name: str, available: Sequence[str]):
        super().__init__(f"unknown processor {name!r}; available: {', '.join(available)}")
        self.name = name


@functools.lru_cache(maxsize=1)
def pipeline() -> Pipeline:
    """The pipeline: :data:`SOURCES`, :data:`BUILTIN_STAGES` and every installed plugin stage
    (``conveyor.processors`` entry points), loaded once per process."""
    from conveyor.streams.plugins import plugin_stages

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
    faust stages; ``of`` defaults to :func:`pipeline`."""
    p = of or pipeline()
    groups: list[list[str]] = []
    shared: Optional[list[str]] = None
    for s in p.stages:
        if s.engine == "faust" and not with_drift:
            continue
        if s.uses_vector_store and single_process_store:
            if shared is None:
                shared = []
                groups.append(shared)
            shared.append(s.name)
        else:
            groups.append([s.name])
    return groups
