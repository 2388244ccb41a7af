"""The retry gate: holds a retry-topic partition until its head record is due.

A stage reads its own retry topic ``{ns}.retry.<stage>`` beside its inputs (see
:mod:`conveyor.dlq.policy` for when a record goes there). A retry record is processed again
only once its due time (``conveyor.retry.due``) has passed: until then its partition is
paused — not polled in a busy loop — and resumed when the time comes. One retry topic
serves every attempt, so a record due in 60 s can delay a later record due in 1 s on the
same partition (never the other way: nothing runs early); records stay ordered by failure
time, and the delay is bounded by the longest backoff.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import Optional

from confluent_kafka import Message, TopicPartition

from conveyor.dlq.envelope import due_ms
from conveyor.streams.kafka.records import consumed_headers, position
from conveyor.streams.runtime.clients import StageConsumer


class RetryGate:
    """Holds retry-topic partitions whose head record is not due yet.

    :meth:`admit` filters a consumed batch: a retry record whose due time is in the future
    pauses its partition, seeks back to it, and drops it and every later record of that
    partition from the batch. :meth:`release_due` resumes held partitions whose time has
    come. Partitions revoked by a rebalance are forgotten (:meth:`forget`).

    Args:
        consumer: the runner's consumer.
        retry_topics: names of the retry topics the consumer reads.
        clock: epoch-seconds clock (tests pass a fake).
    """

    def __init__(self, consumer: StageConsumer, retry_topics: Iterable[str], clock: Callable[[], float] = time.time):
        self.consumer = consumer
        self.retry_topics = set(retry_topics)
        self.clock = clock
        self.held: dict[tuple[str, int], int] = {}
        """``{(topic, partition): due epoch ms}`` of paused retry partitions."""

    def admit(self, msgs: Sequence[Message]) -> list[Message]:
        """The records of ``msgs`` that may be processed now (order kept)."""
        now_ms = int(self.clock() * 1000)
        admitted: list[Message] = []
        for msg in msgs:
            topic, partition, _ = position(msg)
            if (topic, partition) in self.held:
                continue  # a record before this one is not due: keep the partition's order
            if topic in self.retry_topics:
                due = due_ms(consumed_headers(msg))
                if due > now_ms:
                    self._hold(msg, due)
                    continue
            admitted.append(msg)
        return admitted

    def _hold(self, msg: Message, due_ms: int) -> None:
        topic, partition, offset = position(msg)
        tp = TopicPartition(topic, partition, offset)
        self.held[(topic, partition)] = due_ms
        self.consumer.pause([tp])
        self.consumer.seek(tp)

    def release_due(self, *, resume: bool = True) -> list[tuple[str, int]]:
        """Forget holds whose due time has passed and resume those partitions (unless
        ``resume`` is False because the runner keeps everything paused for now).

        Returns the released ``(topic, partition)`` pairs.
        """
        now_ms = int(self.clock() * 1000)
        due = [tp for tp, t in self.held.items() if t <= now_ms]
        for tp in due:
            del self.held[tp]
        if due and resume:
            self.consumer.resume([TopicPartition(t, p) for t, p in due])
        return due

    def next_due_in(self) -> Optional[float]:
        """Seconds until the earliest held record is due, or ``None`` when nothing is held."""
        if not self.held:
            return None
        return max(0.0, min(self.held.values()) / 1000 - self.clock())

    def is_held(self, topic: str, partition: int) -> bool:
        """Whether that partition is paused waiting for a due time."""
        return (topic, partition) in self.held

    def forget(self, partitions: Iterable[TopicPartition]) -> None:
        """Drop holds on partitions that were revoked."""
        for tp in partitions:
            self.held.pop((tp.topic, tp.partition), None)
