"""The Kafka clients a :class:`~conveyor.streams.runtime.runner.Runner` uses, behind a small
interface, so the batch loop runs on Kafka in production and on an in-memory broker in unit
tests (``tests/unit/streams/memory_kafka.py``).

A runner needs three things from Kafka:

* a :class:`StageConsumer` in its consumer group (confluent-kafka's ``Consumer`` is one);
* a :class:`StageDelivery` that produces the batch's outputs, retries and dead letters and
  commits them with the input offsets (:mod:`conveyor.streams.kafka.delivery`: transactional,
  or at-least-once);
* a :class:`TopicLister` answering which topics exist (confluent-kafka's ``AdminClient``).

:class:`RunnerClients` makes them; :class:`KafkaClients` is the implementation on a cluster.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Optional, Protocol

from confluent_kafka import Message, TopicPartition

from conveyor.streams.config.settings import Settings
from conveyor.streams.kafka.clients import make_admin, make_consumer
from conveyor.streams.kafka.delivery import make_delivery


class StageConsumer(Protocol):
    """The consumer calls a runner makes (the subset of ``confluent_kafka.Consumer`` it uses)."""

    def subscribe(self, topics: list[str], on_assign: Callable[..., None] = ..., on_revoke: Callable[..., None] = ...,
                  on_lost: Callable[..., None] = ...) -> None:
        """Join the group on ``topics``; the callbacks run inside ``consume``/``poll``."""

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[Message]:
        """Up to ``num_messages`` records, waiting at most ``timeout`` s for the first."""

    def poll(self, timeout: float = -1) -> Optional[Message]:
        """One record or ``None`` (serves rebalances while the runner is paused)."""

    def assignment(self) -> list[TopicPartition]:
        """The partitions assigned to this member."""

    def pause(self, partitions: list[TopicPartition]) -> None:
        """Stop fetching ``partitions``."""

    def resume(self, partitions: list[TopicPartition]) -> None:
        """Fetch ``partitions`` again."""

    def seek(self, partition: TopicPartition) -> None:
        """Read ``partition.topic[partition.partition]`` from ``partition.offset`` next."""

    def close(self) -> None:
        """Leave the group."""


class StageDelivery(Protocol):
    """Produces one batch's records and commits them with its input offsets."""

    topics: set[str]
    """Topics written in the current batch (ACL diagnosis)."""

    def begin(self) -> None:
        """Start a batch."""

    def produce(self, topic: str, *, key: Optional[bytes], value: Optional[bytes],
                headers: Optional[list[tuple[str, bytes]]] = None) -> None:
        """Produce one record of the batch."""

    def commit(self, consumer: Any, offsets: Sequence[TopicPartition]) -> None:
        """Make the batch's records and ``offsets`` (the next offset to read per partition)
        durable together (transactional) or records then offsets (at-least-once)."""

    def abort(self, exc: Optional[BaseException] = None) -> None:
        """Undo the batch (its records are never visible to read_committed consumers)."""

    def close(self, timeout: float = 30.0) -> None:
        """Flush or abort what is open and release the producer."""


class TopicLister(Protocol):
    """Answers which topics exist: ``list_topics(timeout=s).topics`` is a mapping by name, and
    ``.brokers`` the brokers that answered."""

    def list_topics(self, topic: Optional[str] = None, timeout: float = -1) -> Any:
        """Cluster metadata."""


class RunnerClients(Protocol):
    """Makes the Kafka clients of one runner."""

    def consumer(self, group_id: str, stats_cb: Optional[Callable[[str], None]] = None,
                 **overrides: Any) -> StageConsumer:
        """A consumer in ``group_id`` (``overrides``: librdkafka properties)."""

    def delivery(self, stage: str, instance_id: Optional[str] = None) -> StageDelivery:
        """The delivery of stage ``stage`` (``instance_id`` keeps a transactional id stable)."""

    def admin(self) -> TopicLister:
        """Something that lists topics."""


class KafkaClients:
    """:class:`RunnerClients` on the cluster of ``settings`` (confluent-kafka clients)."""

    def __init__(self, settings: Settings):
        self.settings = settings

    def consumer(self, group_id: str, stats_cb: Optional[Callable[[str], None]] = None,
                 **overrides: Any) -> StageConsumer:
        """A ``confluent_kafka.Consumer`` (:func:`conveyor.streams.kafka.clients.make_consumer`)."""
        if stats_cb is not None:
            overrides["stats_cb"] = stats_cb
        return make_consumer(self.settings, group_id, **overrides)

    def delivery(self, stage: str, instance_id: Optional[str] = None) -> StageDelivery:
        """:func:`conveyor.streams.kafka.delivery.make_delivery`."""
        return make_delivery(self.settings, stage, instance_id=instance_id)

    def admin(self) -> TopicLister:
        """A ``confluent_kafka.admin.AdminClient``."""
        return make_admin(self.settings)
