"""Post-run checks of the fault suite: Milvus rows, consumer lag, retry traffic.

* :func:`expected_chunk_ids` — per input id, the chunk primary keys (``<doc_id>:<chunk_index>``)
  of its last committed ``embedded`` record: exactly the rows Milvus must hold.
* :func:`milvus_rows` — the primary keys Milvus actually holds for those ids (a list, so a key
  stored twice shows up twice) and the collection's total row count.
* :func:`consumer_lag` / :func:`wait_for_zero_lag` — records each consumer group of the
  namespace has not consumed yet. Lag is counted in *visible* records (read_committed) after
  the committed offset, not as ``end offset - committed offset``: a transactional producer
  leaves a commit marker after its records, so the plain difference stays at 1 forever on
  every partition written in transactions.
* :func:`retry_keys` — which inputs went through each retry topic, and how often.
* :func:`retention_check_ms` — how often the broker deletes segments past retention.
"""
from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Iterable
from typing import Optional

from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import ConfigResource, ResourceType

from conveyor.sinks.milvus_errors import is_unavailable
from conveyor.sinks.milvus_rows import chunk_id
from conveyor.streams.config.settings import Settings
from conveyor.streams.kafka.clients import make_admin, make_consumer
from conveyor.streams.kafka.io import read_range, read_to_end
from conveyor.streams.kafka.serde import AvroSerde
from conveyor.streams.kafka.topics import catalogue, retry_role, topic
from conveyor.streams.topology.pipeline import builtin_pipeline

INPUT_ROLES = {s.name: s.inputs for s in builtin_pipeline().runner_stages}
"""Input roles of each runner stage (from the pipeline definition); their partitions are
checked even when the stage's group never committed an offset on them."""
RETRYING = builtin_pipeline().retrying


def expected_chunk_ids(settings: Settings, ids: Iterable[str]) -> tuple[dict[str, set[str]], int]:
    """``({input_id: chunk ids of its last embedded record}, embedded records read)`` for the
    ``ids`` that have an embedded record. Reads the ``embedded`` topic read_committed to its end.

    Raises:
        TimeoutError: the topic could not be read to its end within 120 s.
    """
    wanted = set(ids)
    serde = AvroSerde(settings)
    name = topic(settings, "embedded")
    last: dict[str, set[str]] = {}
    n = 0
    for msg in read_to_end(settings, name, timeout=120):
        rec = serde.decode(name, msg.value())
        n += 1
        if rec["doc_id"] in wanted:
            last[rec["doc_id"]] = {chunk_id(rec["doc_id"], c.get("chunk_index", i))
                                   for i, c in enumerate(rec["chunks"])}
    return last, n


def _literal(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def milvus_rows(uri: str, collection: str, ids: Iterable[str], *, token: str = "",
                wait: float = 180.0, batch: int = 200) -> tuple[list[str], int]:
    """``(chunk_id of every row stored for ids, total rows in the collection)``, read with
    Strong consistency, retried while Milvus is unavailable (after a restart, Milvus 2.3.5
    times Strong reads out for ~25 s).

    Raises:
        TimeoutError: Milvus stayed unavailable for ``wait`` seconds.
        pymilvus.MilvusException: a non-transient Milvus error.
    """
    from pymilvus import MilvusClient

    ids = sorted(set(ids))
    deadline = time.monotonic() + wait
    while True:
        client = None
        try:
            client = MilvusClient(uri=uri, token=token or None, timeout=15, dedicated=True)
            if not client.has_collection(collection):
                return [], 0
            client.load_collection(collection)
            keys: list[str] = []
            for i in range(0, len(ids), batch):
                expr = f"doc_id in [{', '.join(_literal(d) for d in ids[i:i + batch])}]"
                res = client.query(collection, filter=expr, output_fields=["chunk_id"], limit=16384,
                                   consistency_level="Strong", timeout=30)
                keys += [r["chunk_id"] for r in res]
            total = client.query(collection, filter="", output_fields=["count(*)"],
                                 consistency_level="Strong", timeout=30)
            return keys, int(total[0]["count(*)"]) if total else 0
        except Exception as exc:
            if not is_unavailable(exc) or time.monotonic() > deadline:
                if is_unavailable(exc):
                    raise TimeoutError(f"Milvus at {uri} unavailable for {wait:.0f}s: {exc}") from exc
                raise
            time.sleep(2.0)
        finally:
            if client is not None:
                client.close()


def _visible(settings: Settings, ranges: dict[tuple[str, int], tuple[int, int]],
             timeout: float = 30.0) -> dict[tuple[str, int], int]:
    """``{(topic, partition): visible (read_committed) records at offsets start <= o < end}``
    for ``ranges = {(topic, partition): (start, end)}`` (:func:`conveyor.streams.kafka.io.read_range`).

    Raises:
        TimeoutError: the ranges were not read within ``timeout`` seconds.
    """
    counts = {k: 0 for k in ranges}
    for msg in read_range(settings, ranges, timeout=timeout):
        counts[(msg.topic(), msg.partition())] += 1
    return counts


def _committed(admin, group: str) -> dict[tuple[str, int], int]:
    fut = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group]
    return {(tp.topic, tp.partition): tp.offset for tp in fut.result().topic_partitions}


def consumer_lag(settings: Settings, processors: Iterable[str] = tuple(INPUT_ROLES)) -> dict[str, int]:
    """``{"<group> <topic>[<partition>]": records not yet consumed}`` for the namespace, only
    entries with lag > 0. Covers every consumer group named ``<namespace>.*`` (their committed
    partitions), the input topics of each runner in ``processors`` (even uncommitted ones), and
    every retry-topic partition holding records that no group has committed on.
    """
    admin = make_admin(settings)
    prefix = settings.namespace + "."
    groups = {g.group_id for g in admin.list_consumer_groups(request_timeout=15).result().valid
              if g.group_id.startswith(prefix)}
    groups |= {settings.group_id(p) for p in processors}
    specs = catalogue(settings)
    meta = admin.list_topics(timeout=15)
    partitions = {name: list(t.partitions) for name, t in meta.topics.items() if t.error is None}
    probe = make_consumer(settings, f"fault-lag-{uuid.uuid4().hex[:12]}", **{"statistics.interval.ms": 0})
    lag: dict[str, int] = {}
    covered: set[tuple[str, int]] = set()

    def check(label: str, committed: dict[tuple[str, int], int]) -> None:
        ranges = {}
        for (name, p), offset in committed.items():
            low, high = probe.get_watermark_offsets(TopicPartition(name, p), timeout=15)
            ranges[(name, p)] = (offset if offset >= 0 else low, high)
        for (name, p), n in _visible(settings, ranges).items():
            if n:
                lag[f"{label} {name}[{p}]"] = n

    try:
        for group in sorted(groups):
            committed = _committed(admin, group)
            covered |= {k for k, v in committed.items() if v >= 0}
            for role in INPUT_ROLES.get(group[len(prefix):], ()):
                name = specs[role].name
                for p in partitions.get(name, []):
                    committed.setdefault((name, p), -1)
            check(group, committed)
        retry_parts = {(specs[retry_role(proc)].name, p): -1 for proc in RETRYING
                       for p in partitions.get(specs[retry_role(proc)].name, [])}
        check("<no group>", {k: v for k, v in retry_parts.items() if k not in covered})
    finally:
        probe.close()
    return lag


def wait_for_zero_lag(settings: Settings, timeout: float, interval: float = 3.0) -> tuple[dict[str, int], float]:
    """Poll :func:`consumer_lag` until it is empty or ``timeout`` seconds pass; return the last
    lag and the seconds waited."""
    started = time.monotonic()
    while True:
        lag = consumer_lag(settings)
        waited = time.monotonic() - started
        if not lag or waited > timeout:
            return lag, round(waited, 1)
        time.sleep(interval)


def topic_keys(settings: Settings, name: str) -> Counter:
    """How often each key (decoded as UTF-8) occurs among the visible (read_committed) records
    of topic ``name``; empty when the topic does not exist."""
    return Counter((m.key() or b"").decode("utf-8", "replace")
                   for m in read_to_end(settings, name, timeout=120, missing_ok=True))


def retry_keys(settings: Settings) -> dict[str, Counter]:
    """``{processor: Counter of the keys in its retry topic}`` for every runner processor."""
    return {p: topic_keys(settings, topic(settings, retry_role(p))) for p in RETRYING}


def retention_check_ms(settings: Settings, timeout: float = 10.0) -> Optional[int]:
    """``log.retention.check.interval.ms`` of the cluster's first broker, or ``None`` when it
    cannot be read (e.g. the broker is down)."""
    try:
        admin = make_admin(settings)
        broker = min(admin.list_topics(timeout=timeout).brokers)
        res = ConfigResource(ResourceType.BROKER, str(broker))
        [fut] = admin.describe_configs([res], request_timeout=timeout).values()
        return int(fut.result()["log.retention.check.interval.ms"].value)
    except Exception:  # noqa: BLE001 - a figure, not a check
        return None
