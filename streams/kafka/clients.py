"""Kafka client construction and safe producing.

Follows confluent-kafka's habits: ``producer.poll(0)`` around ``produce`` to
serve delivery callbacks, ``BufferError`` (local queue full) handled by polling
instead of dropping, and ``flush`` before offsets are committed or on shutdown.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Optional

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer
from confluent_kafka.admin import AdminClient

from conveyor.streams.config.security import error_callback
from conveyor.streams.config.settings import Settings

log = logging.getLogger(__name__)

DeliveryCallback = Callable[[Optional[KafkaError], Message], None]
"""A producer's ``on_delivery``: ``(error or None, message)``, called from ``poll``/``flush``."""


def producer_config(settings: Settings, **overrides: Any) -> dict[str, Any]:
    """Producer settings: acks=all, idempotence, large messages, lz4 compression.

    ``error_cb`` raises :class:`conveyor.streams.config.security.KafkaAuthenticationError` (from ``poll``/``flush``)
    when the broker rejects the credentials, instead of librdkafka retrying forever.
    """
    conf: dict[str, Any] = {
        **settings.kafka_config(),
        "error_cb": error_callback(settings),
        "acks": "all",
        "enable.idempotence": True,
        "message.max.bytes": settings.max_message_bytes,
        "compression.type": "lz4",
        "linger.ms": 5,
    }
    conf.update(dict(settings.kafka_extra))  # CONVEYOR_RDKAFKA_* win over the defaults above
    conf.update(overrides)
    return conf


def consumer_config(settings: Settings, group_id: str, **overrides: Any) -> dict[str, Any]:
    """Consumer settings: manual commits, earliest reset, cooperative-sticky, read_committed.

    ``statistics.interval.ms`` is on so the runner can publish consumer lag. ``error_cb``
    raises :class:`conveyor.streams.config.security.KafkaAuthenticationError` (from ``poll``/``consume``) when
    the broker rejects the credentials, instead of librdkafka retrying forever.
    """
    conf: dict[str, Any] = {
        **settings.kafka_config(),
        "error_cb": error_callback(settings),
        "group.id": group_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "partition.assignment.strategy": "cooperative-sticky",
        "isolation.level": "read_committed",
        "max.poll.interval.ms": 300_000,
        "session.timeout.ms": 45_000,
        "fetch.max.bytes": max(settings.max_message_bytes * 2, 52_428_800),
        "max.partition.fetch.bytes": settings.max_message_bytes + 1_048_576,
        "statistics.interval.ms": 5_000,
    }
    conf.update(dict(settings.kafka_extra))  # CONVEYOR_RDKAFKA_* win over the defaults above
    conf.update(overrides)
    return conf


def make_producer(settings: Settings, **overrides: Any) -> Producer:
    """A producer with :func:`producer_config` settings."""
    return Producer(producer_config(settings, **overrides))


def make_consumer(settings: Settings, group_id: str, **overrides: Any) -> Consumer:
    """A consumer in ``group_id`` with :func:`consumer_config` settings."""
    return Consumer(consumer_config(settings, group_id, **overrides))


def make_admin(settings: Settings) -> AdminClient:
    """An admin client for the configured cluster."""
    conf: dict[str, str | int | float | bool] = dict(settings.kafka_config())
    return AdminClient(conf)


class DeliveryTracker:
    """Collects delivery reports of produced records.

    ``callback`` is passed as ``on_delivery``; :meth:`wait` flushes the producer
    and raises if any record since the last :meth:`reset` failed.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.failures: list[tuple[str, KafkaError]] = []
        self.delivered = 0

    def callback(self, err: Optional[KafkaError], msg: Message) -> None:
        """Delivery callback (called from ``poll``/``flush``)."""
        with self._lock:
            if err is not None:
                self.failures.append((msg.topic() or "?", err))
            else:
                self.delivered += 1

    def reset(self) -> None:
        """Forget earlier reports."""
        with self._lock:
            self.failures.clear()
            self.delivered = 0

    def wait(self, producer: Producer, timeout: float = 60.0) -> None:
        """Flush ``producer`` and check every report.

        Raises:
            KafkaException: a record was not acknowledged within ``timeout`` seconds
                or the broker rejected it.
        """
        remaining = producer.flush(timeout)
        if remaining:
            raise KafkaException(KafkaError(KafkaError._TIMED_OUT,
                                            f"{remaining} records not acknowledged after {timeout}s"))
        with self._lock:
            if self.failures:
                topic, err = self.failures[0]
                raise KafkaException(KafkaError(err.code(),
                                                f"{len(self.failures)} deliveries failed, first on {topic}: {err.str()}"))


def produce(producer: Producer, topic: str, *, key: Optional[bytes], value: Optional[bytes],
            headers: Optional[list[tuple[str, bytes]]] = None, timestamp: Optional[int] = None,
            on_delivery: Optional[DeliveryCallback] = None, partition: Optional[int] = None,
            max_wait: float = 300.0) -> None:
    """Produce one record, waiting (by polling) while the local queue is full.

    ``timestamp`` is epoch ms (0/None: now). Never drops a record: on
    ``BufferError`` it serves delivery reports for up to ``max_wait`` seconds.

    Raises:
        BufferError: the queue stayed full for ``max_wait`` seconds.
        KafkaException: the record is invalid (e.g. larger than message.max.bytes).
    """
    kwargs: dict[str, Any] = {"key": key, "value": value, "headers": headers or []}
    if timestamp:
        kwargs["timestamp"] = timestamp
    if on_delivery is not None:
        kwargs["on_delivery"] = on_delivery
    if partition is not None:
        kwargs["partition"] = partition
    deadline = time.monotonic() + max_wait
    while True:
        try:
            producer.produce(topic, **kwargs)
            producer.poll(0)
            return
        except BufferError:
            if time.monotonic() > deadline:
                raise
            log.debug("producer queue full; polling for delivery reports")
            producer.poll(0.5)
