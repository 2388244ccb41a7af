"""Retry schedule, retry headers and the retry gate's hold/release logic."""
from __future__ import annotations

import pytest
from confluent_kafka import TopicPartition

from streams import retry
from streams.faults import INJECTED_ATTEMPTS, injected_failure
from streams.retry import RetryGate, RetryPolicy, RetryState, retry_state, strip_retry_headers


class Msg:
    """The slice of ``confluent_kafka.Message`` the gate reads."""

    def __init__(self, topic, partition, offset, headers=None):
        self._t, self._p, self._o, self._h = topic, partition, offset, headers

    def topic(self): return self._t
    def partition(self): return self._p
    def offset(self): return self._o
    def headers(self): return self._h


class Consumer:
    """Records pause/resume/seek calls."""

    def __init__(self):
        self.calls = []

    def pause(self, tps): self.calls.append(("pause", [(t.topic, t.partition) for t in tps]))
    def resume(self, tps): self.calls.append(("resume", [(t.topic, t.partition) for t in tps]))
    def seek(self, tp): self.calls.append(("seek", (tp.topic, tp.partition, tp.offset)))


def test_schedule_and_exhaustion():
    p = RetryPolicy((1.0, 10.0, 60.0), jitter=0.2, rng=lambda: 0.5)
    assert p.max_attempts == 4
    assert [p.delay(n) for n in (1, 2, 3)] == [1.1, 11.0, 66.0]
    assert not p.exhausted(3) and p.exhausted(4)
    with pytest.raises(ValueError):
        p.delay(4)


def test_retry_headers_keep_the_original_and_round_trip():
    p = RetryPolicy((1.0, 10.0), jitter=0.0)
    original = [("trace", b"abc"), (retry.ATTEMPT, b"7")]
    h = p.retry_headers(original, state=RetryState(), origin=("ns.texts", 2, 41, 1_700_000_000_000),
                        exc=TimeoutError("slow"), exception_class="builtins.TimeoutError", now_ms=1_000)
    st = retry_state(h)
    assert (st.attempt, st.due_ms, st.first_failed_at) == (1, 2_000, 1_000)
    assert (st.origin_topic, st.origin_partition, st.origin_offset) == ("ns.texts", 2, 41)
    assert st.origin_timestamp == 1_700_000_000_000
    assert strip_retry_headers(h) == [("trace", b"abc")]
    h2 = p.retry_headers(h, state=st, origin=("ns.texts", 2, 41, 1_700_000_000_000), exc=TimeoutError("slow"),
                         exception_class="builtins.TimeoutError", now_ms=5_000)
    st2 = retry_state(h2)
    assert (st2.attempt, st2.due_ms, st2.first_failed_at) == (2, 15_000, 1_000)


def test_malformed_retry_headers_count_as_first_delivery():
    assert retry_state([(retry.ATTEMPT, b"x"), (retry.DUE, None)]) == RetryState()


def test_gate_holds_a_partition_until_its_head_is_due_and_keeps_order():
    now = [100.0]
    c = Consumer()
    gate = RetryGate(c, ["ns.retry.embed"], clock=lambda: now[0])
    due_later = [(retry.DUE, b"105000")]
    msgs = [Msg("ns.texts", 0, 5), Msg("ns.retry.embed", 1, 7, due_later), Msg("ns.retry.embed", 1, 8),
            Msg("ns.retry.embed", 0, 3, [(retry.DUE, b"99000")])]
    admitted = gate.admit(msgs)
    assert [(m.topic(), m.offset()) for m in admitted] == [("ns.texts", 5), ("ns.retry.embed", 3)]
    assert ("pause", [("ns.retry.embed", 1)]) in c.calls and ("seek", ("ns.retry.embed", 1, 7)) in c.calls
    assert gate.next_due_in() == pytest.approx(5.0)
    assert gate.release_due() == []
    now[0] = 105.0
    assert gate.release_due() == [("ns.retry.embed", 1)]
    assert c.calls[-1] == ("resume", [("ns.retry.embed", 1)]) and not gate.held


def test_gate_forgets_revoked_partitions():
    gate = RetryGate(Consumer(), ["r"], clock=lambda: 0.0)
    gate.admit([Msg("r", 2, 1, [(retry.DUE, b"999999")])])
    gate.forget([TopicPartition("r", 2)])
    assert not gate.held


def test_fault_injection_is_deterministic_and_bounded():
    keys = [f"doc-{i}".encode() for i in range(2000)]
    chosen = [k for k in keys if injected_failure("embed", k, 0, 0.1) is not None]
    assert 150 < len(chosen) < 250  # about 10 %
    assert chosen == [k for k in keys if injected_failure("embed", k, 0, 0.1) is not None]
    assert all(injected_failure("embed", k, INJECTED_ATTEMPTS, 0.1) is None for k in chosen)
    assert injected_failure("embed", chosen[0], 0, 0.0) is None
    assert injected_failure("embed", chosen[0], 0, 0.1).permanent is False
