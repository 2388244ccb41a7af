"""The crash-loop breaker's count survives other isolated records read first after a restart."""
from __future__ import annotations

from confluent_kafka import Message

from conveyor.streams.runtime.poison import MAX_CRASHES, CrashGuard


def _msg(partition: int, offset: int) -> Message:
    return Message(topic="ns.texts", partition=partition, offset=offset, key=b"k", value=b"v")


def test_poison_is_dead_lettered_even_when_other_partitions_come_first(tmp_path):
    path = tmp_path / "inflight.json"
    poison, others = _msg(0, 7), [_msg(1, 3), _msg(2, 4)]
    CrashGuard(path).admit([poison, *others])  # the first batch: the process dies in it
    for crash in range(1, MAX_CRASHES + 1):
        guard = CrashGuard(path)  # a restarted process
        if crash > 1:  # this time another partition's in-flight record is fetched first, and goes fine
            other = others[crash - 2]
            assert guard.admit([other, poison]) == ([other], None, [poison])
            guard.committed([other])
        process, dead, _ = guard.admit([poison])
        assert (process, dead) == ([poison], None)  # processed alone again: the process dies
    process, dead, put_back = CrashGuard(path).admit([poison])
    assert (process, dead, put_back) == ([], poison, [])


def test_an_isolated_record_behind_a_normal_one_is_not_processed_with_it(tmp_path):
    path = tmp_path / "inflight.json"
    poison, normal, later = _msg(0, 7), _msg(1, 9), _msg(1, 10)
    CrashGuard(path).admit([poison])  # the process dies with the poison alone in flight
    guard = CrashGuard(path)
    assert guard.admit([normal, poison, later]) == ([normal], None, [poison, later])
    guard.committed([normal])
    assert guard.admit([poison, later]) == ([poison], None, [later])
    assert CrashGuard(path).admit([poison])[0] == [poison]  # third crash still counted
    assert CrashGuard(path).admit([poison]) == ([], poison, [])
