"""The shapes of a pipeline definition: sources, stages, their outputs and topics, and the
pipeline with the views derived from it. :mod:`.pipeline` holds the built-in definition;
:mod:`.plugins` adds third parties' stages."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import TYPE_CHECKING, Literal, Optional, Protocol, Union

from conveyor.streams.topology.engines import engine_of

if TYPE_CHECKING:
    from conveyor.processors.base import Processor
    from conveyor.sinks.base import Sink
    from conveyor.streams.config.settings import Settings

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


class StageContext(Protocol):
    """What a processor factory may use: the settings and the process-wide vector store
    (:class:`conveyor.streams.runtime.stages.ProcessContext` implements it)."""

    @property
    def settings(self) -> Settings:
        """This process's settings."""
        ...

    def vector_store(self) -> Sink:
        """The configured vector sink, shared by every stage of this process."""
        ...


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
        engine: what runs it, a name in :data:`conveyor.streams.topology.engines.ENGINES`
            (``runner``, the default, or ``faust`` for the drift monitor).
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
    processor: Optional[Callable[[StageContext], Processor]] = None
    sink: Optional[Literal["vector"]] = None
    uses_vector_store: bool = False
    engine: str = "runner"
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
        if self.processor is None and self.sink is None and engine_of(self).needs_processor:
            raise ValueError(f"stage {self.name!r} needs a processor or a sink")


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
        """Stages whose engine lets several share a process (all but the faust drift monitor)."""
        return tuple(s for s in self.stages if engine_of(s).shares_process)

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
