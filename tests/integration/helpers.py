"""Small helpers shared by integration tests (real Kafka, registry and Milvus)."""
from __future__ import annotations

import contextlib
import os
import time
from typing import Iterator

import pytest

from confluent_kafka import KafkaError

from streams import env
from streams.kafka import make_consumer
from streams.settings import Settings


@contextlib.contextmanager
def running_stack() -> Iterator[Settings]:
    """Settings of a running stack (Kafka + registry): the one named by
    ``CONVEYOR_BOOTSTRAP_SERVERS``, else the local stack, started here if needed and then
    stopped again (only the parts started here). Fails the session if it cannot start."""
    settings = Settings.from_env()
    if os.environ.get(env.BOOTSTRAP_SERVERS):
        yield settings
        return
    from streams.stack import StackError, down, up

    try:
        state = up(settings, log=lambda _line: None)
    except StackError as exc:
        pytest.fail(f"local stack did not come up: {exc}", pytrace=False)
    started = [name for name in ("kafka", "registry") if state[name]["started"]]
    try:
        yield settings
    finally:
        if started:
            down(settings, parts=started, log=lambda _line: None)


def cli_env(settings) -> dict[str, str]:
    """Environment variables that point the ``conveyor`` CLI at ``settings``' stack and namespace."""
    return {env.NAMESPACE: settings.namespace, env.BOOTSTRAP_SERVERS: settings.bootstrap_servers,
            env.SCHEMA_REGISTRY_URL: settings.schema_registry_url, env.BLOB_DIR: str(settings.blob_dir),
            env.MILVUS_URI: settings.milvus_uri}


def read_all(settings, topic: str, *, expect: int | None = None, timeout: float = 30.0, **overrides) -> list:
    """All committed records on ``topic`` (raw ``Message`` objects), waiting until
    ``expect`` records arrived or ``timeout`` seconds passed. ``overrides`` are consumer
    settings (e.g. ``isolation.level``)."""
    consumer = make_consumer(settings, f"test-reader-{time.monotonic_ns()}",
                             **{"statistics.interval.ms": 0, **overrides})
    consumer.subscribe([topic])
    out = []
    deadline = time.monotonic() + timeout
    idle_deadline = None
    try:
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None or (msg.error() and msg.error().code() == KafkaError._PARTITION_EOF):
                if expect is not None and len(out) >= expect:
                    if idle_deadline is None:
                        idle_deadline = time.monotonic() + 1.0
                    elif time.monotonic() > idle_deadline:
                        break
                continue
            assert msg.error() is None, msg.error()
            out.append(msg)
    finally:
        consumer.close()
    return out
