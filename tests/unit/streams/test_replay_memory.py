"""Dead letters replayed to their origin topic on the in-memory broker: the runner dead-letters a
record, the fixed stage processes the replayed copy, and a second replay skips what the ledger
says was replayed already (tests/integration/test_dlq_replay.py does the same on Kafka)."""
from __future__ import annotations

from conveyor.dlq.inspect import DeadLetterFilter, iter_dead_letters
from conveyor.dlq.replay import replay
from conveyor.streams.runtime.health import Health
from conveyor.streams.runtime.runner import Runner, Stage
from tests.unit.streams.memory_kafka import MemoryDeadLetterStore
from tests.unit.streams.test_runner_memory import DOCS, NS, TEXTS, Titles, _run


class Fixed(Titles):
    """The stage after the fix: ``bad*`` files are fine now."""

    def process_one(self, record):
        return [{**self.meta(record), "doc_id": record["doc_id"], "text": record["filename"].upper()}]


def test_a_dead_letter_replayed_after_the_fix_is_processed_once(kafka):
    settings, broker, serde = kafka
    broker.logs[f"{NS}.dlq.replays"] = [[]]
    _run(settings, broker, serde, Stage(Titles(), ("documents",), "texts"), [("x", "bad.pdf")])
    store = MemoryDeadLetterStore(broker, NS, ["titles"], serde)
    [dead] = iter_dead_letters(store, DeadLetterFilter(), timeout=1)
    assert dead.doc_id == "x" and broker.records(TEXTS) == []

    report = replay(store, DeadLetterFilter(), timeout=1, by="test")
    assert report.replayed == 1 and [m.key() for m in broker.records(DOCS)].count(dead.key) == 2
    Runner(settings, Stage(Fixed(), ("documents",), "texts"), serde=serde, health=Health(),
           clients=broker.clients()).run(max_idle_seconds=0.2)
    assert [serde.decode(TEXTS, m.value())["text"] for m in broker.records(TEXTS)] == ["BAD.PDF"]

    again = replay(store, DeadLetterFilter(), timeout=1, by="test")
    assert again.replayed == 0 and again.skipped_already_replayed == 1
