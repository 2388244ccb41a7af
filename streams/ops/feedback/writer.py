"""Writing reviewers' decisions to the ``feedback`` topic exactly once.

Each record is written in its own Kafka transaction with one transactional id per namespace
(``<ns>.review``): a second writer of the namespace fences the first, and a record is either
committed (read_committed consumers see it) or not at all. A decision's id is the sha256 of
namespace, doc id and item version (:func:`decision_id`), so one item version is decided once.
"""
from __future__ import annotations

import hashlib
import threading
from typing import Any, Optional

from confluent_kafka import KafkaException

from conveyor.streams.config.settings import Settings
from conveyor.streams.kafka.clients import make_producer
from conveyor.streams.kafka.serde import AvroSerde, key_bytes
from conveyor.streams.kafka.topics import FEEDBACK_ROLE, topic_name


def decision_id(namespace: str, doc_id: str, version: str) -> str:
    """sha256 hex of ``namespace``, ``doc_id`` and ``version``: one per item version."""
    return hashlib.sha256(f"{namespace}\x00{doc_id}\x00{version}".encode()).hexdigest()


def same_decision(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two Feedback records say the same (who and when aside)."""
    keys = ("decision_id", "action", "label", "corrected_fields", "duplicate_of")
    return all(a.get(k) == b.get(k) for k in keys)


class FeedbackProducer:
    """Produces Feedback records to ``<ns>.feedback``, one transaction each (transactional id
    ``<ns>.review``). Thread-safe."""

    def __init__(self, settings: Settings, *, serde: Optional[AvroSerde] = None):
        self.settings = settings
        self.serde = serde or AvroSerde(settings)
        self.topic = topic_name(settings, FEEDBACK_ROLE)
        self._lock = threading.Lock()
        self._producer: Any = None

    def _ready_producer(self) -> Any:
        if self._producer is None:
            producer = make_producer(self.settings, **{"transactional.id": f"{self.settings.namespace}.review",
                                                       "enable.idempotence": True})
            producer.init_transactions(30)
            self._producer = producer
        return self._producer

    def write(self, record: dict[str, Any]) -> None:
        """Encode ``record`` (a Feedback record, key: its ``doc_id``) and commit it in its own
        transaction.

        Raises:
            KafkaException: the transaction could not be committed (nothing was written; the
                record may be written again).
            SerializationError: ``record`` does not match ``schemas/feedback.avsc``.
        """
        value = self.serde.encode(self.topic, record)
        with self._lock:
            producer = self._ready_producer()
            producer.begin_transaction()
            try:
                producer.produce(self.topic, key=key_bytes(record["doc_id"]), value=value)
                producer.commit_transaction(30)
            except KafkaException:
                try:
                    producer.abort_transaction(30)
                except KafkaException:
                    self._producer = None  # fenced or broken: a new one next time
                raise

    def close(self) -> None:
        """Flush and drop the producer."""
        with self._lock:
            if self._producer is not None:
                self._producer.flush(10)
                self._producer = None
