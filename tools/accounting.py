"""Accounting: which inputs ended as a prediction or a dead letter, and how often.

Used by ``conveyor demo`` and the end-to-end tests to prove that every input
is accounted for exactly once.
"""
from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Optional

from confluent_kafka import KafkaError

from conveyor.dlq import envelope
from conveyor.streams.config.settings import Settings
from conveyor.streams.kafka.clients import make_consumer
from conveyor.streams.kafka.serde import AvroSerde
from conveyor.streams.kafka.topics import dlq_role, dlq_topics, topic
from conveyor.streams.topology.pipeline import builtin_pipeline


@dataclass
class Ledger:
    """Results per input id: ``predictions[doc_id]`` and ``dead_letters[doc_id]`` are lists,
    so duplicates are visible; ``first_seen[doc_id]`` is the arrival time (monotonic s)."""

    expected: set[str]
    predictions: dict[str, list[dict]] = field(default_factory=dict)
    dead_letters: dict[str, list[dict]] = field(default_factory=dict)
    first_seen: dict[str, float] = field(default_factory=dict)
    side_dead_letters: dict[str, list[dict]] = field(default_factory=dict)
    """Dead letters of side branches (``index``, ``drift``): the input still gets its
    prediction from the main path, so these are reported, not counted as its result."""
    unexpected: int = 0

    @property
    def accounted(self) -> set[str]:
        """Expected ids with at least one prediction or dead letter."""
        return self.expected & (set(self.predictions) | set(self.dead_letters))

    @property
    def missing(self) -> set[str]:
        """Expected ids with no result yet."""
        return self.expected - self.accounted

    @property
    def duplicated(self) -> set[str]:
        """Ids with more than one result (predictions and dead letters together)."""
        return {i for i in self.accounted
                if len(self.predictions.get(i, [])) + len(self.dead_letters.get(i, [])) > 1}

    def add_prediction(self, doc_id: str, record: dict) -> None:
        """Record a prediction for ``doc_id``."""
        self._add(self.predictions, doc_id, record)

    def add_dead_letter(self, doc_id: str, info: dict) -> None:
        """Record a dead letter for ``doc_id``."""
        self._add(self.dead_letters, doc_id, info)

    def add_side_dead_letter(self, doc_id: str, info: dict) -> None:
        """Record a dead letter of a side branch (not the input's result)."""
        if doc_id in self.expected:
            self.side_dead_letters.setdefault(doc_id, []).append(info)
        else:
            self.unexpected += 1

    def record(self, msg, *, predictions_topic: str, main_dlqs: set[str],
               decode: Callable[[str, Optional[bytes]], dict]) -> None:
        """Book one consumed record: a prediction (its value decoded with ``decode(topic,
        value)``) or a dead letter (:func:`dead_letter_info`), a result when its topic is in
        ``main_dlqs``, else a side-branch one."""
        doc_id = msg.key().decode("utf-8", "replace") if msg.key() else ""
        if msg.topic() == predictions_topic:
            self.add_prediction(doc_id, decode(msg.topic(), msg.value()))
        elif msg.topic() in main_dlqs:
            self.add_dead_letter(doc_id, dead_letter_info(msg))
        else:
            self.add_side_dead_letter(doc_id, dead_letter_info(msg))

    def _add(self, book: dict, doc_id: str, item: dict) -> None:
        if doc_id not in self.expected:
            self.unexpected += 1
            return
        book.setdefault(doc_id, []).append(item)
        self.first_seen.setdefault(doc_id, time.monotonic())


def dead_letter_info(msg) -> dict:
    """A dead letter's topic and failure fields (processor, exception, error class, reason,
    origin topic and original timestamp) as a dict."""
    f = envelope.fields(msg.headers(), envelope.DLQ)
    return {"dlq_topic": msg.topic(), "processor": f.get("processor", "?"), "exception": f.get("exception.class", "?"),
            "error_class": f.get("error.class", "?"), "reason": f.get("exception.message", ""),
            "origin_topic": f.get("origin.topic", "?"), "origin_timestamp": f.get("origin.timestamp")}


MAIN_PATH = builtin_pipeline().main_path()
"""Processors on the path from an input to its prediction (derived from the pipeline
definition: extract, embed, classify): their dead letters are results."""


def collect(settings: Settings, expected: Iterable[str], *, timeout: float = 600.0, settle: float = 3.0,
            on_progress: Optional[Callable[[int], object]] = None, on_idle: Optional[Callable[[], None]] = None,
            serde: Optional[AvroSerde] = None) -> Ledger:
    """Read the predictions topic and every dead-letter topic (read_committed, from the
    beginning) until each expected id has a result, then ``settle`` more seconds to
    catch duplicates, or until ``timeout`` seconds pass.

    ``on_progress(n)`` is called with the number of newly accounted ids; ``on_idle()``
    after every poll (about twice a second), e.g. to restart crashed processors.
    """
    ledger = Ledger(set(expected))
    serde = serde or AvroSerde(settings)
    pred_topic = topic(settings, "predictions")
    dlqs = set(dlq_topics(settings))
    main_dlqs = {topic(settings, dlq_role(p)) for p in MAIN_PATH}
    consumer = make_consumer(settings, f"conveyor-ledger-{uuid.uuid4().hex[:12]}",
                             **{"statistics.interval.ms": 0, "auto.offset.reset": "earliest"})
    consumer.subscribe([pred_topic, *dlqs])
    deadline = time.monotonic() + timeout
    done_at: Optional[float] = None
    try:
        while time.monotonic() < deadline:
            if done_at is not None and time.monotonic() - done_at > settle:
                break
            msg = consumer.poll(0.5)
            if on_idle is not None:
                on_idle()
            if msg is None:
                continue
            error = msg.error()
            if error and error.code() == KafkaError._PARTITION_EOF:
                continue
            if error:
                raise RuntimeError(f"ledger consumer: {error}")
            before = len(ledger.accounted)
            ledger.record(msg, predictions_topic=pred_topic, main_dlqs=main_dlqs, decode=serde.decode)
            gained = len(ledger.accounted) - before
            if gained and on_progress:
                on_progress(gained)
            if not ledger.missing and done_at is None:
                done_at = time.monotonic()
    finally:
        consumer.close()
    return ledger
