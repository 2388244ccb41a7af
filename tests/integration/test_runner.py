"""The runner against the real broker and registry: outputs, dead letters, commits, backpressure."""
from __future__ import annotations

import json
import os

from click.testing import CliRunner
from prometheus_client import REGISTRY

from conveyor.dlq import envelope
from conveyor.processors.base import Processor
from conveyor.sinks.base import Sink, SinkBackpressureError
from conveyor.streams.cli.main import main
from conveyor.streams.kafka.admin import create_topics
from conveyor.streams.kafka.clients import make_producer
from conveyor.streams.kafka.io import InputProducer
from conveyor.streams.kafka.serde import AvroSerde
from conveyor.streams.kafka.topics import topic
from conveyor.streams.runtime.runner import Runner, Stage
from tests.integration.helpers import cli_env, keep_forever, read_all


class ShoutingClassifier(Processor):
    """Labels a text 'shout' when it is upper case; fails on texts containing 'boom'."""

    name = "classify"
    version = "9.9.9"

    def process_one(self, record):
        if "boom" in record["text"]:
            raise ValueError(f"cannot classify {record['doc_id']}: boom")
        label = "shout" if record["text"].isupper() else "calm"
        return [{**self.meta(record), "kind": "text", "filename": None, "label": label, "confidence": 1.0,
                 "top_labels": [], "model_name": "rule", "model_version": "1", "model_sha256": "-",
                 "routing": "auto", "reasons": [], "duplicates": [], "fields": None}]


def _metric(name: str, **labels) -> float:
    """Current value of a Prometheus sample in this process's default registry (0 if unset)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _run_until_idle(settings, stage, idle=4.0):
    runner = Runner(settings, stage, batch_size=8)
    runner.run(max_idle_seconds=idle)
    return runner


def test_outputs_dead_letters_and_commits(settings):
    create_topics(settings)
    keep_forever(settings, "texts")  # the junk input below is stamped 2023: the retention check must not take it
    texts = topic(settings, "texts")
    with InputProducer(settings) as p:
        ids = [p.text(t)["doc_id"] for t in ("HELLO", "quiet please", "boom goes the input")]
    # A record that is not Avro at all, with a header of its own.
    raw = make_producer(settings)
    raw.produce(texts, key=b"junk-1", value=b"\x9c" + os.urandom(39), headers=[("origin", b"fuzz")], timestamp=1_700_000_000_000)
    raw.flush(10)

    dead_before = _metric("conveyor_dead_lettered_total", processor="classify", error_class="permanent")
    out_before = _metric("conveyor_records_out_total", processor="classify", topic=topic(settings, "predictions"))
    runner = _run_until_idle(settings, Stage(ShoutingClassifier(), ("texts",), "predictions"))
    assert runner.processed == 4 and runner.dead_lettered == 2
    assert _metric("conveyor_dead_lettered_total", processor="classify", error_class="permanent") - dead_before == 2
    assert _metric("conveyor_records_out_total", processor="classify",
                   topic=topic(settings, "predictions")) - out_before == 2

    serde = AvroSerde(settings)
    preds = {m.key().decode(): serde.decode(m.topic(), m.value())
             for m in read_all(settings, topic(settings, "predictions"), expect=2)}
    assert {k: v["label"] for k, v in preds.items()} == {ids[0]: "shout", ids[1]: "calm"}
    assert preds[ids[0]]["producer"] == "classify" and preds[ids[0]]["producer_version"] == "9.9.9"

    dead = {m.key().decode(): m for m in read_all(settings, topic(settings, "dlq.classify"), expect=2)}
    assert set(dead) == {ids[2], "junk-1"}
    junk = dead["junk-1"]
    headers = envelope.decode_headers(junk.headers())
    assert headers["origin"] == "fuzz"  # original headers kept
    assert headers[envelope.ORIGIN_TOPIC] == texts
    assert headers[envelope.EXCEPTION_CLASS] == "conveyor.streams.kafka.serde.DecodeError"
    assert headers[envelope.ERROR_CLASS] == "permanent"
    assert headers[envelope.ORIGIN_TIMESTAMP] == "1700000000000"
    assert junk.timestamp()[1] > 1_700_000_000_000  # stamped when written: retention counts from then
    boom = envelope.decode_headers(dead[ids[2]].headers())
    assert boom[envelope.EXCEPTION_CLASS] == "builtins.ValueError"
    assert "boom" in boom[envelope.EXCEPTION_MESSAGE]
    assert boom[envelope.PROCESSOR] == "classify" and boom[envelope.GROUP] == settings.group_id("classify")
    # The dead letter keeps the original value byte for byte: it still decodes as the input text.
    assert serde.decode(texts, dead[ids[2]].value())["text"] == "boom goes the input"

    # `conveyor dlq list` shows both dead letters with their reasons.
    listed = [json.loads(line) for line in CliRunner().invoke(
        main, ["dlq", "list", "--processor", "classify"], env=cli_env(settings)).output.splitlines()]
    assert {r["key"]: r["error"]["exception.class"] for r in listed} == {
        ids[2]: "builtins.ValueError", "junk-1": "conveyor.streams.kafka.serde.DecodeError"}
    assert all(r["dlq_topic"] == topic(settings, "dlq.classify") and r["value_bytes"] > 0 for r in listed)
    assert {r["key"]: r["timestamp"] for r in listed}["junk-1"] == 1_700_000_000_000  # the input's own time

    # Offsets were committed: a second runner in the same group finds nothing to do.
    again = _run_until_idle(settings, Stage(ShoutingClassifier(), ("texts",), "predictions"), idle=3.0)
    assert again.processed == 0


class FlakySink(Sink):
    """A sink whose first ``failures`` flushes report backpressure."""

    def __init__(self, failures: int):
        self.failures = failures
        self.buffer: list = []
        self.stored: list = []
        self.flush_calls = 0

    def write(self, batch):
        self.buffer.extend(batch)

    def flush(self):
        self.flush_calls += 1
        if self.failures > 0:
            self.failures -= 1
            raise SinkBackpressureError("store unavailable", retry_after=0.5)
        self.stored.extend(self.buffer)
        self.buffer.clear()


class PassThrough(Processor):
    name = "index"

    def process_one(self, record):
        return [{"doc_id": record["doc_id"]}]


def test_backpressure_pauses_then_stores_everything_once(settings):
    create_topics(settings)
    with InputProducer(settings) as p:
        ids = [p.text(f"text {i}")["doc_id"] for i in range(20)]
    sink = FlakySink(failures=3)
    runner = Runner(settings, Stage(PassThrough(), ("texts",), None, sink=sink), batch_size=50)
    paused_seen = []
    orig_wait = runner.pauser.wait

    def spy(seconds, stop):
        paused_seen.append(runner.paused)
        orig_wait(seconds, stop)

    runner.pauser.wait = spy
    runner.run(max_idle_seconds=4.0)
    assert paused_seen and all(paused_seen)
    assert not runner.paused
    assert sorted(r["doc_id"] for r in sink.stored) == sorted(ids)
    assert sink.flush_calls >= 4


class RejectingSink(FlakySink):
    """A sink that permanently rejects any batch containing a row marked 'bad'."""

    def __init__(self):
        super().__init__(failures=0)

    def flush(self):
        if any(r["doc_id"].endswith("bad") for r in self.buffer):
            raise ValueError("row rejected by the store")
        super().flush()

    def discard(self):
        self.buffer.clear()


def test_permanent_sink_rejection_dead_letters_the_batch_and_carries_on(settings):
    create_topics(settings)
    with InputProducer(settings) as p:
        bad = p.text("first", doc_id="t-bad")["doc_id"]
    runner = Runner(settings, Stage(PassThrough(), ("texts",), None, sink=RejectingSink()), batch_size=50)
    runner.run(max_idle_seconds=3.0)
    with InputProducer(settings) as p:
        good = p.text("second", doc_id="t-good")["doc_id"]
    sink = RejectingSink()
    runner = Runner(settings, Stage(PassThrough(), ("texts",), None, sink=sink), batch_size=50)
    runner.run(max_idle_seconds=3.0)
    assert [r["doc_id"] for r in sink.stored] == [good]  # the bad batch was committed, not retried
    dead = read_all(settings, topic(settings, "dlq.index"), expect=1)
    assert [m.key().decode() for m in dead] == [bad]
    assert "row rejected" in envelope.decode_headers(dead[0].headers())[envelope.EXCEPTION_MESSAGE]


class BrokenModel(Processor):
    name = "embed"

    def process_batch(self, records):
        raise RuntimeError("model session crashed")


def test_a_processor_failing_as_a_whole_dead_letters_each_record(settings):
    create_topics(settings)
    with InputProducer(settings) as p:
        ids = {p.text(f"t{i}")["doc_id"] for i in range(3)}
    runner = Runner(settings, Stage(BrokenModel(), ("texts",), "embedded"), batch_size=10)
    runner.run(max_idle_seconds=3.0)
    dead = read_all(settings, topic(settings, "dlq.embed"), expect=3)
    assert {m.key().decode() for m in dead} == ids
