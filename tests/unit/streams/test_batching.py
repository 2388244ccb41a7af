"""Adaptive batching: never wait for a batch to fill while records wait; linger only when asked.

The consumer is a call-recording stand-in holding a local queue (what librdkafka has fetched)."""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

from confluent_kafka.schema_registry import SchemaRegistryClient

from conveyor.processors.base import Processor
from conveyor.streams.config.settings import Settings
from conveyor.streams.kafka.serde import AvroSerde
from conveyor.streams.runtime.health import Health
from conveyor.streams.runtime.runner import Runner, Stage
from tests.unit.streams.memory_kafka import MemoryBroker


class Queue:
    """``consume(n, timeout)`` over a list; records in ``later`` arrive ``after`` seconds into a wait."""

    def __init__(self, now, later=(), after=0.05):
        self.now, self.later, self.after = list(now), list(later), after
        self.calls = []

    def consume(self, n, timeout):
        self.calls.append((n, timeout))
        if not self.now and self.later and timeout >= self.after:
            time.sleep(self.after)
            self.now, self.later = self.later, []
        elif not self.now and timeout:
            time.sleep(min(timeout, 0.2))
        taken, self.now = self.now[:n], self.now[n:]
        return taken


class Echo(Processor):
    name = "echo"

    def process_one(self, record):
        return [record]


def _runner(queue, batch_size=32, linger_ms=0, poll_timeout=0.5) -> Runner:
    """A runner on the in-memory broker whose consumer is ``queue``."""
    settings = Settings(namespace="b", batch_linger_ms=linger_ms, home=Path(tempfile.mkdtemp()))
    broker = MemoryBroker({"b.texts": 1, "b.retry.echo": 1, "b.dlq.echo": 1})
    r = Runner(settings, Stage(Echo(), ("texts",)), batch_size=batch_size, poll_timeout=poll_timeout,
               serde=AvroSerde(settings, client=SchemaRegistryClient.new_client({"url": "mock://"})),
               health=Health(), clients=broker.clients())
    r.consumer = queue
    return r


def test_records_that_wait_are_taken_at_once():
    q = Queue(now=["a", "b", "c"])
    t = time.monotonic()
    assert _runner(q).next_batch() == ["a", "b", "c"]
    assert time.monotonic() - t < 0.4 and q.calls[0] == (32, 0)  # well under the 0.5 s poll timeout


def test_an_empty_queue_waits_for_the_first_record_only():
    q = Queue(now=[], later=["x", "y"], after=0.05)
    assert _runner(q).next_batch() == ["x", "y"]
    assert q.calls[1] == (1, 0.5) and q.calls[-1][1] == 0  # then takes what came with it, without waiting


def test_a_full_queue_gives_full_batches():
    q = Queue(now=list(range(100)))
    assert _runner(q, batch_size=32).next_batch() == list(range(32))


def test_linger_waits_for_more_records_up_to_its_bound():
    q = Queue(now=["a"], later=["b", "c"], after=0.05)
    t = time.monotonic()
    assert _runner(q, linger_ms=200).next_batch() == ["a", "b", "c"]
    assert 0.04 < time.monotonic() - t < 0.3
