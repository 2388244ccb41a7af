"""Turning a stage of the pipeline definition into something a runner runs.

:func:`build_stage` makes the runner's :class:`~conveyor.streams.runtime.runner.Stage` for a name of
:func:`conveyor.streams.topology.pipeline.pipeline`: its processor (from the factories below, or a
plugin's class), its sink, batch size, poll and retry settings.

The vector store (``CONVEYOR_VECTOR_SINK``, default Milvus) is opened once per process and
shared by the stages that use it — ``index`` writes it, ``classify`` searches it for
near-duplicates — and closed by :func:`close_sinks` once they have all stopped. A store that
allows one process only (a Milvus Lite file) makes ``run all`` put those stages in one
process (:func:`conveyor.streams.topology.pipeline.process_groups`).
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from conveyor.processors.base import Processor, Record
from conveyor.sinks.base import Sink, VectorSearch
from conveyor.streams.config.settings import Settings
from conveyor.streams.runtime.runner import Stage
from conveyor.streams.topology.pipeline import Pipeline, StageSpec, pipeline
from conveyor.streams.topology.plugins import vector_sink_class

_open_sinks: list[Sink] = []


@functools.lru_cache(maxsize=8)
def _shared_sink(name: str, settings: Settings) -> Sink:
    sink = vector_sink_class(name).from_settings(settings)
    _open_sinks.append(sink)
    return sink


def close_sinks() -> None:
    """Close the process-wide sinks (after every stage using them has stopped)."""
    for sink in list(_open_sinks):
        sink.close()
    _open_sinks.clear()
    _shared_sink.cache_clear()


def single_process_store(settings: Settings) -> bool:
    """Whether the configured vector store may be opened by one process only."""
    return vector_sink_class(settings.vector_sink).single_process(settings)


@dataclass(frozen=True)
class ProcessContext:
    """A :class:`~conveyor.streams.topology.spec.StageContext` of this process: the settings and the
    process-wide vector store."""

    settings: Settings

    def vector_store(self) -> Sink:
        """The configured vector sink, shared by every stage of this process.

        Raises:
            UnknownSinkError: ``CONVEYOR_VECTOR_SINK`` names no installed sink.
        """
        return _shared_sink(self.settings.vector_sink, self.settings)


def duplicate_finder(search: VectorSearch, threshold: float) -> Callable[[str, list[float]], list[tuple[str, float]]]:
    """``(doc_id, doc_vector) -> [(other_doc_id, cosine)]`` over the stored documents other
    than ``doc_id``, at or above ``threshold``, at most 5 (classify's near-duplicate check)."""
    def find(doc_id: str, vector: list[float]) -> list[tuple[str, float]]:
        return search.search_similar(vector, kind="document", exclude_doc_id=doc_id, limit=5, min_score=threshold)

    return find


class SinkRows(Processor):
    """The processor of a sink stage: each record becomes the sink's rows
    (:meth:`conveyor.sinks.base.Sink.rows`); a record the sink cannot map fails alone."""

    def __init__(self, name: str, sink: Sink):
        self.name = name
        self.version = sink.version
        self.sink = sink

    def process_one(self, record: Record) -> list[Record]:
        """The sink's rows of ``record``.

        Raises:
            RowError: the sink cannot store the record.
        """
        return self.sink.rows(record)


# -- factories of the built-in processors (named in conveyor.streams.topology.pipeline) -----------------
def extract(ctx: ProcessContext) -> Processor:
    """The ``extract`` processor, reading large documents from the blob store."""
    from conveyor.processors.extract import ExtractProcessor
    from conveyor.streams.kafka.blobstore import BlobStore

    return ExtractProcessor(blob_reader=BlobStore(ctx.settings.blob_dir).read)


def classify(ctx: ProcessContext) -> Processor:
    """The ``classify`` processor, searching the vector store for near-duplicates, serving the
    live model of each kind (:class:`conveyor.streams.ops.model_registry.ModelRegistry`: the
    promoted candidate, else the shipped model)."""
    from conveyor.processors.classify import DEFAULT_MODELS, ClassifyProcessor
    from conveyor.streams.ops.model_registry import ModelRegistry

    st = ctx.settings
    registry = ModelRegistry.of(st)
    store = ctx.vector_store()
    if not isinstance(store, VectorSearch):
        raise TypeError(f"the {st.vector_sink!r} sink cannot search vectors (classify's near-duplicate check)")
    return ClassifyProcessor(find_duplicates=duplicate_finder(store, st.duplicate_threshold),
                             duplicate_threshold=st.duplicate_threshold, auto_threshold=st.auto_threshold,
                             model_dirs={kind: registry.live_dir(name) for kind, name in DEFAULT_MODELS.items()})


def runner_stage(spec: StageSpec, settings: Settings) -> Stage:
    """The runner's :class:`~conveyor.streams.runtime.runner.Stage` of ``spec``.

    Raises:
        ValueError: ``spec`` does not run on the runner (the faust drift monitor).
    """
    if spec.engine != "runner":  # the one engine this module builds stages for
        raise ValueError(f"{spec.name!r} runs on its own ({spec.engine}); it cannot share a runner process")
    ctx = ProcessContext(settings)
    sink = ctx.vector_store() if spec.sink == "vector" else None
    if spec.processor is not None:
        processor = spec.processor(ctx)
    else:
        assert sink is not None, "a runner stage without a processor writes the vector sink (StageSpec checks)"
        processor = SinkRows(spec.name, sink)
    overrides: dict[str, Any] = {}
    if spec.max_poll_interval_ms:
        overrides["max.poll.interval.ms"] = spec.max_poll_interval_ms
    return Stage(processor, spec.inputs, spec.output.role if spec.output else None, sink=sink,
                 owns_sink=sink is None, batch_size=spec.batch_size, consumer_overrides=overrides,
                 retry_delays=spec.retry_delays, poll_timeout=spec.poll_timeout)


def build_stage(name: str, settings: Settings, of: Pipeline | None = None) -> Stage:
    """The runner stage of the pipeline stage called ``name``.

    Raises:
        UnknownStageError: no such stage (the message lists the available ones).
        ValueError: the stage is not a runner stage.
    """
    return runner_stage((of or pipeline()).stage(name), settings)
