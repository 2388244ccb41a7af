"""The failure policy: backoff schedule, exhaustion, and where a failure goes."""
from __future__ import annotations

import pytest

from conveyor.dlq import envelope
from conveyor.dlq.policy import FailurePolicy
from conveyor.processors.errors import TransientError

ORIGIN = envelope.Origin("ns.texts", 2, 41, 1_700_000_000_000)
WHO = {"processor": "embed", "version": "1", "group": "ns.embed"}


def test_schedule_and_exhaustion():
    p = FailurePolicy((1.0, 10.0, 60.0), jitter=0.2, rng=lambda: 0.5)
    assert p.max_attempts == 4
    assert [p.delay(n) for n in (1, 2, 3)] == [1.1, 11.0, 66.0]
    assert not p.exhausted(3) and p.exhausted(4)
    with pytest.raises(ValueError):
        p.delay(4)


def test_transient_failures_retry_until_the_schedule_is_used_up():
    p = FailurePolicy((1.0, 10.0), jitter=0.0)
    first = p.route(TransientError("slow"), ORIGIN, previous=None, now_ms=1_000, **WHO)
    assert first.retry and first.prefix == envelope.RETRY
    assert (first.failure.attempt, first.failure.due, first.failure.first_failed_at) == (1, 2_000, 1_000)
    assert first.failure.origin == ORIGIN
    second = p.route(TransientError("slow"), ORIGIN, previous=first.failure, now_ms=5_000, **WHO)
    assert second.retry and (second.failure.attempt, second.failure.due, second.failure.first_failed_at) == \
        (2, 15_000, 1_000)
    last = p.route(TransientError("slow"), ORIGIN, previous=second.failure, now_ms=20_000, **WHO)
    assert not last.retry and last.prefix == envelope.DLQ
    assert (last.failure.attempt, last.failure.error_class, last.failure.due) == (3, "transient", None)
    assert last.failure.first_failed_at == 1_000 and last.failure.failed_at == 20_000


def test_permanent_failures_and_policies_without_delays_dead_letter_at_once():
    assert FailurePolicy((1.0,)).route(ValueError("bad"), ORIGIN, previous=None, **WHO).prefix == envelope.DLQ
    route = FailurePolicy().route(TransientError("down"), ORIGIN, previous=None, **WHO)
    assert route.prefix == envelope.DLQ and route.failure.error_class == "transient"
