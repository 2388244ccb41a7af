"""Kafka access for dead-letter inspection and replay: :class:`KafkaDeadLetterStore`, the
:class:`conveyor.dlq.store.DeadLetterStore` of one namespace (``conveyor dlq list|show|replay``)."""
from __future__ import annotations

from typing import Any, Iterable, Optional, Sequence

from confluent_kafka import Message, Producer

from conveyor.streams.io import read_to_end
from conveyor.streams.kafka import make_admin, make_producer, produce
from conveyor.streams.pipeline import pipeline
from conveyor.streams.serde import AvroSerde
from conveyor.streams.settings import Settings
from conveyor.streams.topics import REPLAYS_ROLE, dlq_role, resolve, topic_name

TRANSACTION_INIT_TIMEOUT = 30.0
"""Seconds ``init_transactions`` of a replay producer may take."""


class KafkaDeadLetterStore:
    """The dead-letter topics, replay ledger and producers of ``settings.namespace``.

    Args:
        settings: connection settings and namespace.
        serde: Avro serde for decoding payloads (made on first use if omitted).
    """

    def __init__(self, settings: Settings, serde: Optional[AvroSerde] = None):
        self.settings = settings
        self._serde = serde

    def dead_letter_topics(self) -> dict[str, str]:
        """``{stage name: dead-letter topic}`` of every stage of the pipeline."""
        return {s.name: topic_name(self.settings, dlq_role(s.name)) for s in pipeline().stages}

    def ledger_topic(self) -> str:
        """``<ns>.dlq.replays``."""
        return topic_name(self.settings, REPLAYS_ROLE)

    def resolve(self, name_or_role: str) -> str:
        """A role's full topic name, or the argument unchanged."""
        return resolve(self.settings, name_or_role)

    def read(self, topic: str, *, timeout: float) -> Iterable[Message]:
        """Every committed record of ``topic`` up to its end (nothing when it does not exist).

        Raises:
            TimeoutError: the end was not reached within ``timeout`` seconds.
        """
        return read_to_end(self.settings, topic, timeout=timeout, missing_ok=True)

    def existing_topics(self, timeout: float) -> set[str]:
        """Names of the topics on the cluster."""
        return set(make_admin(self.settings).list_topics(timeout=timeout).topics)

    def transactional_producer(self, transactional_id: str) -> Producer:
        """A producer with transactions initialised under ``transactional_id``.

        Raises:
            KafkaException: the broker refused to initialise transactions.
        """
        producer = make_producer(self.settings, **{"transactional.id": transactional_id})
        producer.init_transactions(TRANSACTION_INIT_TIMEOUT)
        return producer

    def send(self, producer: Producer, topic: str, *, key: Optional[bytes], value: Optional[bytes],
             headers: Sequence[tuple[str, bytes]] = ()) -> None:
        """Produce one record stamped now (:func:`conveyor.streams.kafka.produce`)."""
        produce(producer, topic, key=key, value=value, headers=list(headers))

    def decode(self, topic: str, value: Optional[bytes]) -> dict[str, Any]:
        """The Avro record ``value`` of ``topic``.

        Raises:
            DecodeError: (and the serde's other errors) the value does not decode.
        """
        if self._serde is None:
            self._serde = AvroSerde(self.settings)
        return self._serde.decode(topic, value)
