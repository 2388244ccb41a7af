"""Small helpers shared by integration tests (real Kafka, registry and Milvus)."""
from __future__ import annotations

import contextlib
import dataclasses
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import KafkaError

from conveyor.streams.config import env
from conveyor.streams.config.settings import Settings
from conveyor.streams.kafka.clients import make_admin, make_consumer
from conveyor.streams.runtime.supervisor import run_stages
from tests.ports import server_port


@contextlib.contextmanager
def running_stack() -> Iterator[Settings]:
    """Settings of a running stack (Kafka + registry): the one named by
    ``CONVEYOR_BOOTSTRAP_SERVERS``, else the local stack, started here if needed and then
    stopped again (only the parts started here). Fails the session if it cannot start."""
    settings = Settings.from_env()
    if os.environ.get(env.BOOTSTRAP_SERVERS):
        yield settings
        return
    from conveyor.tools.stack import StackError, down, up

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


def keep_forever(settings: Settings, *roles: str) -> None:
    """Set ``retention.ms=-1`` on the topics of ``roles``: records stamped older than
    retention stay there (the tests' old inputs), whatever the broker's retention check.

    Raises:
        KafkaException: the broker refused the change.
    """
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType

    from conveyor.streams.kafka.topics import topic

    admin = make_admin(settings)  # held until the futures resolve
    changes = [ConfigResource(ResourceType.TOPIC, topic(settings, role), incremental_configs=[
        ConfigEntry("retention.ms", "-1", incremental_operation=AlterConfigOpType.SET)]) for role in roles]
    for fut in admin.incremental_alter_configs(changes).values():
        fut.result()


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


class Broker:
    """A single-node Kafka broker of a test's own, started by :func:`conveyor.tools.stack.up` from
    ``home`` (its own data dir and free ports, Kafka jars linked from the main stack's home) and
    sharing the main stack's schema registry. Restarting it disturbs nobody else on the machine.
    Its ports lie below the ephemeral range (:func:`tests.ports.server_port`), so no client
    connection can take them while it is down.

    Args:
        shared: settings of the main stack (its ``home`` has the jars; its registry is used).
        home: a fresh directory for this broker's config, data and logs.
        overrides: other :class:`~conveyor.streams.config.settings.Settings` fields of this broker, e.g.
            ``kafka_retention_check_ms``.
    """

    def __init__(self, shared: Settings, home: Path, **overrides):
        port = server_port()
        self.settings = dataclasses.replace(shared, home=home, kafka_port=port, controller_port=server_port(),
                                            bootstrap_servers=f"127.0.0.1:{port}", **overrides)
        libs = shared.home / "kafka" / "libs"
        if libs.is_dir() and not (home / "kafka" / "libs").exists():
            (home / "kafka").mkdir(parents=True, exist_ok=True)
            (home / "kafka" / "libs").symlink_to(libs, target_is_directory=True)

    def start(self) -> dict:
        """Start the broker (idempotent); return :func:`conveyor.tools.stack.up`'s Kafka status.

        Raises:
            conveyor.tools.stack.StackError: it did not come up.
        """
        from conveyor.tools.stack import up

        return up(self.settings, log=lambda _line: None)["kafka"]

    def restart(self, down_for: float = 0.0) -> dict:
        """Stop the broker (SIGTERM: controlled shutdown), wait ``down_for`` seconds, start it
        again on the same port and data dir. Returns pids and seconds. The broker is started
        again even when stopping failed.

        Raises:
            conveyor.tools.stack.StackError: it did not come back.
        """
        from conveyor.tools.stack import down

        t = time.monotonic()
        try:
            stopped = down(self.settings, parts=["kafka"], log=lambda _line: None)["kafka"]
            stop_s = time.monotonic() - t
            time.sleep(down_for)
        finally:
            started = self.start()
        return {"old_pid": stopped["pid"], "forced": stopped["forced"], "stop_s": round(stop_s, 1),
                "new_pid": started["pid"], "startup_s": started["startup_s"],
                "down_s": round(time.monotonic() - t, 1)}

    def stop(self) -> None:
        """Stop the broker."""
        from conveyor.tools.stack import down

        down(self.settings, parts=["kafka"], log=lambda _line: None)


def run_stages_until(settings: Settings, stages: list[str], out_topic: str, *, expect: int,
                     timeout: float = 180) -> list:
    """Run ``stages`` in this process (a background thread) until ``expect`` records can be
    read from ``out_topic`` (read_committed) or ``timeout`` seconds pass; return them."""
    stop, errors = threading.Event(), []

    def work() -> None:
        try:
            run_stages(stages, settings, install_signals=False, stop_event=stop)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    worker = threading.Thread(target=work, name="test-stages", daemon=True)
    worker.start()
    try:
        msgs = read_all(settings, out_topic, expect=expect, timeout=timeout)
    finally:
        stop.set()
        worker.join(60)
    assert not worker.is_alive(), f"{stages} did not stop"
    assert not errors, errors
    return msgs
