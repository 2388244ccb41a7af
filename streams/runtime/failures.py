"""Where a failed record goes: the stage's retry topic (due after its backoff) or its
dead-letter topic, with the failure envelope (:mod:`conveyor.dlq.envelope`), decided by the
stage's :class:`~conveyor.dlq.policy.FailurePolicy`; produced in the batch's transaction."""
from __future__ import annotations

import logging
from typing import Optional

from confluent_kafka import Message

from conveyor.dlq import envelope
from conveyor.dlq.envelope import Failure, Origin, exception_name, original_timestamp
from conveyor.dlq.policy import FailurePolicy
from conveyor.streams.kafka.records import consumed_headers, position
from conveyor.streams.runtime.clients import StageDelivery
from conveyor.streams.telemetry import metrics
from conveyor.streams.telemetry.logs import record_context

log = logging.getLogger(__name__)


class FailureRouter:
    """Routes one stage's failed records.

    Args:
        name: the stage.
        version: its processor's version (in the envelope).
        group: its consumer group (in the envelope).
        policy: retry or dead letter, and the backoff.
        delivery: the batch's delivery (the records join its transaction).
        retry_topic: the stage's retry topic.
        dlq_topic: the stage's dead-letter topic.
    """

    def __init__(self, name: str, version: str, group: str, policy: FailurePolicy, delivery: StageDelivery, *,
                 retry_topic: str, dlq_topic: str):
        self.name, self.version, self.group_id, self.policy = name, version, group, policy
        self.delivery, self.retry_topic, self.dlq_topic = delivery, retry_topic, dlq_topic
        self.retried = 0
        self.dead_lettered = 0

    def previous(self, msg: Message) -> Optional[Failure]:
        """The failure envelope of a record read from the retry topic (``None`` otherwise)."""
        return envelope.decode(consumed_headers(msg), envelope.RETRY) if msg.topic() == self.retry_topic else None

    def route(self, msg: Message, exc: BaseException, trace_id: Optional[str] = None) -> None:
        """Send a failed ``msg`` where the stage's :class:`~conveyor.dlq.policy.FailurePolicy`
        routes it — the retry topic (due after the backoff) or the dead-letter topic — with the
        failure envelope. Key, value and original headers are kept byte for byte; origin
        (topic, partition, offset, original timestamp) and attempts are those of the first
        delivery. The record is stamped with the time it is written, never the input's (see
        :data:`conveyor.streams.kafka.topics.WRITE_TIME`)."""
        previous = self.previous(msg)
        msg_headers = consumed_headers(msg)
        if previous is not None:
            origin = previous.origin
            origin = Origin(origin.topic, origin.partition, origin.offset,
                            original_timestamp(msg_headers, msg.timestamp()[1], retried_at=origin.timestamp))
        else:
            topic, partition, offset = position(msg)
            origin = Origin(topic, partition, offset, original_timestamp(msg_headers, msg.timestamp()[1]))
        route = self.policy.route(exc, origin, previous=previous, processor=self.name,
                                  version=self.version, group=self.group_id)
        name = exception_name(exc)
        metrics.ERRORS.labels(self.name, name).inc()
        headers = envelope.attach(msg_headers, route.failure, route.prefix)
        where = f"{origin.topic}[{origin.partition}]@{origin.offset}"
        ctx = record_context(msg.key(), trace_id)
        if route.retry:
            log.info("%s: retrying %s (attempt %d failed: %s: %s)", self.name, where, route.failure.attempt,
                     type(exc).__name__, exc, extra=ctx)
            self.delivery.produce(self.retry_topic, key=msg.key(), value=msg.value(), headers=headers)
            metrics.RETRIED.labels(self.name, name).inc()
            self.retried += 1
            return
        log.warning("%s: dead-lettering %s after %d attempt(s): %s: %s", self.name, where, route.failure.attempt,
                    type(exc).__name__, exc, extra=ctx)
        self.delivery.produce(self.dlq_topic, key=msg.key(), value=msg.value(), headers=headers)
        metrics.DEAD_LETTERED.labels(self.name, route.failure.error_class).inc()
        self.dead_lettered += 1
