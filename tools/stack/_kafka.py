"""Kafka part of the local stack: jars via Maven, KRaft config, storage format, broker process.

Files under ``settings.home / "kafka"``: ``libs/`` (jars + marker), ``server.properties``,
``log4j2.properties``, ``data/`` (log dirs and KRaft metadata).
"""
from __future__ import annotations

import base64
import shutil
import subprocess
import uuid
from pathlib import Path

from conveyor.streams.settings import Settings
from conveyor.tools.stack._common import (
    Layout, StackError, marker_args, port_open, pom_versions, read_marker, run_mvn, template,
    write_if_changed, write_marker,
)

MIB = 1024 * 1024
JVM_OPTS = [
    "-Xms256m", "-Xmx768m", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35", "-XX:+ExplicitGCInvokesConcurrent",
    "-XX:+ExitOnOutOfMemoryError", "-Djava.awt.headless=true",
]
MARKER = ".conveyor-stack.json"


def layout(settings: Settings) -> Layout:
    """Pid and log file locations of the broker."""
    return Layout("kafka", settings.home)


def kafka_dir(settings: Settings) -> Path:
    """``settings.home / "kafka"``: jars, configs and data of the broker."""
    return settings.home / "kafka"


def address(settings: Settings) -> str:
    """``host:port`` of the local broker's PLAINTEXT listener."""
    return f"127.0.0.1:{settings.kafka_port}"


def ensure_libs(settings: Settings, log) -> Path:
    """The Kafka jar directory, resolved with Maven unless its marker matches the pom's versions.

    Raises:
        StackError: Maven is missing or fails.
    """
    libs = kafka_dir(settings) / "libs"
    want = {k: v for k, v in pom_versions().items() if not k.startswith("apicurio")}
    if read_marker(libs / MARKER) == want and any(libs.glob("kafka_2.13-*.jar")):
        return libs
    log(f"stack: resolving Kafka {want.get('kafka.version')} jars into {libs}")
    tmp = libs.with_name("libs.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    run_mvn(["dependency:copy-dependencies", f"-DoutputDirectory={tmp}", "-DincludeScope=runtime"], log)
    if not any(tmp.glob("kafka_2.13-*.jar")):
        raise StackError(f"mvn ran but no kafka_2.13 jar landed in {tmp}")
    shutil.rmtree(libs, ignore_errors=True)
    tmp.rename(libs)
    write_marker(libs / MARKER, want)
    return libs


def server_properties(settings: Settings, *, port: int, controller_port: int, log_dirs: Path) -> str:
    """``server.properties`` text from the template for a broker on ``port``/``controller_port``:
    message size limits ``settings.max_message_bytes`` + 1 MiB, retention checked every
    ``settings.kafka_retention_check_ms`` (the first check at most that long after startup)."""
    message_max = settings.max_message_bytes + MIB
    return template(
        "kafka-server.properties",
        kafka_port=port,
        controller_port=controller_port,
        log_dirs=log_dirs,
        message_max_bytes=message_max,
        socket_request_max_bytes=max(100 * MIB, 2 * message_max),
        retention_check_ms=settings.kafka_retention_check_ms,
        # the first check runs this long after startup (Kafka's default 30 s, shorter with a shorter interval)
        initial_task_delay_ms=min(30_000, settings.kafka_retention_check_ms),
    )


def write_config(settings: Settings) -> Path:
    """Write ``server.properties`` and ``log4j2.properties``; return the former's path."""
    kdir = kafka_dir(settings)
    props = server_properties(settings, port=settings.kafka_port, controller_port=settings.controller_port,
                              log_dirs=kdir / "data")
    write_if_changed(kdir / "log4j2.properties", template("kafka-log4j2.properties"))
    write_if_changed(kdir / "server.properties", props)
    return kdir / "server.properties"


def _log4j(settings: Settings) -> str:
    return f"-Dlog4j2.configurationFile={kafka_dir(settings) / 'log4j2.properties'}"


def new_cluster_id() -> str:
    """A random KRaft cluster id: a UUID as 22 base64url characters (not starting with '-')."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


def format_storage(settings: Settings, java: str, libs: Path, log) -> None:
    """Format the KRaft log dir once (skipped when ``data/meta.properties`` exists).

    Raises:
        StackError: the StorageTool fails.
    """
    data = kafka_dir(settings) / "data"
    if (data / "meta.properties").exists():
        return
    cid = new_cluster_id()
    log(f"stack: formatting Kafka storage in {data} (cluster id {cid})")
    cmd = [java, _log4j(settings), "-cp", f"{libs}/*", "kafka.tools.StorageTool", "format",
           "-t", cid, "-c", str(kafka_dir(settings) / "server.properties")]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise StackError(f"Kafka storage format failed (exit {out.returncode}):\n"
                         + (out.stdout + out.stderr).strip()[-3000:])


def command(settings: Settings, java: str, libs: Path) -> list[str]:
    """The broker's command line (``kafka.Kafka server.properties``)."""
    return [java, _log4j(settings), *JVM_OPTS, *marker_args(layout(settings)),
            "-cp", f"{libs}/*", "kafka.Kafka", str(kafka_dir(settings) / "server.properties")]


def busy_ports(settings: Settings) -> list[int]:
    """Broker/controller ports that something already listens on."""
    return [p for p in (settings.kafka_port, settings.controller_port) if port_open(p)]


def answers(settings: Settings, timeout: float = 3.0) -> bool:
    """Whether a Kafka broker answers a metadata request on the local address."""
    if not port_open(settings.kafka_port):
        return False
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": address(settings), "log_level": 2})
    try:
        return bool(admin.list_topics(timeout=timeout).brokers)
    except KafkaException:
        return False
