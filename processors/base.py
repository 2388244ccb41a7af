"""The processor contract shared by every stage.

A processor is business logic only: it receives a batch of decoded input records
(``dict`` shaped like the input topic's Avro schema) and returns, for each input
in order, either the list of output records it produced or the exception that
stopped it. The runner (``conveyor.streams.runtime.runner``) turns exceptions into dead letters
that keep the original message, and produces the outputs.
"""
from __future__ import annotations

import time
from abc import ABC
from collections.abc import Sequence
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, Optional, Union

Record = dict[str, Any]
Outcome = Union[list[Record], BaseException]


def now_millis() -> int:
    """Current UTC time in epoch milliseconds (Avro ``timestamp-millis``)."""
    return int(time.time() * 1000)


class Processor(ABC):  # noqa: B024 - subclasses implement process() or process_batch(), either one
    """Base class of a stream processor's logic.

    Subclasses set ``name`` and ``version`` and implement either
    :meth:`process_one` (one record at a time) or :meth:`process_batch`
    (when batching pays, e.g. model inference).
    """

    name: str = "processor"
    version: str = "0.1.0"
    inputs: tuple[str, ...] = ()
    """Roles of the topics a plugin processor reads (e.g. ``("texts",)``)."""
    output: Optional[str] = None
    """Role of the topic a plugin processor writes (``<ns>.<output>``), or ``None``."""
    output_schema: Optional[Union[Path, Traversable]] = None
    """The ``.avsc`` file of the plugin's output topic (registered BACKWARD, like the built-ins')."""

    def meta(self, source: Record) -> Record:
        """Envelope fields for an output derived from ``source``.

        Returns ``doc_id`` and ``trace_id`` copied from ``source`` plus this
        processor's ``producer``/``producer_version`` and ``event_time`` (now, ms).
        """
        return {
            "doc_id": source["doc_id"],
            "trace_id": source.get("trace_id") or source["doc_id"],
            "event_time": now_millis(),
            "producer": self.name,
            "producer_version": self.version,
        }

    def process_one(self, record: Record) -> list[Record]:
        """Process one input record; return its output records (possibly none).

        Raises:
            Exception: any error; the runner dead-letters the input record.
        """
        raise NotImplementedError

    def process_batch(self, records: Sequence[Record]) -> list[Outcome]:
        """Process a batch; return one :data:`Outcome` per input, in order.

        The default calls :meth:`process_one` per record and catches its errors,
        so one bad record never fails its neighbours.
        """
        outcomes: list[Outcome] = []
        for record in records:
            try:
                outcomes.append(self.process_one(record))
            except Exception as exc:  # noqa: BLE001 - every error becomes a dead letter
                outcomes.append(exc)
        return outcomes

    def close(self) -> None:  # noqa: B027 - an optional hook, deliberately empty
        """Release resources (sessions, clients). Default: nothing."""
