"""Non-blocking retries: retry-topic records, their backoff schedule, and the gate that
holds a retry partition until its head record is due.

A record that fails transiently (Milvus or the registry unavailable, a timeout) is not
retried in place — that would block its partition. The runner produces it unchanged (key,
value, headers) to the processor's retry topic ``{ns}.retry.<processor>`` with
``conveyor.retry.*`` headers, and commits the input offset. The retry record is stamped with
the time it is written (the input's own timestamp travels in ``conveyor.retry.origin.timestamp``):
a record stamped with an old input's time would be deleted by retention before its retry ran. The same runner consumes its
retry topic; a record is processed again only once its due time has passed: until then its
partition is paused (not polled in a busy loop) and resumed when the time comes. After the
last attempt of the schedule the record goes to the dead-letter topic with error class
``transient``. This is the "non-blocking retry topics" pattern of Spring Kafka's
``@RetryableTopic``, with one retry topic per processor and the due time in a header.

=================================  ===============================================
header                             value (UTF-8)
=================================  ===============================================
conveyor.retry.attempt             attempts already made (1 after the first failure)
conveyor.retry.due                 epoch ms before which the record is not retried
conveyor.retry.first.failed.at     epoch ms of the first failure
conveyor.retry.origin.topic        topic the record was first read from
conveyor.retry.origin.partition    its partition there
conveyor.retry.origin.offset       its offset there
conveyor.retry.origin.timestamp    its timestamp there, epoch ms
conveyor.retry.exception.class     class of the latest transient exception
conveyor.retry.exception.message   its message (truncated to 1 KiB)
=================================  ===============================================

One retry topic serves every attempt, so a record due in 60 s can delay a later record
due in 1 s on the same partition (never the other way: nothing runs early). Records
stay ordered by failure time, and the delay is bounded by the longest backoff.
"""
from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Optional, Sequence

from confluent_kafka import Consumer, Message, TopicPartition

PREFIX = "conveyor.retry."
ATTEMPT = PREFIX + "attempt"
DUE = PREFIX + "due"
FIRST_FAILED_AT = PREFIX + "first.failed.at"
ORIGIN_TOPIC = PREFIX + "origin.topic"
ORIGIN_PARTITION = PREFIX + "origin.partition"
ORIGIN_OFFSET = PREFIX + "origin.offset"
ORIGIN_TIMESTAMP = PREFIX + "origin.timestamp"
EXCEPTION_CLASS = PREFIX + "exception.class"
EXCEPTION_MESSAGE = PREFIX + "exception.message"
MAX_MESSAGE_CHARS = 1024


@dataclass(frozen=True)
class RetryState:
    """What a record's ``conveyor.retry.*`` headers say (all zero/``None`` for a first delivery).

    ``attempt`` counts earlier failed attempts; times are epoch ms.
    """

    attempt: int = 0
    due_ms: int = 0
    first_failed_at: Optional[int] = None
    origin_topic: Optional[str] = None
    origin_partition: Optional[int] = None
    origin_offset: Optional[int] = None
    origin_timestamp: Optional[int] = None


def _header(headers: Optional[Sequence[tuple[str, Optional[bytes]]]], name: str) -> Optional[str]:
    value = None
    for k, v in headers or ():
        if k == name and v is not None:
            value = v.decode("utf-8", "replace")
    return value


def _int_or_none(raw: Optional[str]) -> Optional[int]:
    try:
        return int(raw) if raw is not None else None
    except ValueError:
        return None


def retry_state(headers: Optional[Sequence[tuple[str, Optional[bytes]]]]) -> RetryState:
    """Parse the ``conveyor.retry.*`` headers of a record (malformed values count as absent)."""
    return RetryState(
        attempt=_int_or_none(_header(headers, ATTEMPT)) or 0,
        due_ms=_int_or_none(_header(headers, DUE)) or 0,
        first_failed_at=_int_or_none(_header(headers, FIRST_FAILED_AT)),
        origin_topic=_header(headers, ORIGIN_TOPIC),
        origin_partition=_int_or_none(_header(headers, ORIGIN_PARTITION)),
        origin_offset=_int_or_none(_header(headers, ORIGIN_OFFSET)),
        origin_timestamp=_int_or_none(_header(headers, ORIGIN_TIMESTAMP)),
    )


def strip_retry_headers(headers: Optional[Sequence[tuple[str, Optional[bytes]]]]) -> list[tuple[str, bytes]]:
    """The headers without ``conveyor.retry.*`` ones: the original record's own headers."""
    return [(k, v or b"") for k, v in headers or () if not k.startswith(PREFIX)]


@dataclass(frozen=True)
class RetryPolicy:
    """Backoff schedule: ``delays[i]`` seconds before attempt ``i + 2``; jitter adds up to
    ``jitter * delay`` at random. ``len(delays)`` retries, then the dead-letter topic."""

    delays: tuple[float, ...]
    jitter: float = 0.2
    rng: Callable[[], float] = random.random

    @property
    def max_attempts(self) -> int:
        """Attempts in all: the first one plus one per delay."""
        return len(self.delays) + 1

    def exhausted(self, failed_attempts: int) -> bool:
        """True when ``failed_attempts`` failures leave no retry (dead-letter instead)."""
        return failed_attempts >= self.max_attempts

    def delay(self, failed_attempts: int) -> float:
        """Seconds to wait after the ``failed_attempts``-th failure (1-based), jitter included.

        Raises:
            ValueError: no retry is left after that many failures.
        """
        if failed_attempts < 1 or failed_attempts > len(self.delays):
            raise ValueError(f"no retry after {failed_attempts} failed attempts (schedule {self.delays})")
        base = self.delays[failed_attempts - 1]
        return base * (1.0 + self.jitter * self.rng())

    def retry_headers(self, msg_headers: Optional[Sequence[tuple[str, Optional[bytes]]]], *, state: RetryState,
                      origin: tuple[str, int, int, int], exc: BaseException, exception_class: str,
                      now_ms: Optional[int] = None) -> list[tuple[str, bytes]]:
        """Headers of the retry record for a record that just failed its ``state.attempt + 1``-th
        attempt: the original headers plus fresh ``conveyor.retry.*`` headers.

        ``origin`` is ``(topic, partition, offset, timestamp)`` of the first delivery
        (timestamp in epoch ms).
        """
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        failed = state.attempt + 1
        due = now_ms + int(self.delay(failed) * 1000)
        values = {
            ATTEMPT: str(failed),
            DUE: str(due),
            FIRST_FAILED_AT: str(state.first_failed_at or now_ms),
            ORIGIN_TOPIC: origin[0],
            ORIGIN_PARTITION: str(origin[1]),
            ORIGIN_OFFSET: str(origin[2]),
            ORIGIN_TIMESTAMP: str(origin[3]),
            EXCEPTION_CLASS: exception_class,
            EXCEPTION_MESSAGE: (str(exc) or type(exc).__name__)[:MAX_MESSAGE_CHARS],
        }
        return strip_retry_headers(msg_headers) + [(k, v.encode("utf-8")) for k, v in values.items()]


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

    def __init__(self, consumer: Consumer, retry_topics: Iterable[str], clock: Callable[[], float] = time.time):
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
            tp = (msg.topic(), msg.partition())
            if tp in self.held:
                continue  # a record before this one is not due: keep the partition's order
            if msg.topic() in self.retry_topics:
                due = retry_state(msg.headers()).due_ms
                if due > now_ms:
                    self._hold(msg, due)
                    continue
            admitted.append(msg)
        return admitted

    def _hold(self, msg: Message, due_ms: int) -> None:
        tp = TopicPartition(msg.topic(), msg.partition(), msg.offset())
        self.held[(msg.topic(), msg.partition())] = due_ms
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
