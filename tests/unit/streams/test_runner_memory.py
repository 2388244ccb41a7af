"""The runner's batch loop on the in-memory broker (``memory_kafka``): outputs and offsets
committed together, transient failures retried then dead-lettered with the original bytes,
an aborted commit rewound and redone, and sink backpressure pausing partitions without loss.
The same runner runs on real Kafka in tests/integration and tests/faults."""
from __future__ import annotations

from conveyor.dlq import envelope
from conveyor.processors.base import Processor
from conveyor.processors.errors import CorruptDocumentError, TransientError
from conveyor.sinks.base import Sink, SinkBackpressureError
from conveyor.streams.kafka.serde import key_bytes
from conveyor.streams.runtime.health import Health
from conveyor.streams.runtime.runner import Runner, Stage

NS = "mem"
DOCS, TEXTS = f"{NS}.documents", f"{NS}.texts"


class Titles(Processor):
    """documents → texts: each document's file name as a text; ``bad*`` files are corrupt,
    ``flaky*`` ones fail transiently ``flaky_times`` times."""

    name = "titles"

    def __init__(self, flaky_times: int = 0):
        self.flaky_left = flaky_times

    def process_one(self, record):
        name = record["filename"]
        if name.startswith("bad"):
            raise CorruptDocumentError(f"{name}: not a document")
        if name.startswith("flaky") and self.flaky_left:
            self.flaky_left -= 1
            raise TransientError("the model server is busy")
        return [{**self.meta(record), "doc_id": record["doc_id"], "text": name.upper()}]


def _document(doc_id: str, filename: str) -> dict:
    return {"doc_id": doc_id, "trace_id": "t-" + doc_id, "event_time": 0, "producer": "test",
            "producer_version": "0", "filename": filename, "size_bytes": 1, "sha256": "0" * 64, "content": b"x"}


def _run(settings, broker, serde, stage, docs) -> Runner:
    for doc_id, filename in docs:
        broker.produce(DOCS, key=key_bytes(doc_id), value=serde.encode(DOCS, _document(doc_id, filename)))
    runner = Runner(settings, stage, serde=serde, health=Health(), clients=broker.clients())
    runner.run(max_idle_seconds=0.2)
    return runner


def test_outputs_and_offsets_are_committed_together(kafka):
    settings, broker, serde = kafka
    runner = _run(settings, broker, serde, Stage(Titles(), ("documents",), "texts"), [("a", "a.pdf"), ("b", "b.pdf")])
    texts = sorted(serde.decode(TEXTS, m.value())["text"] for m in broker.records(TEXTS))
    assert texts == ["A.PDF", "B.PDF"]
    committed = sum(o for (g, t, _), o in broker.committed.items() if g == f"{NS}.titles" and t == DOCS)
    assert committed == 2 and runner.processed == 2


def test_a_transient_failure_is_retried_then_succeeds(kafka):
    settings, broker, serde = kafka
    runner = _run(settings, broker, serde, Stage(Titles(flaky_times=1), ("documents",), "texts"), [("f", "flaky.pdf")])
    assert [serde.decode(TEXTS, m.value())["text"] for m in broker.records(TEXTS)] == ["FLAKY.PDF"]
    assert runner.retried == 1 and broker.records(f"{NS}.dlq.titles") == []


def test_a_permanent_failure_is_dead_lettered_with_its_original_bytes(kafka):
    settings, broker, serde = kafka
    runner = _run(settings, broker, serde, Stage(Titles(), ("documents",), "texts"), [("x", "bad.pdf"), ("y", "y.pdf")])
    [dead] = broker.records(f"{NS}.dlq.titles")
    original = broker.records(DOCS)
    assert dead.value() in [m.value() for m in original] and dead.key() == key_bytes("x")
    failure = envelope.decode(dead.headers(), envelope.DLQ)
    assert failure.error_class == "permanent" and "not a document" in failure.exception_message
    assert failure.origin.topic == DOCS
    assert runner.dead_lettered == 1 and len(broker.records(TEXTS)) == 1


def test_a_failed_commit_is_aborted_rewound_and_redone(kafka):
    settings, broker, serde = kafka
    broker.fail_commits = 1
    runner = _run(settings, broker, serde, Stage(Titles(), ("documents",), "texts"), [("a", "a.pdf")])
    assert [m.key() for m in broker.records(TEXTS)] == [key_bytes("a")]  # once, not twice
    assert runner.delivery.aborts == 1 and runner.delivery.commits >= 1


class SlowSink(Sink):
    """Refuses ``refusals`` flushes with backpressure, then stores what was written."""

    name = "slow"

    def __init__(self, refusals: int):
        self.refusals, self.buffer, self.stored = refusals, [], []

    def rows(self, record):
        return [{"doc_id": record["doc_id"]}]

    def write(self, batch):
        self.buffer.extend(batch)

    def flush(self):
        if self.refusals:
            self.refusals -= 1
            raise SinkBackpressureError("slow down", retry_after=0.05)
        self.stored.extend(self.buffer)
        self.buffer = []

    def discard(self):
        self.buffer = []


class SinkRows(Processor):
    name = "titles"

    def __init__(self, sink):
        self.sink = sink

    def process_one(self, record):
        return self.sink.rows(record)


def test_backpressure_pauses_the_partitions_and_loses_nothing(kafka):
    settings, broker, serde = kafka
    sink = SlowSink(refusals=3)
    runner = _run(settings, broker, serde, Stage(SinkRows(sink), ("documents",), None, sink=sink),
                  [(f"d{i}", f"{i}.pdf") for i in range(5)])
    assert sorted(r["doc_id"] for r in sink.stored) == [f"d{i}" for i in range(5)]
    consumer = runner.consumer
    assert sink.refusals == 0 and consumer.pause_calls >= 3  # paused while refused, then resumed
    assert not runner.paused and not consumer.paused
    assert sum(o for (_, t, _), o in broker.committed.items() if t == DOCS) == 5
