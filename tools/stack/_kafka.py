"""Kafka part of the local stack: jars via Maven, KRaft config, storage format, node processes.

Files under ``settings.home / "kafka"``: ``libs/`` (jars + marker), ``log4j2.properties``, and per
node (:class:`KafkaNode`) ``server.properties`` and ``data/`` (log dirs and KRaft metadata) — in
``kafka/`` itself for the single node, in ``kafka/node-<i>/`` for each node of a three-node cluster
(``cluster-id`` holds the id all three are formatted with).
"""
from __future__ import annotations

import base64
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

from conveyor.streams.config.settings import NODE_PORT_STEP, Settings, local_bootstrap
from conveyor.tools.stack._common import (
    Layout,
    StackError,
    marker_args,
    pom_versions,
    port_open,
    read_marker,
    run_mvn,
    template,
    write_if_changed,
    write_marker,
    write_private,
)

MIB = 1024 * 1024
JVM_OPTS = [
    "-Xms256m", "-Xmx768m", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35", "-XX:+ExplicitGCInvokesConcurrent",
    "-XX:+ExitOnOutOfMemoryError", "-Djava.awt.headless=true",
]
MARKER = ".conveyor-stack.json"


def kafka_dir(settings: Settings) -> Path:
    """``settings.home / "kafka"``: jars, configs and data of the nodes."""
    return settings.home / "kafka"


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


def server_properties(settings: Settings, *, port: int, controller_port: int, log_dirs: Path, node_id: int = 1,
                      quorum_voters: str | None = None, replication_factor: int = 1,
                      min_insync_replicas: int = 1) -> str:
    """``server.properties`` text from the template for node ``node_id`` on ``port``/``controller_port``:
    message size limits ``settings.max_message_bytes`` + 1 MiB, retention checked every
    ``settings.kafka_retention_check_ms`` (the first check at most that long after startup);
    ``quorum_voters`` (``id@host:port,...``; default this node alone), and the replication factor
    and ``min.insync.replicas`` of every topic, the transaction state and offsets topics included."""
    message_max = settings.max_message_bytes + MIB
    return template(
        "kafka-server.properties",
        node_id=node_id,
        quorum_voters=quorum_voters or f"{node_id}@127.0.0.1:{controller_port}",
        replication_factor=replication_factor,
        min_insync_replicas=min_insync_replicas,
        kafka_port=port,
        controller_port=controller_port,
        log_dirs=log_dirs,
        message_max_bytes=message_max,
        socket_request_max_bytes=max(100 * MIB, 2 * message_max),
        retention_check_ms=settings.kafka_retention_check_ms,
        # the first check runs this long after startup (Kafka's default 30 s, shorter with a shorter interval)
        initial_task_delay_ms=min(30_000, settings.kafka_retention_check_ms),
    )


def apply_overrides(text: str, overrides: dict[str, str], title: str) -> str:
    """``server.properties`` ``text`` with each key of ``overrides`` replaced in place, and the keys
    it did not have appended under ``# <title>``."""
    overrides = dict(overrides)
    lines = []
    for line in text.splitlines():
        key = line.split("=", 1)[0].strip()
        if not line.lstrip().startswith("#") and "=" in line and key in overrides:
            line = f"{key}={overrides.pop(key)}"
        lines.append(line)
    lines += ["", f"# {title}"] + [f"{k}={v}" for k, v in overrides.items()]
    return "\n".join(lines) + "\n"


def plain_jaas_config(admin_password: str, users: dict[str, str]) -> str:
    """A broker listener's SASL/PLAIN JAAS line: the broker logs in as ``admin`` and accepts
    ``admin`` and each of ``users`` (``{name: password}``), e.g. for
    ``listener.name.<listener>.plain.sasl.jaas.config``."""
    accepted = " ".join(f'user_{n}="{p}"' for n, p in {"admin": admin_password, **users}.items())
    return (f'org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" '
            f'password="{admin_password}" {accepted};')


def tls_overrides(settings: Settings, port: int, controller_port: int) -> dict[str, str]:
    """The TLS stack's listener settings: clients and brokers on ``SASL_SSL`` (SASL/PLAIN, users
    ``admin`` and ``conveyor`` from ``tls/credentials.json``), the server certificate as a PEM
    keystore (KIP-651) and the CA as the truststore; the KRaft controller listener stays
    PLAINTEXT on 127.0.0.1."""
    from conveyor.tools.stack import _tls

    files = _tls.tls_dir(settings.home)
    creds = _tls.credentials(files)
    return {
        "listeners": f"SASL_SSL://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"SASL_SSL://127.0.0.1:{port}",
        "listener.security.protocol.map": "SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT",
        "inter.broker.listener.name": "SASL_SSL",
        "sasl.enabled.mechanisms": "PLAIN",
        "sasl.mechanism.inter.broker.protocol": "PLAIN",
        "listener.name.sasl_ssl.plain.sasl.jaas.config": plain_jaas_config(creds["admin"], creds),
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(files.keystore),
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(files.ca_cert),
    }


def admin_config(settings: Settings, address: str) -> dict[str, str | int | float | bool]:
    """librdkafka settings with which the stack's own checks reach a node at ``address``
    (as ``admin`` over SASL_SSL on the TLS stack)."""
    conf: dict[str, str | int | float | bool] = {"bootstrap.servers": address, "log_level": "2"}
    if settings.stack_tls:
        from conveyor.tools.stack import _tls

        files = _tls.tls_dir(settings.home)
        conf.update({"security.protocol": "SASL_SSL", "sasl.mechanism": "PLAIN", "sasl.username": "admin",
                     "sasl.password": _tls.credentials(files)["admin"], "ssl.ca.location": str(files.ca_cert)})
    return conf


def _log4j(settings: Settings) -> str:
    return f"-Dlog4j2.configurationFile={kafka_dir(settings) / 'log4j2.properties'}"


def new_cluster_id() -> str:
    """A random KRaft cluster id: a UUID as 22 base64url characters (not starting with '-')."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


def cluster_id(settings: Settings) -> str:
    """The cluster id every node of this home is formatted with (``kafka/cluster-id``, made once)."""
    path = kafka_dir(settings) / "cluster-id"
    if not path.exists():
        write_if_changed(path, new_cluster_id() + "\n")
    return path.read_text(encoding="utf-8").strip()


@dataclass(frozen=True)
class KafkaNode:
    """One KRaft node (combined broker and controller) of the local stack.

    With one node (``settings.kafka_brokers == 1``) it is the classic single broker: name
    ``kafka``, files in ``home/kafka`` (``server.properties``, ``data/``). In a three-node cluster
    node ``i`` is ``kafka-<i>``, files in ``home/kafka/node-<i>``, ports ``kafka_port + 10 (i - 1)``
    and ``controller_port + 10 (i - 1)``; the three controllers form the KRaft quorum.
    """

    settings: Settings
    node_id: int = 1

    @property
    def count(self) -> int:
        """Nodes in this stack's cluster."""
        return self.settings.kafka_brokers

    @property
    def name(self) -> str:
        """``kafka`` (single node) or ``kafka-<id>``."""
        return "kafka" if self.count == 1 else f"kafka-{self.node_id}"

    @property
    def port(self) -> int:
        """Client port on 127.0.0.1 (PLAINTEXT, or SASL_SSL on the TLS stack)."""
        return self.settings.kafka_port + NODE_PORT_STEP * (self.node_id - 1)

    @property
    def controller_port(self) -> int:
        """KRaft controller port on 127.0.0.1."""
        return self.settings.controller_port + NODE_PORT_STEP * (self.node_id - 1)

    @property
    def directory(self) -> Path:
        """Config and data of this node."""
        return kafka_dir(self.settings) if self.count == 1 else kafka_dir(self.settings) / f"node-{self.node_id}"

    @property
    def address(self) -> str:
        """``127.0.0.1:<port>``."""
        return f"127.0.0.1:{self.port}"

    def layout(self) -> Layout:
        """Pid and log file locations of this node."""
        return Layout(self.name, self.settings.home)

    def write_config(self) -> Path:
        """Write this node's ``server.properties`` (and the shared ``log4j2.properties``); return its path."""
        voters = ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in nodes(self.settings))
        replicas = min(self.count, 3)
        props = server_properties(self.settings, port=self.port, controller_port=self.controller_port,
                                  log_dirs=self.directory / "data", node_id=self.node_id, quorum_voters=voters,
                                  replication_factor=replicas, min_insync_replicas=2 if replicas >= 3 else 1)
        write_if_changed(kafka_dir(self.settings) / "log4j2.properties", template("kafka-log4j2.properties"))
        if self.settings.stack_tls:
            props = apply_overrides(props, tls_overrides(self.settings, self.port, self.controller_port),
                                    "TLS (conveyor stack up --tls): SASL_SSL listener, PEM keystore")
            write_private(self.directory / "server.properties", props)  # it holds the SASL passwords
        else:
            write_if_changed(self.directory / "server.properties", props)
        return self.directory / "server.properties"

    def format_storage(self, java: str, libs: Path, log) -> None:
        """Format this node's KRaft log dir once (skipped when ``data/meta.properties`` exists).

        Raises:
            StackError: the StorageTool fails.
        """
        data = self.directory / "data"
        if (data / "meta.properties").exists():
            return
        cid = new_cluster_id() if self.count == 1 else cluster_id(self.settings)
        log(f"stack: formatting Kafka storage in {data} (cluster id {cid})")
        cmd = [java, _log4j(self.settings), "-cp", f"{libs}/*", "kafka.tools.StorageTool", "format",
               "-t", cid, "-c", str(self.directory / "server.properties")]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            raise StackError(f"Kafka storage format of {self.name} failed (exit {out.returncode}):\n"
                             + (out.stdout + out.stderr).strip()[-3000:])

    def command(self, java: str, libs: Path) -> list[str]:
        """The node's command line (``kafka.Kafka server.properties``)."""
        return [java, _log4j(self.settings), *JVM_OPTS, *marker_args(self.layout()),
                "-cp", f"{libs}/*", "kafka.Kafka", str(self.directory / "server.properties")]

    def busy_ports(self) -> list[int]:
        """This node's ports that something already listens on."""
        return [p for p in (self.port, self.controller_port) if port_open(p)]

    def answers(self, timeout: float = 3.0) -> bool:
        """Whether this node answers a metadata request (as a broker: it is registered and unfenced)."""
        if not port_open(self.port):
            return False
        from confluent_kafka import KafkaException
        from confluent_kafka.admin import AdminClient

        admin = AdminClient(admin_config(self.settings, self.address))
        try:
            brokers = admin.list_topics(timeout=timeout).brokers
        except KafkaException:
            return False
        return self.node_id in brokers if self.count > 1 else bool(brokers)


def nodes(settings: Settings) -> list[KafkaNode]:
    """The Kafka nodes of the local stack (``settings.kafka_brokers`` of them)."""
    return [KafkaNode(settings, i) for i in range(1, settings.kafka_brokers + 1)]


def address(settings: Settings) -> str:
    """``bootstrap.servers`` of the local stack's nodes."""
    return local_bootstrap(settings.kafka_port, settings.kafka_brokers)
