"""Pausing a consumer's partitions for backpressure without leaving the group.

When a processor's downstream (a sink, the producer queue) is slow or down, the runner
pauses every assigned partition and keeps calling ``poll`` — so group heartbeats and
rebalances are served and the consumer is never evicted for exceeding
``max.poll.interval.ms`` — then resumes when the downstream has drained. Retry-topic
partitions held by the :class:`~conveyor.streams.runtime.retry_gate.RetryGate` stay paused on resume.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence

from confluent_kafka import KafkaException, TopicPartition

from conveyor.streams.kafka.records import position
from conveyor.streams.runtime.clients import StageConsumer
from conveyor.streams.runtime.retry_gate import RetryGate
from conveyor.streams.telemetry import metrics

log = logging.getLogger(__name__)


class PauseControl:
    """Pause/resume of one runner's assignment.

    Args:
        consumer: the runner's consumer.
        gate: its retry gate (held partitions are never resumed here).
        name: processor name (metrics label).
    """

    def __init__(self, consumer: StageConsumer, gate: RetryGate, name: str):
        self.consumer = consumer
        self.gate = gate
        self.name = name
        self.paused = False

    def pause(self) -> None:
        """Pause every assigned partition (idempotent)."""
        if not self.paused:
            assignment = self.consumer.assignment()
            if assignment:
                self.consumer.pause(assignment)
            self.paused = True
            metrics.PAUSED.labels(self.name).set(1)

    def resume(self) -> None:
        """Resume every assigned partition except retry partitions still waiting (idempotent)."""
        if self.paused:
            assignment = [tp for tp in self.consumer.assignment()
                          if not self.gate.is_held(tp.topic, tp.partition)]
            if assignment:
                self.consumer.resume(assignment)
            self.paused = False
            metrics.PAUSED.labels(self.name).set(0)

    def on_assign(self, partitions: Sequence[TopicPartition]) -> None:
        """Keep newly assigned partitions paused while the runner is paused."""
        if self.paused and partitions:
            self.consumer.pause(list(partitions))

    def wait(self, seconds: float, stop: threading.Event) -> None:
        """Poll (serving heartbeats and rebalances) for ``seconds`` while paused, or until
        ``stop`` is set. A record returned despite the pause is sought back, not lost."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not stop.is_set():
            msg = self.consumer.poll(min(0.5, max(0.0, deadline - time.monotonic())))
            if msg is not None and msg.error() is None:
                topic, partition, offset = position(msg)
                try:
                    self.consumer.seek(TopicPartition(topic, partition, offset))
                except KafkaException as exc:  # revoked meanwhile: its new owner reads it
                    log.warning("%s: cannot seek back %s[%d]: %s", self.name, topic, partition, exc)
            assignment = self.consumer.assignment()
            if assignment:
                self.consumer.pause(assignment)  # newly assigned partitions stay paused too
