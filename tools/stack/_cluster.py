"""What a local three-node Kafka cluster looks like right now: the active controller and the
partition leaders (for ``conveyor stack status`` and the cluster fault scenarios).

The active controller is read from the KRaft quorum state each node keeps on disk
(``data/__cluster_metadata-0/quorum-state``, JSON with ``leaderId`` and ``leaderEpoch``; the
newest epoch any node knows wins), so no Kafka admin tool is needed. Partition leaders come from
a metadata request to any live node.
"""
from __future__ import annotations

import json
from collections import Counter
from typing import Any, Optional

from conveyor.streams.config.settings import Settings
from conveyor.tools.stack._kafka import admin_config, nodes

QUORUM_STATE = ("data", "__cluster_metadata-0", "quorum-state")


def active_controller(settings: Settings) -> Optional[int]:
    """Node id of the KRaft quorum leader (the active controller), or None when no node has one."""
    best: tuple[int, int] | None = None
    for node in nodes(settings):
        path = node.directory.joinpath(*QUORUM_STATE)
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        leader, epoch = int(state.get("leaderId", -1)), int(state.get("leaderEpoch", -1))
        if leader >= 0 and (best is None or epoch > best[1]):
            best = (leader, epoch)
    return best[0] if best else None


def partition_leaders(settings: Settings, timeout: float = 5.0) -> dict[str, dict[int, dict[str, Any]]]:
    """``{topic: {partition: {"leader": id (-1: none), "replicas": [...], "isr": [...]}}}`` of every topic.

    Raises:
        confluent_kafka.KafkaException: no node answered within ``timeout`` seconds.
    """
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(admin_config(settings, ",".join(n.address for n in nodes(settings))))
    md = admin.list_topics(timeout=timeout)
    return {name: {p.id: {"leader": p.leader, "replicas": list(p.replicas), "isr": list(p.isrs)}
                   for p in t.partitions.values()}
            for name, t in md.topics.items()}


def describe(settings: Settings, timeout: float = 5.0) -> dict[str, Any]:
    """``{"controller": id|None, "leaders": {node id: partitions led}, "under_replicated": n,
    "offline": n, "partitions": n, "topics": {topic: [leader of partition 0, 1, ...]}}``;
    ``{"controller": id, "error": str}`` when no node answers a metadata request."""
    out: dict[str, Any] = {"controller": active_controller(settings)}
    try:
        topics = partition_leaders(settings, timeout)
    except Exception as exc:  # noqa: BLE001 - status reports, it does not fail
        return {**out, "error": f"{type(exc).__name__}: {exc}"}
    parts = [p for t in topics.values() for p in t.values()]
    led = Counter(p["leader"] for p in parts if p["leader"] >= 0)
    out.update({
        "leaders": {n.node_id: led.get(n.node_id, 0) for n in nodes(settings)},
        "partitions": len(parts),
        "under_replicated": sum(len(p["isr"]) < len(p["replicas"]) for p in parts),
        "offline": sum(p["leader"] < 0 for p in parts),
        "topics": {name: [t[i]["leader"] for i in sorted(t)] for name, t in sorted(topics.items())},
    })
    return out
