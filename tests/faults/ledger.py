"""Reading results while faults happen: predictions and dead letters into a Ledger.

:class:`LedgerReader` is :func:`conveyor.tools.accounting.collect` made incremental and fault
tolerant: it assigns every partition of the predictions topic and of every dead-letter topic
from the beginning (no consumer group, so no rebalance waits), reads ``read_committed``, and
treats non-fatal client errors (broker restarting, transport failures) as noise to be logged,
not as the end of the run. Results land in a :class:`conveyor.tools.accounting.Ledger`, so duplicates
stay visible (lists per id) and ids nobody produced are counted in ``ledger.unexpected``.
"""
from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable
from typing import Optional

from confluent_kafka import OFFSET_BEGINNING, KafkaError, KafkaException, TopicPartition

from conveyor.streams.config.settings import Settings
from conveyor.streams.kafka.clients import make_consumer
from conveyor.streams.kafka.serde import AvroSerde
from conveyor.streams.kafka.topics import dlq_role, dlq_topics, topic
from conveyor.tools.accounting import MAIN_PATH, Ledger

log = logging.getLogger(__name__)


class LedgerReader:
    """Incrementally reads results of ``expected`` input ids.

    Args:
        settings: the scenario's settings (namespace decides the topics).
        expected: input ids that must each get exactly one result.

    Attributes:
        ledger: the :class:`~conveyor.tools.accounting.Ledger` being filled.
        errors: non-fatal consumer errors seen (strings), for the figures.
        undecodable: prediction records that did not decode (should stay 0).
    """

    def __init__(self, settings: Settings, expected: Iterable[str]):
        self.settings = settings
        self.ledger = Ledger(set(expected))
        self.serde = AvroSerde(settings)
        self.pred_topic = topic(settings, "predictions")
        self.main_dlqs = {topic(settings, dlq_role(p)) for p in MAIN_PATH}
        self.errors: list[str] = []
        self.undecodable = 0
        self.consumer = make_consumer(settings, f"fault-ledger-{uuid.uuid4().hex[:12]}",
                                      **{"statistics.interval.ms": 0})
        self._assign([self.pred_topic, *dlq_topics(settings)])

    def _assign(self, topics: list[str]) -> None:
        meta = self.consumer.list_topics(timeout=30)
        parts = []
        for name in topics:
            t = meta.topics.get(name)
            if t is None or t.error is not None:
                raise RuntimeError(f"topic {name} does not exist (create the topics first)")
            parts += [TopicPartition(name, p, OFFSET_BEGINNING) for p in t.partitions]
        self.consumer.assign(parts)

    @property
    def complete(self) -> bool:
        """Whether every expected id has at least one result."""
        return not self.ledger.missing

    def poll(self, seconds: float) -> int:
        """Read for up to ``seconds``; return how many expected ids got their first result.

        Raises:
            KafkaException: a fatal client error.
        """
        deadline = time.monotonic() + seconds
        gained = 0
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            msg = self.consumer.poll(min(0.5, left))
            if msg is None:
                continue
            err = msg.error()
            if err is not None:
                if err.fatal():
                    raise KafkaException(err)
                if err.code() != KafkaError._PARTITION_EOF:
                    self.errors.append(err.str())
                    log.info("ledger consumer: %s", err)
                continue
            before = len(self.ledger.accounted)
            self._add(msg)
            gained += len(self.ledger.accounted) - before
        return gained

    @property
    def completed_at(self) -> Optional[float]:
        """Monotonic time (s) at which the last expected id got its first result, or ``None``."""
        if not self.complete:
            return None
        return max(self.ledger.first_seen.values(), default=None)

    def _add(self, msg) -> None:
        self.ledger.record(msg, predictions_topic=self.pred_topic, main_dlqs=self.main_dlqs, decode=self._decode)

    def _decode(self, topic: str, value) -> dict:
        try:
            return self.serde.decode(topic, value)
        except Exception as exc:  # noqa: BLE001 - counted; a prediction must decode
            self.undecodable += 1
            return {"decode_error": str(exc)}

    def close(self) -> None:
        """Close the consumer."""
        self.consumer.close()
