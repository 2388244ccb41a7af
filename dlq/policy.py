"""Failure routing: permanent or transient, retry or dead letter, and when — in one place.

An exception is **transient** when it says so (a ``permanent`` attribute set to ``False``:
:class:`conveyor.processors.errors.TransientError`, a sink's unavailable error), otherwise
**permanent**. A permanent failure goes straight to the dead-letter topic; a transient one
goes to the stage's retry topic, due after the backoff of its attempt, until the schedule
is used up and it too becomes a dead letter (error class ``transient``). This is the
"non-blocking retry topics" pattern of Spring Kafka's ``@RetryableTopic``.

Every stage uses :class:`FailurePolicy` (its delays from the pipeline definition or
``CONVEYOR_RETRY_DELAYS[_<STAGE>]``); the drift monitor uses one without delays, so its
failures are dead letters at once.
"""
from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Optional

from conveyor.dlq.envelope import DLQ, RETRY, Failure, Origin, describe
from conveyor.processors.base import now_millis

PERMANENT = "permanent"
TRANSIENT = "transient"


def error_class(exc: BaseException) -> str:
    """``permanent`` unless the exception says it is transient (``permanent = False``)."""
    return PERMANENT if getattr(exc, "permanent", True) else TRANSIENT


@dataclass(frozen=True)
class Route:
    """Where a failed record goes: ``prefix`` is :data:`~conveyor.dlq.envelope.RETRY` (the
    retry topic) or :data:`~conveyor.dlq.envelope.DLQ` (the dead-letter topic); ``failure``
    is the envelope to attach."""

    prefix: str
    failure: Failure

    @property
    def retry(self) -> bool:
        """Whether the record goes to the retry topic."""
        return self.prefix == RETRY


@dataclass(frozen=True)
class FailurePolicy:
    """Backoff schedule: ``delays[i]`` seconds before attempt ``i + 2``; jitter adds up to
    ``jitter * delay`` at random ("Exponential Backoff And Jitter", AWS Architecture Blog,
    2015). ``len(delays)`` retries, then the dead-letter topic; no delays: no retry."""

    delays: tuple[float, ...] = ()
    jitter: float = 0.0
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

    def route(self, exc: BaseException, origin: Origin, *, previous: Optional[Failure], processor: str,
              version: str, group: str, now_ms: Optional[int] = None) -> Route:
        """Where a record that just failed with ``exc`` goes, and its envelope.

        Args:
            exc: the failure.
            origin: where the record was first read (``previous.origin`` for a retry record).
            previous: the envelope of the retry record that failed again, or ``None`` on a
                first delivery.
            processor: the failing stage's name.
            version: its version.
            group: its consumer group.
            now_ms: the failure time, epoch ms (default now).
        """
        now_ms = now_millis() if now_ms is None else now_ms
        attempt = (previous.attempt if previous else 0) + 1
        first = previous.first_failed_at if previous and previous.first_failed_at else now_ms
        cls = error_class(exc)
        retry = cls == TRANSIENT and not self.exhausted(attempt)
        due = now_ms + int(self.delay(attempt) * 1000) if retry else None
        failure = describe(exc, origin, processor=processor, version=version, group=group, error_class=cls,
                           attempt=attempt, first_failed_at=first, failed_at=now_ms, due=due)
        return Route(RETRY if retry else DLQ, failure)
