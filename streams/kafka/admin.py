"""Topic administration: create the catalogue's topics and list them.

Both connect through :func:`conveyor.streams.config.security.connect_admin`, so wrong Kafka credentials
end at once in a :class:`~conveyor.streams.config.security.KafkaAuthenticationError` that says so.
"""
from __future__ import annotations

import logging
import time
from typing import Any, Optional

from confluent_kafka import KafkaException
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
    ResourceType,
)

from conveyor.streams.config.security import connect_admin
from conveyor.streams.config.settings import Settings
from conveyor.streams.kafka.clients import make_admin
from conveyor.streams.kafka.serde import AvroSerde
from conveyor.streams.kafka.topics import TopicSpec, catalogue

log = logging.getLogger(__name__)


def create_topics(settings: Settings, *, timeout: float = 30.0,
                  serde: Optional[AvroSerde] = None) -> dict[str, str]:
    """Create every catalogue topic that does not exist yet; register the value
    schemas and set BACKWARD compatibility on their subjects.

    Topics get ``settings.replication_factor`` replicas, ``max.message.bytes`` =
    ``settings.max_message_bytes`` (and, with more than one replica, ``min.insync.replicas`` =
    ``settings.min_insync_replicas``) plus their spec's configs; a topic that exists but differs
from its spec's configs (e.g. one created before
    ``message.timestamp.type=LogAppendTime`` was added) is brought in line.
    Returns ``{topic: "created" | "exists" | "updated"}``.

    Raises:
        KafkaAuthenticationError: the broker rejected the credentials (about a second).
        KafkaConnectionError: no broker answered within ``timeout`` seconds.
        KafkaException: the broker rejected a topic for another reason.
    """
    admin = connect_admin(settings, timeout)
    specs = list(catalogue(settings).values())
    existing = set(admin.list_topics(timeout=timeout).topics)
    wanted = [s for s in specs if s.name not in existing]
    result = {s.name: "exists" for s in specs if s.name in existing}
    if wanted:
        replicas = {"min.insync.replicas": str(settings.min_insync_replicas)} if settings.replication_factor > 1 else {}
        futures = admin.create_topics([
            NewTopic(s.name, num_partitions=s.partitions, replication_factor=settings.replication_factor,
                     config={"max.message.bytes": str(settings.max_message_bytes), **replicas, **dict(s.config)})
            for s in wanted
        ], operation_timeout=timeout)
        for name, fut in futures.items():
            try:
                fut.result()
                result[name] = "created"
            except KafkaException as exc:
                if exc.args[0].name() == "TOPIC_ALREADY_EXISTS":
                    result[name] = "exists"
                else:
                    raise
        _wait_until_visible(admin, [s.name for s in wanted], timeout)
    for name in align_configs(admin, [s for s in specs if s.name in existing], timeout):
        result[name] = "updated"
    serde = serde or AvroSerde(settings)
    for s in specs:
        if s.schema:
            serde.register(s.name)
            serde.set_compatibility(s.name)
    return result


def align_configs(admin: AdminClient, specs: list[TopicSpec], timeout: float = 30.0) -> list[str]:
    """Set each existing topic's spec configs (``TopicSpec.config``) where the cluster has
    another value; other configs are left as they are (incremental alter).

    Returns the names of the topics changed.

    Raises:
        KafkaException: the broker refused to describe or alter a topic's configs.
    """
    specs = [s for s in specs if s.config]
    if not specs:
        return []
    described = admin.describe_configs([ConfigResource(ResourceType.TOPIC, s.name) for s in specs],
                                       request_timeout=timeout)
    current = {res.name: fut.result() for res, fut in described.items()}
    changes = []
    for s in specs:
        have = current.get(s.name, {})
        diff = [ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET)
                for k, v in s.config if k not in have or have[k].value != v]
        if diff:
            changes.append(ConfigResource(ResourceType.TOPIC, s.name, incremental_configs=diff))
    for res, fut in admin.incremental_alter_configs(changes, request_timeout=timeout).items() if changes else ():
        fut.result()
        log.info("topic %s: configs aligned with the catalogue", res.name)
    return [c.name for c in changes]


def _wait_until_visible(admin: AdminClient, names: list[str], timeout: float) -> None:
    """Wait until every topic in ``names`` appears in the metadata with a leader for each
    partition: a CreateTopics reply means the controller created them, but brokers learn
    of new topics a moment later, and a produce or ``list`` right after must see them.

    Raises:
        TimeoutError: a topic is still not visible after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    missing = set(names)
    while missing:
        meta = admin.list_topics(timeout=max(1.0, deadline - time.monotonic()))
        missing = {n for n in missing
                   if n not in meta.topics or meta.topics[n].error is not None
                   or any(p.leader < 0 for p in meta.topics[n].partitions.values())}
        if not missing:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"topics not visible after {timeout:.0f}s: {sorted(missing)}")
        time.sleep(0.2)


def list_topics(settings: Settings, *, timeout: float = 10.0) -> list[dict[str, Any]]:
    """The catalogue's topics with whether each exists on the cluster and its partitions.

    Raises:
        KafkaAuthenticationError: the broker rejected the credentials (about a second).
        KafkaConnectionError: no broker answered within ``timeout`` seconds.
    """
    meta = connect_admin(settings, timeout).list_topics(timeout=timeout)
    rows = []
    for s in catalogue(settings).values():
        t = meta.topics.get(s.name)
        rows.append({"role": s.role, "topic": s.name, "schema": s.schema, "exists": t is not None,
                     "partitions": len(t.partitions) if t is not None else s.partitions,
                     "description": s.description})
    return rows


def delete_topics(settings: Settings, specs: Optional[list[TopicSpec]] = None, timeout: float = 30.0) -> None:
    """Delete the namespace's topics (tests use this to clean up)."""
    names = [s.name for s in (specs or catalogue(settings).values())]
    admin = make_admin(settings)
    existing = set(admin.list_topics(timeout=timeout).topics)
    names = [n for n in names if n in existing]
    if names:
        for fut in admin.delete_topics(names, operation_timeout=timeout).values():
            try:
                fut.result()
            except KafkaException as exc:
                log.warning("delete topic: %s", exc)
