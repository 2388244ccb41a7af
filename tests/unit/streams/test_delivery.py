"""The transactional delivery's recovery paths without a broker: a retriable commit error is
retried, a fatal error replaces the producer (same transactional id, which fences the old one),
and a transaction call that hangs (librdkafka #5456) is abandoned after the watchdog."""
from __future__ import annotations

import threading

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from conveyor.streams.config.settings import Settings
from conveyor.streams.kafka.delivery import TransactionalDelivery


class Producer:
    """Records transaction calls; ``commit_errors`` are raised by the next commits in turn;
    ``hang`` blocks ``send_offsets_to_transaction`` until released."""

    made: list[Producer] = []

    def __init__(self, **conf):
        self.conf, self.calls, self.commit_errors, self.hang = conf, [], [], None
        Producer.made.append(self)

    def init_transactions(self, timeout): self.calls.append("init")
    def begin_transaction(self): self.calls.append("begin")
    def abort_transaction(self, timeout): self.calls.append("abort")
    def flush(self, timeout=None): self.calls.append("flush")

    def send_offsets_to_transaction(self, offsets, metadata, timeout):
        self.calls.append("offsets")
        if self.hang is not None:
            self.hang.wait()

    def commit_transaction(self, timeout):
        self.calls.append("commit")
        if self.commit_errors:
            raise KafkaException(self.commit_errors.pop(0))


class Consumer:
    def consumer_group_metadata(self):
        return "group-metadata"


@pytest.fixture
def delivery():
    Producer.made = []
    return TransactionalDelivery(Settings(namespace="d"), "embed", transactional_id="d.embed.0",
                                 producer_factory=Producer)


def test_a_retriable_commit_error_is_retried(delivery):
    retriable = KafkaError(KafkaError._TIMED_OUT, "slow coordinator", retriable=True)
    delivery.producer.commit_errors = [retriable]
    delivery.begin()
    delivery.commit(Consumer(), [TopicPartition("d.texts", 0, 5)])
    assert delivery.producer.calls == ["init", "begin", "offsets", "commit", "commit"] and not delivery.open


def test_a_fatal_error_replaces_the_producer_with_the_same_transactional_id(delivery):
    fenced = KafkaError(KafkaError._FENCED, "fenced", fatal=True)
    delivery.producer.commit_errors = [fenced]
    delivery.begin()
    with pytest.raises(KafkaException) as raised:
        delivery.commit(Consumer(), [TopicPartition("d.texts", 0, 5)])
    delivery.abort(raised.value)
    assert len(Producer.made) == 2 and delivery.producer is Producer.made[1]
    assert {p.conf["transactional.id"] for p in Producer.made} == {"d.embed.0"}


def test_a_hung_offsets_call_is_abandoned_after_the_watchdog(delivery):
    delivery.watchdog_timeout, delivery.watchdog_grace = 0.05, 0.05
    release = threading.Event()
    delivery.producer.hang = release
    delivery.begin()
    try:
        with pytest.raises(KafkaException) as raised:
            delivery.commit(Consumer(), [TopicPartition("d.texts", 0, 5)])
    finally:
        release.set()
    assert raised.value.args[0].code() == KafkaError._TIMED_OUT
    assert delivery.producer is Producer.made[1] and not delivery.open
