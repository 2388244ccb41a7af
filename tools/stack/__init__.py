"""The local stack: KRaft Kafka (one node, or a three-node cluster) and Apicurio Registry 3, as plain JVMs.

No Docker: both are fetched from Maven Central with ``mvn`` (see ``pom.xml`` next to this
file) into ``settings.home`` (default ``~/.cache/conveyor``) and started detached, so they
outlive the command that started them. Milvus needs no process: the default is Milvus Lite
(a file), or a server named by ``CONVEYOR_MILVUS_URI``.

Layout under ``settings.home``: ``kafka/`` (jars, config, data), ``apicurio/`` (distribution,
config, H2 database), ``logs/kafka.log`` and ``logs/registry.log``, ``run/*.pid``.

``settings.kafka_brokers == 3`` (``conveyor stack up --brokers 3``) starts three combined
broker+controller nodes instead of one — ``kafka-1..3`` on ports ``kafka_port + 0/10/20`` (controllers
``controller_port + 0/10/20``), a KRaft quorum of the three, replication factor 3 and
``min.insync.replicas`` 2 for every topic, the transaction state and offsets topics included; their
files are ``kafka/node-<i>/``, ``logs/kafka-<i>.log``, ``run/kafka-<i>.pid``. The count is recorded in
``kafka/brokers`` so that ``status`` and ``down`` find the nodes without being told.

``up`` is idempotent and ``down`` stops only what ``up`` started (pid files).

A second, separate broker with a SASL_PLAINTEXT listener, for security tests, is started
and stopped by :func:`start_sasl_broker` / :func:`stop_sasl_broker` (see
:mod:`conveyor.tools.stack._sasl`); ``up``/``down``/``status`` never touch it.
"""
from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Optional

from pydantic import SecretStr

from conveyor.sinks.milvus_errors import redact_uri
from conveyor.streams.config.settings import Settings, local_bootstrap
from conveyor.tools.stack import _kafka, _registry, _tls
from conveyor.tools.stack._common import (
    StackError,
    check_java,
    exited,
    failure,
    home_lock,
    live_pid,
    spawn,
    stop,
)

__all__ = ["StackError", "up", "down", "status", "with_brokers", "recorded_brokers", "with_tls", "recorded_tls",
           "SaslBroker",
           "start_sasl_broker", "stop_sasl_broker"]

_SASL_EXPORTS = {"SaslBroker": "SaslBroker", "start_sasl_broker": "start", "stop_sasl_broker": "stop"}


def __getattr__(name: str):
    """The SASL test broker's API, imported on first use (so ``python -m conveyor.tools.stack._sasl``
    runs that module once, as ``__main__``)."""
    if name in _SASL_EXPORTS:
        from conveyor.tools.stack import _sasl

        return getattr(_sasl, _SASL_EXPORTS[name])
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class _Registry:
    """The registry as a stack part (the same interface as :class:`._kafka.KafkaNode`)."""

    name = "registry"

    def __init__(self, settings: Settings):
        self.settings = settings

    @property
    def address(self) -> str:
        return _registry.url(self.settings)

    def layout(self):
        return _registry.layout(self.settings)

    def answers(self) -> bool:
        return _registry.answers(self.settings)

    def busy_ports(self) -> list[int]:
        return _registry.busy_ports(self.settings)


def _parts(settings: Settings) -> dict:
    """Parts of the stack by name: the Kafka node(s), then the registry."""
    out: dict = {node.name: node for node in _kafka.nodes(settings)}
    out["registry"] = _Registry(settings)
    return out


def _title(name: str) -> str:
    return "Apicurio Registry" if name == "registry" else "Kafka broker" if name == "kafka" else f"Kafka node {name}"


BROKERS_FILE = Path("kafka") / "brokers"
"""Under ``settings.home``: how many Kafka nodes the last ``up`` started (absent: one)."""


TLS_FILE = Path("kafka") / "tls"
"""Under ``settings.home``: present when the last ``up`` started the stack with TLS."""


def recorded_tls(settings: Settings) -> bool:
    """Whether the last :func:`up` of this home started the stack with TLS."""
    return (settings.home / TLS_FILE).exists()


def with_tls(settings: Settings) -> Settings:
    """``settings`` of a client of the local TLS stack: ``stack_tls`` on, SASL_SSL as user
    ``conveyor`` (password from ``tls/credentials.json``), the stack's CA for Kafka and the
    registry, and the registry's ``https://`` URL when the URL named the local registry."""
    tls = dataclasses.replace(settings, stack_tls=True)
    files = _tls.tls_dir(settings.home)
    local = settings.schema_registry_url == _registry.url(dataclasses.replace(settings, stack_tls=False))
    return dataclasses.replace(
        tls, kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="PLAIN", kafka_sasl_username=_tls.CLIENT_USER,
        kafka_sasl_password=SecretStr(_tls.credentials(files)[_tls.CLIENT_USER]),
        kafka_ssl_ca_location=str(files.ca_cert), schema_registry_ssl_ca_location=str(files.ca_cert),
        schema_registry_url=_registry.url(tls) if local else settings.schema_registry_url)


def recorded_brokers(settings: Settings) -> Optional[int]:
    """The node count the last :func:`up` of this home recorded, or None."""
    try:
        return int((settings.home / BROKERS_FILE).read_text(encoding="utf-8").strip())
    except (FileNotFoundError, ValueError):
        return None


def with_brokers(settings: Settings, brokers: int) -> Settings:
    """``settings`` for a local stack of ``brokers`` Kafka nodes (1 or 3): replication factor
    ``min(brokers, 3)``, ``min.insync.replicas`` 2 with three replicas, and ``bootstrap_servers``
    listing every node when it named the local stack's first node (another cluster is kept).

    Raises:
        ValueError: ``brokers`` is not 1 or 3.
    """
    if brokers not in (1, 3):
        raise ValueError(f"a local stack has 1 or 3 Kafka nodes, not {brokers}")
    replicas = min(brokers, 3)
    local = settings.bootstrap_servers in (local_bootstrap(settings.kafka_port, n) for n in (1, 3))
    return dataclasses.replace(
        settings, kafka_brokers=brokers, replication_factor=replicas, min_insync_replicas=2 if replicas >= 3 else 1,
        bootstrap_servers=local_bootstrap(settings.kafka_port, brokers) if local else settings.bootstrap_servers)


def _milvus(settings: Settings) -> dict:
    """Milvus needs no process here: Lite is a file, a server is whatever the URI names."""
    uri = settings.milvus_uri or str(settings.home / "milvus" / "conveyor.db")
    kind = "server" if uri.split("://", 1)[0] in ("http", "https", "tcp", "grpc") else "lite"
    return {"uri": redact_uri(uri), "kind": kind}


def status(settings: Settings) -> dict:
    """Where the local stack stands; starts and stops nothing.

    Returns:
        ``{"home": str,
        "kafka": {"up": bool, "pid": int|None, "address": "127.0.0.1:<kafka_port>", "log": str},
        "registry": {"up": bool, "pid": int|None, "address": "127.0.0.1:<registry_port>",
        "url": "http://127.0.0.1:<registry_port>/apis/ccompat/v7", "log": str},
        "milvus": {"uri": str, "kind": "lite"|"server"}}``.
        ``up`` means the part answers (broker metadata request; registry ``GET /subjects``
        returns 200), whoever started it; ``pid`` is set only for a live process that ``up``
        started from this home. With three nodes, ``"kafka"`` says whether all answer and its
        ``address`` is the bootstrap list; ``"nodes"`` lists each node (``name``, ``node_id``,
        ``up``, ``pid``, ``address``, ``controller_address``, ``log``) and ``"cluster"`` is
        :func:`conveyor.tools.stack._cluster.describe` (the active controller, partition leaders).
    """
    out: dict = {"home": str(settings.home)}
    kafka_nodes = []
    for name, part in _parts(settings).items():
        lay = part.layout()
        entry = {"up": part.answers(), "pid": live_pid(lay), "log": str(lay.log_file)}
        if name == "registry":
            out[name] = {**entry, "address": f"127.0.0.1:{settings.registry_port}", "url": part.address}
        else:
            kafka_nodes.append({"name": name, "node_id": part.node_id, **entry, "address": part.address,
                                "controller_address": f"127.0.0.1:{part.controller_port}"})
    if len(kafka_nodes) == 1:
        node = kafka_nodes[0]
        out["kafka"] = {"up": node["up"], "pid": node["pid"], "address": node["address"], "log": node["log"]}
    else:
        from conveyor.tools.stack._cluster import describe

        out["kafka"] = {"up": all(n["up"] for n in kafka_nodes), "pid": None,
                        "address": _kafka.address(settings), "log": str(settings.home / "logs")}
        out["nodes"] = kafka_nodes
        out["cluster"] = describe(settings) if any(n["up"] for n in kafka_nodes) else None
    out["milvus"] = _milvus(settings)
    return out


def up(settings: Settings, *, timeout: float = 180, log: Callable[[str], object] = print,
       wrap: Optional[Callable[[str, list[str]], list[str]]] = None) -> dict:
    """Start whatever part of the local stack does not answer yet, and wait until all answer.

    Parts that already answer are left alone (so a second call is a cheap no-op); a part
    whose process is alive but still starting is waited for. For a part to start: finds a
    Java (17+ for Kafka; for the registry the version its jars are built for, 21 for
    Apicurio 3.3) in ``$JAVA_HOME``, PATH or ``/usr/lib/jvm/*``, needs Maven when something
    must be fetched, resolves
    Kafka jars / the Apicurio distribution into ``settings.home`` (skipped when present
    with matching versions), writes the configs, formats KRaft storage once, and starts
    the JVM detached with a pid file under ``home/run`` and its output in ``home/logs``.

    Args:
        settings: ports (``kafka_port``, ``controller_port``, ``registry_port``), ``home``
            and ``max_message_bytes`` (the broker accepts that plus 1 MiB).
        timeout: seconds to wait for the started parts to answer, counted from their start
            (downloads and unpacking are not included).
        log: called with one progress line at a time.
        wrap: ``(part name, argv) -> argv`` applied to each command line before it starts (the
            fault suite starts Kafka nodes in their own cgroup this way, to cut them off the network).

    Returns:
        :func:`status`, where each of ``"kafka"``/``"registry"`` (and each of ``"nodes"``) also has ``"started"``
        (bool: this call started its process) and ``"startup_s"`` (seconds this call waited
        for it to answer, or ``None`` when it already answered).

    Raises:
        StackError: Java/Maven missing or too old, a download or storage format failed,
            a port is taken by something that is not this stack, a process exited, or a
            part did not answer within ``timeout`` (the message names the log file and
            quotes its last lines).
    """
    parts = _parts(settings)
    with home_lock(settings.home):
        _check_tls_mode(settings, parts)
        if settings.stack_tls:
            _tls.ensure(settings.home, log)
        waiting: dict[str, tuple[int, float]] = {}
        to_start = []
        for name, part in parts.items():
            if part.answers():
                log(f"stack: {_title(name)} already answers on {part.address}")
                continue
            pid = live_pid(part.layout())
            if pid is not None:
                log(f"stack: {_title(name)} (pid {pid}) is starting; waiting for it")
                waiting[name] = (pid, time.monotonic())
                continue
            busy = part.busy_ports()
            if busy:
                raise StackError(
                    f"cannot start the {_title(name)}: port(s) {busy} are taken by another "
                    f"process that is not this stack (home {settings.home}); free them or set "
                    "CONVEYOR_KAFKA_PORT / CONVEYOR_CONTROLLER_PORT / CONVEYOR_REGISTRY_PORT"
                )
            to_start.append(name)
        prepared = {name: _prepare(settings, parts[name], log) for name in to_start}  # downloads first
        if any(name != "registry" for name in to_start):
            (settings.home / BROKERS_FILE).parent.mkdir(parents=True, exist_ok=True)
            (settings.home / BROKERS_FILE).write_text(f"{settings.kafka_brokers}\n", encoding="utf-8")
            (settings.home / TLS_FILE).unlink(missing_ok=True)
            if settings.stack_tls:
                (settings.home / TLS_FILE).write_text("SASL_SSL\n", encoding="utf-8")
        for name, (argv, cwd) in prepared.items():
            lay = parts[name].layout()
            pid = spawn(lay, wrap(name, argv) if wrap else argv, cwd)
            log(f"stack: started {_title(name)} (pid {pid}), log {lay.log_file}")
            waiting[name] = (pid, time.monotonic())
        startup = _wait(parts, waiting, timeout, log)
    result = status(settings)
    if settings.stack_tls:
        env_file = _tls.write_client_env(settings)
        result["tls"] = {"ca": str(_tls.tls_dir(settings.home).ca_cert), "client_env": str(env_file)}
    for name in parts:
        entry = result["registry"] if name == "registry" else next(
            (n for n in result.get("nodes", []) if n["name"] == name), result["kafka"])
        entry["started"] = name in to_start
        entry["startup_s"] = startup.get(name)
    if "nodes" in result:
        result["kafka"]["started"] = any(n["started"] for n in result["nodes"])
        result["kafka"]["startup_s"] = max((n["startup_s"] or 0 for n in result["nodes"]), default=None)
    return result


def _check_tls_mode(settings: Settings, parts: dict) -> None:
    """Refuse to mix: a stack running with(out) TLS is not restarted the other way by ``up``.

    Raises:
        StackError: a part of this home runs and was started with the other TLS mode.
    """
    if recorded_tls(settings) == settings.stack_tls:
        return
    running = [name for name, part in parts.items() if live_pid(part.layout()) is not None]
    if running:
        was = "with TLS" if recorded_tls(settings) else "without TLS"
        raise StackError(f"the local stack ({', '.join(running)}) runs {was}; run `conveyor stack down` first")


def _prepare(settings: Settings, part, log) -> tuple[list[str], Path]:
    """Resolve, configure (and for Kafka format) ``part``; return its argv and working dir."""
    if part.name != "registry":
        java = check_java(17, "the Kafka broker")
        libs = _kafka.ensure_libs(settings, log)
        part.write_config()
        part.format_storage(java, libs, log)
        return part.command(java, libs), part.directory
    try:
        java = check_java(21, "Apicurio Registry 3.1+")
        version = None
    except StackError:
        java = check_java(17, "Apicurio Registry")
        version = _registry.pom_versions()["apicurio.java17.version"]
        log(f"stack: no Java 21+ found; using Apicurio Registry {version}, which runs on Java 17")
    dist = _registry.ensure_dist(settings, log, version)
    java = check_java(max(_registry.min_java(dist), 17), f"Apicurio Registry {dist.name}")
    cwd = _registry.write_config(settings)
    return _registry.command(settings, java, dist), cwd


def _wait(parts: dict, waiting: dict[str, tuple[int, float]], timeout: float, log) -> dict:
    """Poll the started parts until each answers; return seconds each took."""
    done: dict[str, float] = {}
    deadline = {name: t0 + timeout for name, (_, t0) in waiting.items()}
    while len(done) < len(waiting):
        for name, (pid, t0) in waiting.items():
            if name in done:
                continue
            part = parts[name]
            lay = part.layout()
            if part.answers():
                done[name] = round(time.monotonic() - t0, 1)
                log(f"stack: {_title(name)} answers on {part.address} after {done[name]} s")
            elif exited(pid):
                raise failure(_title(name), lay, f"(pid {pid}) exited during startup")
            elif time.monotonic() > deadline[name]:
                raise failure(_title(name), lay, f"(pid {pid}) did not answer within {timeout:.0f} s")
        if len(done) < len(waiting):
            time.sleep(0.5)
    return done


def down(
    settings: Settings,
    *,
    timeout: float = 30,
    log: Callable[[str], object] = print,
    parts: Iterable[str] = ("registry", "kafka"),
) -> dict:
    """Stop the processes that :func:`up` started from ``settings.home``.

    Only pids from ``home/run/*.pid`` whose command line carries this home's marker are
    signalled: SIGTERM, then SIGKILL after ``timeout`` seconds. Pid files are removed.
    Anything else (a stack started elsewhere, a reused pid) is never touched.

    Args:
        timeout: seconds between SIGTERM and SIGKILL, per process.
        parts: which of ``"registry"``, ``"kafka"`` (every Kafka node) or ``"kafka-<i>"`` (one node of
            a three-node cluster) to stop (default the registry and every node).

    Returns:
        ``{"registry": {"stopped": bool, "pid": int|None, "forced": bool}, "kafka": {...}}``;
        ``stopped`` is False when there was nothing to stop; ``forced`` when SIGKILL was needed; with
        three nodes also one entry per node (``"kafka"`` then sums them up).

    Raises:
        ValueError: ``parts`` names something that is not a part of this stack.
    """
    known = _parts(with_brokers(settings, recorded_brokers(settings) or settings.kafka_brokers))
    kafka_names = [name for name in known if name != "registry"]
    names = []
    for name in parts:
        if name == "kafka":
            names += kafka_names
        elif name in known:
            names.append(name)
        else:
            raise ValueError(f"unknown stack part {name!r}; known: {sorted({'kafka', *known})}")
    names = sorted(set(names), key=lambda n: (n != "registry", n))  # the registry first, as before
    out = {name: {"stopped": False, "pid": None, "forced": False} for name in names}
    if not settings.home.is_dir():
        log(f"stack: nothing to stop ({settings.home} does not exist)")
        return out
    with home_lock(settings.home):
        # the nodes of a cluster stop together: stopped one after another, the last one would
        # wait for a quorum that is gone and be killed at the timeout
        with ThreadPoolExecutor(max_workers=len(names)) as pool:
            results = dict(zip(names, pool.map(lambda n: stop(known[n].layout(), timeout), names)))
        for name in names:
            res = results[name]
            out[name] = res
            if res["stopped"]:
                how = "killed" if res["forced"] else "stopped"
                log(f"stack: {how} {_title(name)} (pid {res['pid']})")
            else:
                log(f"stack: {_title(name)}: nothing to stop")
    if "kafka" in parts and len(kafka_names) > 1:
        out["kafka"] = {"stopped": any(out[n]["stopped"] for n in kafka_names), "pid": None,
                        "forced": any(out[n]["forced"] for n in kafka_names)}
    return out
