"""Retry topics, exactly-once transactions and rebalances, against the real broker and registry."""
from __future__ import annotations

import dataclasses
import threading
import time
from collections import defaultdict

from confluent_kafka import TopicPartition
from prometheus_client import REGISTRY

from conveyor.dlq import envelope
from conveyor.processors.base import Processor
from conveyor.processors.errors import TransientError
from conveyor.streams.kafka.admin import create_topics
from conveyor.streams.kafka.clients import make_admin, make_consumer
from conveyor.streams.kafka.delivery import TransactionalDelivery
from conveyor.streams.kafka.io import InputProducer
from conveyor.streams.kafka.topics import topic
from conveyor.streams.runtime.runner import Runner, Stage
from tests.integration.helpers import read_all


class Labeller(Processor):
    """Labels every text 'ok'; fails a text transiently while ``fail(doc_id, attempt)`` says so.

    ``calls[doc_id]`` records the wall-clock time of every attempt.
    """

    name = "classify"
    version = "1.0.0"

    def __init__(self, fail=lambda doc_id, attempt: False, delay: float = 0.0):
        self.fail = fail
        self.delay = delay
        self.calls: dict[str, list[float]] = defaultdict(list)

    def process_one(self, record):
        doc_id = record["doc_id"]
        self.calls[doc_id].append(time.time())
        if self.fail(doc_id, len(self.calls[doc_id])):
            raise TransientError(f"downstream unavailable for {doc_id}")
        time.sleep(self.delay)
        return [{**self.meta(record), "kind": "text", "filename": None, "label": "ok", "confidence": 1.0,
                 "top_labels": [], "model_name": "rule", "model_version": "1", "model_sha256": "-",
                 "routing": "auto", "reasons": [], "duplicates": [], "fields": None}]


def _metric(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _texts(settings, n: int, prefix: str = "text") -> list[str]:
    with InputProducer(settings) as p:
        return [p.text(f"{prefix} {i}")["doc_id"] for i in range(n)]


def test_transient_failures_take_the_retry_topic_and_wait_their_backoff(settings):
    settings = dataclasses.replace(settings, retry_delays=(1.0, 2.0, 2.0), retry_jitter=0.0)
    create_topics(settings)
    ids = _texts(settings, 3)
    before = _metric("conveyor_retried_total", processor="classify", exception="conveyor.processors.errors.TransientError")
    proc = Labeller(fail=lambda doc_id, attempt: attempt <= 2)
    runner = Runner(settings, Stage(proc, ("texts",), "predictions"), batch_size=10)
    runner.run(max_idle_seconds=3.0)

    preds = read_all(settings, topic(settings, "predictions"), expect=3)
    assert sorted(m.key().decode() for m in preds) == sorted(ids)  # exactly once each
    assert read_all(settings, topic(settings, "dlq.classify"), timeout=3) == []
    for doc_id in ids:
        t = proc.calls[doc_id]
        assert len(t) == 3
        assert t[1] - t[0] >= 1.0 and t[2] - t[1] >= 2.0  # never before the backoff
    retried = read_all(settings, topic(settings, "retry.classify"), expect=6)
    attempts = sorted(envelope.decode_headers(m.headers())[envelope.RETRY_ATTEMPT] for m in retried)
    assert attempts == ["1", "1", "1", "2", "2", "2"]
    assert all(envelope.decode_headers(m.headers())[envelope.RETRY_ORIGIN_TOPIC] == topic(settings, "texts") for m in retried)
    assert _metric("conveyor_retried_total", processor="classify",
                   exception="conveyor.processors.errors.TransientError") - before == 6
    assert runner.retried == 6 and runner.dead_lettered == 0


def test_exhausted_retries_become_transient_dead_letters_with_the_original_bytes(settings):
    settings = dataclasses.replace(settings, retry_delays=(0.2, 0.2), retry_jitter=0.0)
    create_topics(settings)
    [doc_id] = _texts(settings, 1)
    [original] = read_all(settings, topic(settings, "texts"), expect=1)
    runner = Runner(settings, Stage(Labeller(fail=lambda d, a: True), ("texts",), "predictions"), batch_size=10)
    runner.run(max_idle_seconds=3.0)

    [dead] = read_all(settings, topic(settings, "dlq.classify"), expect=1)
    h = envelope.decode_headers(dead.headers())
    assert dead.key().decode() == doc_id and dead.value() == original.value()
    assert h[envelope.ORIGIN_TIMESTAMP] == str(original.timestamp()[1])  # the dead letter itself: written now
    assert h[envelope.ERROR_CLASS] == "transient" and h[envelope.ATTEMPT] == "3"
    assert h[envelope.ORIGIN_TOPIC] == topic(settings, "texts")
    assert h[envelope.ORIGIN_OFFSET] == str(original.offset())
    assert int(h[envelope.FIRST_FAILED_AT]) + 400 <= int(h[envelope.FAILED_AT])  # two backoffs of 0.2 s
    assert not any(k.startswith(envelope.RETRY) for k, _ in dead.headers())
    assert read_all(settings, topic(settings, "predictions"), timeout=2) == []


def test_a_waiting_retry_does_not_block_new_records(settings):
    settings = dataclasses.replace(settings, retry_delays=(6.0,), retry_jitter=0.0)
    create_topics(settings)
    [slow] = _texts(settings, 1, prefix="slow")
    proc = Labeller(fail=lambda doc_id, attempt: doc_id == slow and attempt == 1)
    runner = Runner(settings, Stage(proc, ("texts",), "predictions"), batch_size=10)
    thread = threading.Thread(target=runner.run, kwargs={"max_idle_seconds": 2.0}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not proc.calls.get(slow):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    later = _texts(settings, 5, prefix="later")
    thread.join(60)
    assert not thread.is_alive()
    failed_at = proc.calls[slow][0]
    assert all(proc.calls[d][0] < failed_at + 6.0 for d in later)  # served while slow waited
    assert proc.calls[slow][1] >= failed_at + 6.0
    preds = read_all(settings, topic(settings, "predictions"), expect=6)
    assert sorted(m.key().decode() for m in preds) == sorted([slow, *later])


def test_aborted_transaction_is_invisible_and_committed_one_carries_offsets(settings):
    create_topics(settings)
    ids = _texts(settings, 2)
    out = topic(settings, "predictions")
    group = settings.group_id("classify")
    consumer = make_consumer(settings, group)
    consumer.subscribe([topic(settings, "texts")])
    msgs = []
    deadline = time.monotonic() + 30
    while len(msgs) < 2 and time.monotonic() < deadline:
        msgs += [m for m in consumer.consume(10, 0.5) if m.error() is None]
    delivery = TransactionalDelivery(settings, "classify")
    delivery.begin()
    delivery.produce(out, key=b"aborted", value=b"x")
    delivery.producer.flush(10)  # written to the log, then aborted
    delivery.abort()
    delivery.begin()
    delivery.produce(out, key=b"committed", value=b"y")
    next_offsets: dict[int, int] = {}
    for m in msgs:  # both texts may sit on one partition: commit its highest offset + 1
        next_offsets[m.partition()] = max(next_offsets.get(m.partition(), 0), m.offset() + 1)
    offsets = [TopicPartition(msgs[0].topic(), p, o) for p, o in next_offsets.items()]
    delivery.commit(consumer, offsets)
    delivery.close()

    seen = read_all(settings, out, expect=1, timeout=5)  # read_committed
    assert [m.key() for m in seen] == [b"committed"]
    uncommitted = read_all(settings, out, timeout=5, **{"isolation.level": "read_uncommitted"})
    assert sorted(m.key() for m in uncommitted) == [b"aborted", b"committed"]
    committed = consumer.committed([TopicPartition(msgs[0].topic(), p) for p in next_offsets], timeout=10)
    assert {(tp.partition, tp.offset) for tp in committed} == set(next_offsets.items())
    consumer.close()
    assert len(ids) == 2


def test_rebalance_mid_stream_loses_and_doubles_nothing(settings):
    create_topics(settings)
    ids = _texts(settings, 300)
    procs = [Labeller(delay=0.04), Labeller(delay=0.04)]
    runners = [Runner(settings, Stage(p, ("texts",), "predictions"), batch_size=10) for p in procs]
    first = threading.Thread(target=runners[0].run, kwargs={"max_idle_seconds": 4.0}, daemon=True)
    first.start()
    deadline = time.monotonic() + 60
    while runners[0].processed < 30:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    second = threading.Thread(target=runners[1].run, kwargs={"max_idle_seconds": 8.0}, daemon=True)
    second.start()  # joins the group: cooperative-sticky moves some partitions to it
    time.sleep(4.0)
    assert runners[0].processed < 300
    runners[0].stop()  # finishes its batch, commits, leaves: its partitions move to the second
    first.join(120)
    second.join(120)
    assert runners[1].processed > 0  # the second instance took over mid-stream
    preds = read_all(settings, topic(settings, "predictions"), expect=300, timeout=30)
    keys = [m.key().decode() for m in preds]
    assert len(keys) == 300 and sorted(keys) == sorted(ids)


class PoisonAware(Labeller):
    """Fails permanently on the record keyed ``t-poison``."""

    def process_one(self, record):
        if record["doc_id"] == "t-poison":
            self.calls[record["doc_id"]].append(time.time())
            raise ValueError("poison pill")
        return super().process_one(record)


def _set_topic_config(settings, name: str, key: str, value: str) -> None:
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource

    res = ConfigResource(ConfigResource.Type.TOPIC, name,
                         incremental_configs=[ConfigEntry(key, value, incremental_operation=AlterConfigOpType.SET)])
    admin = make_admin(settings)
    for fut in admin.incremental_alter_configs([res]).values():
        fut.result(10)


def test_a_failed_dead_letter_write_commits_nothing(settings):
    create_topics(settings)
    with InputProducer(settings) as p:
        good = p.text("fine", doc_id="t-good")["doc_id"]
        p.text("poison", doc_id="t-poison")
    dlq_topic = topic(settings, "dlq.classify")
    _set_topic_config(settings, dlq_topic, "max.message.bytes", "200")  # the broker refuses the dead letter
    proc = PoisonAware()
    runner = Runner(settings, Stage(proc, ("texts",), "predictions"), batch_size=10)
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    time.sleep(8.0)
    runner.stop()
    thread.join(30)
    assert len(proc.calls[good]) >= 2  # the batch was aborted and processed again
    assert read_all(settings, topic(settings, "predictions"), timeout=3) == []  # aborted: invisible
    texts = topic(settings, "texts")
    c = make_consumer(settings, settings.group_id("classify"))
    committed = c.committed([TopicPartition(texts, p) for p in range(3)], timeout=10)
    c.close()
    assert all(tp.offset < 0 for tp in committed)  # nothing committed

    _set_topic_config(settings, dlq_topic, "max.message.bytes", str(settings.max_message_bytes))
    runner = Runner(settings, Stage(proc, ("texts",), "predictions"), batch_size=10)
    runner.run(max_idle_seconds=3.0)
    assert [m.key() for m in read_all(settings, dlq_topic, expect=1)] == [b"t-poison"]
    assert [m.key() for m in read_all(settings, topic(settings, "predictions"), expect=1)] == [b"t-good"]
