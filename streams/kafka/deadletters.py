"""Kafka access for dead-letter inspection and replay: :class:`KafkaDeadLetterStore`, the
:class:`conveyor.dlq.store.DeadLetterStore` of one namespace (``conveyor dlq list|show|replay``)."""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Optional

from confluent_kafka import Message, Producer

from conveyor.dlq.store import Record, Transaction
from conveyor.streams.config.settings import Settings
from conveyor.streams.kafka.clients import make_admin, make_producer, produce
from conveyor.streams.kafka.io import read_to_end
from conveyor.streams.kafka.records import ConsumedHeaders, consumed_headers, position
from conveyor.streams.kafka.serde import AvroSerde
from conveyor.streams.kafka.topics import REPLAYS_ROLE, dlq_role, resolve, topic_name
from conveyor.streams.topology.pipeline import pipeline

TRANSACTION_INIT_TIMEOUT = 30.0
"""Seconds ``init_transactions`` of a replay producer may take."""


class ConsumedRecord:
    """A consumed record as :class:`conveyor.dlq.store.Record` (its position always set)."""

    def __init__(self, msg: Message):
        self._msg = msg
        self._topic, self._partition, self._offset = position(msg)

    def topic(self) -> str:
        """Its topic."""
        return self._topic

    def partition(self) -> int:
        """Its partition."""
        return self._partition

    def offset(self) -> int:
        """Its offset."""
        return self._offset

    def key(self) -> Optional[bytes]:
        """Its key."""
        return self._msg.key()

    def value(self) -> Optional[bytes]:
        """Its value."""
        return self._msg.value()

    def headers(self) -> ConsumedHeaders:
        """Its headers."""
        return consumed_headers(self._msg)

    def timestamp(self) -> tuple[int, int]:
        """``(timestamp type, epoch ms)``."""
        return self._msg.timestamp()


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

    def read(self, topic: str, *, timeout: float) -> Iterable[Record]:
        """Every committed record of ``topic`` up to its end (nothing when it does not exist).

        Raises:
            TimeoutError: the end was not reached within ``timeout`` seconds.
        """
        return (ConsumedRecord(m) for m in read_to_end(self.settings, topic, timeout=timeout, missing_ok=True))

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

    def send(self, producer: Transaction, topic: str, *, key: Optional[bytes], value: Optional[bytes],
             headers: Sequence[tuple[str, bytes]] = ()) -> None:
        """Produce one record stamped now (:func:`conveyor.streams.kafka.clients.produce`).

        Raises:
            TypeError: ``producer`` is not one of :meth:`transactional_producer`'s.
        """
        if not isinstance(producer, Producer):
            raise TypeError(f"send takes a producer of transactional_producer(), got {type(producer).__name__}")
        produce(producer, topic, key=key, value=value, headers=list(headers))

    def decode(self, topic: str, value: Optional[bytes]) -> dict[str, Any]:
        """The Avro record ``value`` of ``topic``.

        Raises:
            DecodeError: (and the serde's other errors) the value does not decode.
        """
        if self._serde is None:
            self._serde = AvroSerde(self.settings)
        return self._serde.decode(topic, value)
