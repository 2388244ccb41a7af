"""The retry gate's hold/release logic and the fault injection that drives retries."""
from __future__ import annotations

import pytest
from confluent_kafka import TopicPartition

from conveyor.dlq.envelope import RETRY_DUE
from conveyor.streams.runtime.faults import INJECTED_ATTEMPTS, injected_failure
from conveyor.streams.runtime.retry_gate import RetryGate


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


def test_gate_holds_a_partition_until_its_head_is_due_and_keeps_order():
    now = [100.0]
    c = Consumer()
    gate = RetryGate(c, ["ns.retry.embed"], clock=lambda: now[0])
    due_later = [(RETRY_DUE, b"105000")]
    msgs = [Msg("ns.texts", 0, 5), Msg("ns.retry.embed", 1, 7, due_later), Msg("ns.retry.embed", 1, 8),
            Msg("ns.retry.embed", 0, 3, [(RETRY_DUE, b"99000")])]
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
    gate.admit([Msg("r", 2, 1, [(RETRY_DUE, b"999999")])])
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
