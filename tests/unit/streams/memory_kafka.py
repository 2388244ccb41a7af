"""An in-memory Kafka for unit tests of the runner: topics with partitions, one consumer group's
committed offsets, and a transactional delivery whose records and offsets become visible
together at commit (or not at all on abort) — the :class:`~conveyor.streams.runtime.clients.RunnerClients`
interface without a broker. Integration tests keep running the same runner on real Kafka.

Usage::

    broker = MemoryBroker({"conveyor.texts": 3})
    broker.produce("conveyor.texts", key=b"k", value=b"v")
    runner = Runner(settings, stage, clients=broker.clients(), serde=..., health=Health())
"""
from __future__ import annotations

import time
import zlib
from collections.abc import Callable, Sequence
from types import SimpleNamespace
from typing import Any, Optional

from confluent_kafka import KafkaError, KafkaException, TopicPartition


class MemoryMessage:
    """One stored record, with ``confluent_kafka.Message``'s accessors."""

    def __init__(self, topic: str, partition: int, offset: int, key: Optional[bytes], value: Optional[bytes],
                 headers: Optional[list[tuple[str, bytes]]], timestamp_ms: int):
        self._t, self._p, self._o = topic, partition, offset
        self._k, self._v, self._h, self._ts = key, value, headers, timestamp_ms

    def topic(self) -> str: return self._t
    def partition(self) -> int: return self._p
    def offset(self) -> int: return self._o
    def key(self) -> Optional[bytes]: return self._k
    def value(self) -> Optional[bytes]: return self._v
    def headers(self) -> Optional[list[tuple[str, bytes]]]: return self._h
    def timestamp(self) -> tuple[int, int]: return (1, self._ts)  # TIMESTAMP_CREATE_TIME
    def error(self) -> None: return None


class MemoryBroker:
    """Topics (``{name: partitions}``), their logs and committed group offsets."""

    def __init__(self, topics: dict[str, int]):
        self.logs: dict[str, list[list[MemoryMessage]]] = {t: [[] for _ in range(n)] for t, n in topics.items()}
        self.committed: dict[tuple[str, str, int], int] = {}
        self.fail_commits = 0
        """Commits still to fail (a broker refusing the transaction): the batch is aborted."""

    def produce(self, topic: str, *, key: Optional[bytes], value: Optional[bytes],
                headers: Optional[list[tuple[str, bytes]]] = None) -> MemoryMessage:
        """Append a record to the partition its key hashes to (crc32, like a stable partitioner)."""
        if topic not in self.logs:
            raise KafkaException(KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART, f"no topic {topic}"))
        parts = self.logs[topic]
        partition = zlib.crc32(key or b"") % len(parts)
        log = parts[partition]
        msg = MemoryMessage(topic, partition, len(log), key, value, list(headers or []), int(time.time() * 1000))
        log.append(msg)
        return msg

    def records(self, topic: str) -> list[MemoryMessage]:
        """Every record of ``topic``, partition by partition."""
        return [m for part in self.logs[topic] for m in part]

    def list_topics(self, topic: Optional[str] = None, timeout: float = -1) -> Any:
        """Metadata shaped like ``AdminClient.list_topics``: ``.topics`` by name, ``.brokers``."""
        return SimpleNamespace(brokers={0: "memory"}, topics={
            t: SimpleNamespace(error=None, partitions={i: None for i in range(len(p))}) for t, p in self.logs.items()})

    def clients(self) -> MemoryClients:
        """A :class:`~conveyor.streams.runtime.clients.RunnerClients` on this broker."""
        return MemoryClients(self)


class MemoryConsumer:
    """A group member that is assigned every partition of its topics at the first ``consume``."""

    def __init__(self, broker: MemoryBroker, group_id: str):
        self.broker, self.group_id = broker, group_id
        self.topics: list[str] = []
        self.on_assign: Optional[Callable[..., None]] = None
        self.positions: dict[tuple[str, int], int] = {}
        self.paused: set[tuple[str, int]] = set()
        self.pause_calls = 0
        self.closed = False

    def subscribe(self, topics: list[str], on_assign: Optional[Callable[..., None]] = None,
                  on_revoke: Optional[Callable[..., None]] = None,
                  on_lost: Optional[Callable[..., None]] = None) -> None:
        self.topics, self.on_assign = list(topics), on_assign

    def _assign(self) -> None:
        if self.positions or not self.topics:
            return
        for t in self.topics:
            for p in range(len(self.broker.logs[t])):
                self.positions[(t, p)] = self.broker.committed.get((self.group_id, t, p), 0)
        if self.on_assign:
            self.on_assign(self, self.assignment())

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[MemoryMessage]:
        self._assign()
        out: list[MemoryMessage] = []
        for (t, p), pos in sorted(self.positions.items()):
            if (t, p) in self.paused:
                continue
            log = self.broker.logs[t][p]
            take = log[pos:pos + num_messages - len(out)]
            out.extend(take)
            self.positions[(t, p)] = pos + len(take)
            if len(out) >= num_messages:
                break
        if not out and timeout and timeout > 0:
            time.sleep(min(timeout, 0.01))
        return out

    def poll(self, timeout: float = -1) -> Optional[MemoryMessage]:
        got = self.consume(1, timeout)
        return got[0] if got else None

    def assignment(self) -> list[TopicPartition]:
        return [TopicPartition(t, p) for t, p in sorted(self.positions)]

    def pause(self, partitions: list[TopicPartition]) -> None:
        self.pause_calls += 1
        self.paused.update((tp.topic, tp.partition) for tp in partitions)

    def resume(self, partitions: list[TopicPartition]) -> None:
        self.paused.difference_update((tp.topic, tp.partition) for tp in partitions)

    def seek(self, partition: TopicPartition) -> None:
        self.positions[(partition.topic, partition.partition)] = partition.offset

    def commit(self, offsets: Sequence[TopicPartition], asynchronous: bool = False) -> None:
        for tp in offsets:
            self.broker.committed[(self.group_id, tp.topic, tp.partition)] = tp.offset

    def close(self) -> None:
        self.closed = True


class MemoryDelivery:
    """Transactional delivery: records buffered per batch, appended with the offsets at commit."""

    transactional = True
    transactional_id = "memory"

    def __init__(self, broker: MemoryBroker):
        self.broker = broker
        self.pending: list[tuple[str, Optional[bytes], Optional[bytes], Optional[list[tuple[str, bytes]]]]] = []
        self.topics: set[str] = set()
        self.commits = self.aborts = 0

    def begin(self) -> None:
        self.pending, self.topics = [], set()

    def produce(self, topic: str, *, key: Optional[bytes], value: Optional[bytes],
                headers: Optional[list[tuple[str, bytes]]] = None) -> None:
        if topic not in self.broker.logs:
            raise KafkaException(KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART, f"no topic {topic}"))
        self.topics.add(topic)
        self.pending.append((topic, key, value, headers))

    def commit(self, consumer: MemoryConsumer, offsets: Sequence[TopicPartition]) -> None:
        if self.broker.fail_commits:
            self.broker.fail_commits -= 1
            raise KafkaException(KafkaError(KafkaError._TIMED_OUT, "commit refused (test)"))
        for topic, key, value, headers in self.pending:
            self.broker.produce(topic, key=key, value=value, headers=headers)
        consumer.commit(offsets)
        self.pending = []
        self.commits += 1

    def abort(self, exc: Optional[BaseException] = None) -> None:
        self.pending = []
        self.aborts += 1

    def close(self, timeout: float = 30.0) -> None:
        self.pending = []


class MemoryClients:
    """:class:`~conveyor.streams.runtime.clients.RunnerClients` of a :class:`MemoryBroker`."""

    def __init__(self, broker: MemoryBroker):
        self.broker = broker
        self.consumers: list[MemoryConsumer] = []
        self.deliveries: list[MemoryDelivery] = []

    def consumer(self, group_id: str, stats_cb: Optional[Callable[[str], None]] = None,
                 **overrides: Any) -> MemoryConsumer:
        self.consumers.append(MemoryConsumer(self.broker, group_id))
        return self.consumers[-1]

    def delivery(self, stage: str, instance_id: Optional[str] = None) -> MemoryDelivery:
        self.deliveries.append(MemoryDelivery(self.broker))
        return self.deliveries[-1]

    def admin(self) -> MemoryBroker:
        return self.broker


class MemoryTransaction:
    """A transactional producer on a :class:`MemoryBroker`: records appear at commit."""

    def __init__(self, broker: MemoryBroker):
        self.broker = broker
        self.pending: list[tuple[str, Optional[bytes], Optional[bytes], list[tuple[str, bytes]]]] = []

    def begin_transaction(self) -> None:
        self.pending = []

    def commit_transaction(self, timeout: float) -> None:
        for topic, key, value, headers in self.pending:
            self.broker.produce(topic, key=key, value=value, headers=headers)
        self.pending = []

    def abort_transaction(self, timeout: float) -> None:
        self.pending = []


class MemoryDeadLetterStore:
    """:class:`conveyor.dlq.store.DeadLetterStore` of namespace ``ns`` on a :class:`MemoryBroker`
    (what :class:`conveyor.streams.kafka.deadletters.KafkaDeadLetterStore` is on Kafka)."""

    def __init__(self, broker: MemoryBroker, ns: str, stages: Sequence[str], serde: Any):
        self.broker, self.ns, self.stages, self.serde = broker, ns, list(stages), serde

    def dead_letter_topics(self) -> dict[str, str]:
        return {s: f"{self.ns}.dlq.{s}" for s in self.stages}

    def ledger_topic(self) -> str:
        return f"{self.ns}.dlq.replays"

    def resolve(self, name_or_role: str) -> str:
        return name_or_role if name_or_role.startswith(self.ns + ".") else f"{self.ns}.{name_or_role}"

    def read(self, topic: str, *, timeout: float) -> list[MemoryMessage]:
        return self.broker.records(topic) if topic in self.broker.logs else []

    def existing_topics(self, timeout: float) -> set[str]:
        return set(self.broker.logs)

    def transactional_producer(self, transactional_id: str) -> MemoryTransaction:
        return MemoryTransaction(self.broker)

    def send(self, producer: MemoryTransaction, topic: str, *, key: Optional[bytes], value: Optional[bytes],
             headers: Sequence[tuple[str, bytes]] = ()) -> None:
        producer.pending.append((topic, key, value, list(headers)))

    def decode(self, topic: str, value: Optional[bytes]) -> dict[str, Any]:
        return self.serde.decode(topic, value)
