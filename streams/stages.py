"""Wiring of each named processor to its topics, sink and dependencies.

``index`` and ``classify`` both talk to Milvus. A Milvus Lite database file can
be opened by one process only, so with a file URI those two run in the same
process (``conveyor run all`` groups them) and share one client.
"""
from __future__ import annotations

import functools
from typing import Callable

from streams.blobstore import BlobStore
from streams.runner import Stage
from streams.settings import Settings

STAGES = ("extract", "embed", "index", "classify")
"""Processors driven by :class:`streams.runner.Runner` (drift runs on faust)."""

EXTRACT_BATCH_SIZE = 1
EXTRACT_MAX_POLL_MS = 1_800_000
"""30 min: the longest one extract batch (one document, up to 50 OCR'd pages) may take."""


def milvus_is_embedded(settings: Settings) -> bool:
    """True when the Milvus URI is a local Milvus Lite file (no ``scheme://``)."""
    return "://" not in settings.milvus_uri


_open_sinks: list = []


@functools.lru_cache(maxsize=8)
def _milvus(uri: str, token: str, collection: str):
    from sinks.milvus import MilvusSink

    sink = MilvusSink(uri=uri, token=token, collection=collection)
    _open_sinks.append(sink)
    return sink


def close_milvus_sinks() -> None:
    """Close the process-wide Milvus sinks (after every stage using them has stopped)."""
    for sink in list(_open_sinks):
        sink.close()
    _open_sinks.clear()
    _milvus.cache_clear()


def milvus_sink(settings: Settings):
    """The process-wide :class:`sinks.milvus.MilvusSink` for the namespace's collection."""
    if milvus_is_embedded(settings):
        from pathlib import Path

        Path(settings.milvus_uri).expanduser().parent.mkdir(parents=True, exist_ok=True)
    return _milvus(settings.milvus_uri, settings.milvus_token_value(), settings.milvus_collection)


def duplicate_finder(settings: Settings) -> Callable[[str, list[float]], list[tuple[str, float]]]:
    """``(doc_id, doc_vector) -> [(other_doc_id, cosine)]`` over indexed documents,
    keeping matches at or above ``settings.duplicate_threshold``."""
    sink = milvus_sink(settings)

    def find(doc_id: str, vector: list[float]) -> list[tuple[str, float]]:
        return sink.search_similar(vector, kind="document", exclude_doc_id=doc_id, limit=5,
                                   min_score=settings.duplicate_threshold)

    return find


def build_stage(name: str, settings: Settings) -> Stage:
    """The :class:`Stage` of processor ``name``.

    Raises:
        ValueError: unknown processor name.
    """
    if name == "extract":
        from processors.extract import ExtractProcessor

        # One document per batch: OCR takes seconds per page and gains nothing from batching, so a
        # batch would only hold finished documents back. A 50-page scan may OCR for many minutes,
        # hence the longer poll interval.
        return Stage(ExtractProcessor(blob_reader=BlobStore(settings.blob_dir).read), ("documents",), "extracted",
                     batch_size=EXTRACT_BATCH_SIZE, consumer_overrides={"max.poll.interval.ms": EXTRACT_MAX_POLL_MS})
    if name == "embed":
        from processors.embed import EmbedProcessor

        # A text near MAX_TEXT_CHARS embeds for tens of seconds; a batch of them may take minutes.
        return Stage(EmbedProcessor(), ("texts", "extracted"), "embedded",
                     consumer_overrides={"max.poll.interval.ms": EXTRACT_MAX_POLL_MS})
    if name == "index":
        from processors.index import IndexProcessor

        return Stage(IndexProcessor(), ("embedded",), None, sink=milvus_sink(settings), owns_sink=False)
    if name == "classify":
        from processors.classify import ClassifyProcessor

        return Stage(ClassifyProcessor(find_duplicates=duplicate_finder(settings),
                                       duplicate_threshold=settings.duplicate_threshold,
                                       auto_threshold=settings.auto_threshold),
                     ("embedded",), "predictions")
    raise ValueError(f"unknown processor {name!r}; choose from {', '.join(STAGES)}, drift")
