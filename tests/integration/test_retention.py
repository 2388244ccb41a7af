"""Records of old inputs outlive the broker's retention check (issue: dead letters and retry
records of old inputs were deleted within minutes).

A broker of the test's own checks retention every second. Inputs carry a timestamp from
November 2023, far past the 72 h retention. The input topic itself keeps its records
(``retention.ms=-1`` here), so what is tested is only what Conveyor writes: before the fix,
the dead letter, the retry record (and with it the input waiting for its retry) were gone
within a second or two of being written.
"""
from __future__ import annotations

import dataclasses
import threading
import time
from collections import defaultdict

import pytest
from confluent_kafka import TIMESTAMP_LOG_APPEND_TIME
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType

from conveyor.dlq import envelope
from conveyor.dlq.inspect import DeadLetterFilter, iter_dead_letters
from conveyor.dlq.replay import replay
from conveyor.processors.base import Processor
from conveyor.processors.errors import TransientError
from conveyor.streams.kafka.admin import create_topics
from conveyor.streams.kafka.clients import make_admin
from conveyor.streams.kafka.deadletters import KafkaDeadLetterStore
from conveyor.streams.kafka.io import InputProducer
from conveyor.streams.kafka.topics import topic
from conveyor.streams.runtime.runner import Runner, Stage
from tests.integration.helpers import Broker, keep_forever, read_all

OLD = 1_700_000_000_000
"""2023-11-14: older than any retention the topics have."""
CHECK_MS = 1000


class Picky(Processor):
    """Fails ``perm-*`` permanently (always), ``flaky-*`` transiently on its first attempt."""

    name = "classify"
    version = "1.0.0"

    def __init__(self):
        self.calls: dict[str, int] = defaultdict(int)

    def process_one(self, record):
        doc_id = record["doc_id"]
        self.calls[doc_id] += 1
        if doc_id.startswith("perm"):
            raise ValueError(f"cannot label {doc_id}")
        if doc_id.startswith("flaky") and self.calls[doc_id] == 1:
            raise TransientError(f"downstream unavailable for {doc_id}")
        return [{**self.meta(record), "kind": "text", "filename": None, "label": "ok", "confidence": 1.0,
                 "top_labels": [], "model_name": "rule", "model_version": "1", "model_sha256": "-",
                 "routing": "auto", "reasons": [], "duplicates": [], "fields": None}]


@pytest.fixture(scope="module")
def quick_retention(stack_settings, tmp_path_factory):
    """Settings of a broker of this module's own that deletes expired segments every second."""
    broker = Broker(stack_settings, tmp_path_factory.mktemp("retention-broker"), kafka_retention_check_ms=CHECK_MS)
    broker.start()
    try:
        yield broker.settings
    finally:
        broker.stop()


def _run(settings, records: int, timeout: float = 90.0) -> Runner:
    """Run the stage until it has committed ``records`` records (a fresh broker takes a few
    seconds to load its group coordinator), then stop it."""
    runner = Runner(settings, Stage(Picky(), ("texts",), "predictions"), batch_size=10)
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while runner.processed < records and time.monotonic() < deadline and thread.is_alive():
        time.sleep(0.2)
    runner.stop()
    thread.join(60)
    assert runner.processed == records
    return runner


def test_dead_letters_retry_records_and_results_of_old_inputs_survive_retention(quick_retention, tmp_path):
    settings = dataclasses.replace(quick_retention, namespace=f"r{time.monotonic_ns() % 10**10}",
                                   milvus_uri=str(tmp_path / "milvus.db"), blob_dir=tmp_path / "blobs",
                                   retry_delays=(4.0,), retry_jitter=0.0)
    create_topics(settings)
    keep_forever(settings, "texts")
    with InputProducer(settings) as p:
        for doc_id in ("perm-1", "flaky-1", "fine-1"):
            p.text(f"text of {doc_id}", doc_id=doc_id, timestamp=OLD)

    runner = _run(settings, 4)  # 3 inputs + 1 retry, which waits 4 s: four retention checks meanwhile
    assert (runner.dead_lettered, runner.retried) == (1, 1)
    time.sleep(4 * CHECK_MS / 1000)  # more checks after the last write

    preds = read_all(settings, topic(settings, "predictions"), expect=2, timeout=10)
    assert sorted(m.key().decode() for m in preds) == ["fine-1", "flaky-1"]
    [retried] = read_all(settings, topic(settings, "retry.classify"), expect=1, timeout=10)
    assert retried.key() == b"flaky-1"
    assert envelope.decode_headers(retried.headers())[envelope.RETRY_ORIGIN_TIMESTAMP] == str(OLD)
    [dead] = read_all(settings, topic(settings, "dlq.classify"), expect=1, timeout=10)
    assert dead.key() == b"perm-1"
    ts_type, written = dead.timestamp()
    assert ts_type == TIMESTAMP_LOG_APPEND_TIME and written > time.time() * 1000 - 120_000
    assert envelope.decode_headers(dead.headers())[envelope.ORIGIN_TIMESTAMP] == str(OLD)

    # `dlq list/show` report the input's original time, and a replay keeps it through a second failure.
    [d] = iter_dead_letters(KafkaDeadLetterStore(settings), DeadLetterFilter(processor="classify"))
    assert d.timestamp == OLD and d.written_at == written
    assert replay(KafkaDeadLetterStore(settings), DeadLetterFilter(processor="classify")).replayed == 1
    _run(settings, 1)
    time.sleep(2 * CHECK_MS / 1000)
    dead_letters = sorted(iter_dead_letters(KafkaDeadLetterStore(settings), DeadLetterFilter(processor="classify")),
                          key=lambda x: x.offset)
    assert [x.doc_id for x in dead_letters] == ["perm-1", "perm-1"]
    assert [x.timestamp for x in dead_letters] == [OLD, OLD]
    replayed = [m for m in read_all(settings, topic(settings, "texts"), expect=4, timeout=10)
                if envelope.REPLAY_ORIGIN_TIMESTAMP in envelope.decode_headers(m.headers())]
    assert len(replayed) == 1 and replayed[0].timestamp()[1] > OLD


def test_topics_create_aligns_the_timestamp_type_of_existing_topics(quick_retention, tmp_path):
    settings = dataclasses.replace(quick_retention, namespace=f"r{time.monotonic_ns() % 10**10}")
    assert set(create_topics(settings).values()) == {"created"}
    dlq = topic(settings, "dlq.embed")
    admin = make_admin(settings)
    res = ConfigResource(ResourceType.TOPIC, dlq, incremental_configs=[
        ConfigEntry("message.timestamp.type", "CreateTime", incremental_operation=AlterConfigOpType.SET)])
    for fut in admin.incremental_alter_configs([res]).values():
        fut.result()
    deadline = time.monotonic() + 30  # brokers apply a config change from the metadata log shortly after
    while _timestamp_type(admin, dlq) != "CreateTime" and time.monotonic() < deadline:
        time.sleep(0.2)

    result = create_topics(settings)
    assert result[dlq] == "updated" and result[topic(settings, "texts")] == "exists"
    deadline = time.monotonic() + 30
    while _timestamp_type(admin, dlq) != "LogAppendTime" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _timestamp_type(admin, dlq) == "LogAppendTime"
    assert _timestamp_type(admin, topic(settings, "texts")) == "CreateTime"


def _timestamp_type(admin, name: str) -> str:
    [(_, fut)] = admin.describe_configs([ConfigResource(ResourceType.TOPIC, name)]).items()
    return fut.result()["message.timestamp.type"].value
