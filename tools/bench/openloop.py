"""End-to-end capacity and open-loop latency of the text path on the real stack.

Both run against processors that are already running on ``settings.namespace`` (the caller
starts them: ``embed`` and ``index`` + ``classify``, transactions on) and time each text from the
moment it is produced to the moment its prediction is visible to a ``read_committed`` consumer.

* :func:`capacity` — a burst of texts; texts per second from the first produced to the last
  prediction seen.
* :func:`open_loop` — texts produced at a steady rate (open loop: the producer never waits for
  results, as real users do not), latency percentiles of what came back.
"""
from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
from confluent_kafka import OFFSET_END, TopicPartition

from conveyor.streams.config.settings import Settings
from conveyor.streams.kafka.clients import make_consumer
from conveyor.streams.kafka.io import InputProducer
from conveyor.streams.kafka.topics import topic


@dataclass
class _Watch:
    """Receive times (``time.time()``) of records by key, from a read_committed consumer
    assigned to the end of every partition of the ``role`` topic (``predictions`` by default)."""

    settings: Settings
    role: str = "predictions"
    seen: dict[str, float] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)
    ready: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        consumer = make_consumer(self.settings, f"bench-watch-{uuid.uuid4().hex[:8]}",
                                 **{"statistics.interval.ms": 0, "fetch.wait.max.ms": 10})
        name = topic(self.settings, self.role)
        parts = consumer.list_topics(name, timeout=10).topics[name].partitions
        consumer.assign([TopicPartition(name, p, OFFSET_END) for p in parts])
        try:
            consumer.consume(1, 1.0)  # the assignment takes effect
            self.ready.set()
            while not self.stop.is_set():
                # poll returns on the first record; consume(n, t) would wait for n records or t.
                first = consumer.poll(0.05)
                for msg in ([first] + consumer.consume(500, 0)) if first is not None else []:
                    key = msg.key()
                    if msg.error() is None and key is not None:
                        self.seen.setdefault(key.decode(), time.time())
        finally:
            consumer.close()


def start_watch(settings: Settings, role: str = "predictions") -> tuple[_Watch, threading.Thread]:
    """A started watcher of the ``role`` topic (from its end) and its thread; set ``watch.stop``
    and join the thread when done.

    Raises:
        RuntimeError: the watcher did not get its assignment within 30 s.
    """
    watch = _Watch(settings, role)
    thread = threading.Thread(target=watch.run, name="bench-watch", daemon=True)
    thread.start()
    if not watch.ready.wait(30):
        raise RuntimeError("the predictions watcher did not start")
    return watch, thread


def percentiles(latencies_ms: Sequence[float]) -> dict[str, Optional[float]]:
    """``{"p50", "p95", "p99", "max"}`` of ``latencies_ms`` (ms, one decimal; ``None`` if empty)."""
    if not latencies_ms:
        return {"p50": None, "p95": None, "p99": None, "max": None}
    a = np.asarray(latencies_ms)
    return {"p50": round(float(np.percentile(a, 50)), 1), "p95": round(float(np.percentile(a, 95)), 1),
            "p99": round(float(np.percentile(a, 99)), 1), "max": round(float(a.max()), 1)}


def wait_for(watch: _Watch, ids: Sequence[str], timeout: float) -> None:
    """Return once every key in ``ids`` was seen by ``watch``, or after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not all(i in watch.seen for i in ids):
        time.sleep(0.05)


def text_inputs(texts: Sequence[str]) -> Callable[[Settings], list[str]]:
    """A ``produce`` callable for :func:`burst`: sends ``texts`` to ``<ns>.texts``, returns their
    doc ids."""
    def produce(settings: Settings) -> list[str]:
        with InputProducer(settings) as p:
            return [p.text(t)["doc_id"] for t in texts]
    return produce


def burst(settings: Settings, produce: Callable[[Settings], list[str]], *, role: str = "predictions",
          timeout: float = 600.0) -> dict:
    """Inputs per second through the running pipeline: ``produce(settings)`` sends a burst and
    returns its doc ids; measured up to the moment the last one's record appears on the ``role``
    topic. ``{"inputs", "results", "seconds", "per_s"}`` (``None`` when nothing arrived)."""
    watch, thread = start_watch(settings, role)
    try:
        t0 = time.time()
        ids = produce(settings)
        wait_for(watch, ids, timeout)
    finally:
        watch.stop.set()
        thread.join(10)
    done = [watch.seen[i] for i in ids if i in watch.seen]
    wall = (max(done) - t0) if done else None
    return {"inputs": len(ids), "results": len(done), "seconds": round(wall, 2) if wall else None,
            "per_s": round(len(done) / wall, 2) if wall else None}


def capacity(settings: Settings, texts: Sequence[str], *, timeout: float = 600.0,
             role: str = "predictions") -> dict:
    """Texts per second through the running pipeline for a burst of ``texts`` (:func:`burst`):
    ``{"texts", "results", "seconds", "texts_per_s"}``."""
    res = burst(settings, text_inputs(texts), role=role, timeout=timeout)
    return {"texts": res["inputs"], "results": res["results"], "seconds": res["seconds"],
            "texts_per_s": res["per_s"]}


def open_loop(settings: Settings, texts: Sequence[str], rate: float, duration: float, *,
              drain: float = 60.0, role: str = "predictions") -> dict:
    """Produce ``texts`` (cycled) at ``rate`` per second for ``duration`` seconds; latency
    percentiles (ms) from produce to the record visible on the ``role`` topic (predictions by
    default); ``lost`` = texts with no such record ``drain`` seconds after the last one was
    produced."""
    watch, thread = start_watch(settings, role)
    sent: dict[str, float] = {}
    try:
        n = max(1, int(rate * duration))
        with InputProducer(settings) as p:
            start = time.monotonic()
            for i in range(n):
                delay = start + i / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                doc_id = f"ol-{uuid.uuid4().hex[:12]}"
                sent[doc_id] = time.time()
                p.text(texts[i % len(texts)], doc_id=doc_id)
                p.producer.poll(0)
        wait_for(watch, list(sent), drain)
    finally:
        watch.stop.set()
        thread.join(10)
    lat = [(watch.seen[i] - t) * 1000 for i, t in sent.items() if i in watch.seen]
    return {"rate_per_s": rate, "duration_s": duration, "texts": len(sent), "lost": len(sent) - len(lat),
            "latency_ms": percentiles(lat)}
