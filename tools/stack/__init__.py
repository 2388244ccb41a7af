"""The local stack: a single-node KRaft Kafka broker and Apicurio Registry 3, as plain JVMs.

No Docker: both are fetched from Maven Central with ``mvn`` (see ``pom.xml`` next to this
file) into ``settings.home`` (default ``~/.cache/conveyor``) and started detached, so they
outlive the command that started them. Milvus needs no process: the default is Milvus Lite
(a file), or a server named by ``CONVEYOR_MILVUS_URI``.

Layout under ``settings.home``: ``kafka/`` (jars, config, data), ``apicurio/`` (distribution,
config, H2 database), ``logs/kafka.log`` and ``logs/registry.log``, ``run/*.pid``.

``up`` is idempotent and ``down`` stops only what ``up`` started (pid files).

A second, separate broker with a SASL_PLAINTEXT listener, for security tests, is started
and stopped by :func:`start_sasl_broker` / :func:`stop_sasl_broker` (see
:mod:`conveyor.tools.stack._sasl`); ``up``/``down``/``status`` never touch it.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Iterable

from conveyor.sinks.milvus_errors import redact_uri
from conveyor.streams.settings import Settings
from conveyor.tools.stack import _kafka, _registry
from conveyor.tools.stack._common import (
    StackError, check_java, exited, failure, home_lock, live_pid, spawn, stop,
)

__all__ = ["StackError", "up", "down", "status", "SaslBroker", "start_sasl_broker", "stop_sasl_broker"]

_SASL_EXPORTS = {"SaslBroker": "SaslBroker", "start_sasl_broker": "start", "stop_sasl_broker": "stop"}


def __getattr__(name: str):
    """The SASL test broker's API, imported on first use (so ``python -m conveyor.tools.stack._sasl``
    runs that module once, as ``__main__``)."""
    if name in _SASL_EXPORTS:
        from conveyor.tools.stack import _sasl

        return getattr(_sasl, _SASL_EXPORTS[name])
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_PARTS = {"kafka": _kafka, "registry": _registry}
_NAMES = {"kafka": "Kafka broker", "registry": "Apicurio Registry"}


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
        started from this home.
    """
    out: dict = {"home": str(settings.home)}
    for name, part in _PARTS.items():
        lay = part.layout(settings)
        out[name] = {
            "up": part.answers(settings),
            "pid": live_pid(lay),
            "address": f"127.0.0.1:{settings.kafka_port if name == 'kafka' else settings.registry_port}",
            "log": str(lay.log_file),
        }
    out["registry"]["url"] = _registry.url(settings)
    out["milvus"] = _milvus(settings)
    return out


def up(settings: Settings, *, timeout: float = 180, log: Callable[[str], object] = print) -> dict:
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

    Returns:
        :func:`status`, where each of ``"kafka"``/``"registry"`` also has ``"started"``
        (bool: this call started its process) and ``"startup_s"`` (seconds this call waited
        for it to answer, or ``None`` when it already answered).

    Raises:
        StackError: Java/Maven missing or too old, a download or storage format failed,
            a port is taken by something that is not this stack, a process exited, or a
            part did not answer within ``timeout`` (the message names the log file and
            quotes its last lines).
    """
    with home_lock(settings.home):
        waiting: dict[str, tuple[int, float]] = {}
        to_start = []
        for name, part in _PARTS.items():
            if part.answers(settings):
                log(f"stack: {_NAMES[name]} already answers on {_address(settings, name)}")
                continue
            pid = live_pid(part.layout(settings))
            if pid is not None:
                log(f"stack: {_NAMES[name]} (pid {pid}) is starting; waiting for it")
                waiting[name] = (pid, time.monotonic())
                continue
            busy = part.busy_ports(settings)
            if busy:
                raise StackError(
                    f"cannot start the {_NAMES[name]}: port(s) {busy} are taken by another "
                    f"process that is not this stack (home {settings.home}); free them or set "
                    "CONVEYOR_KAFKA_PORT / CONVEYOR_CONTROLLER_PORT / CONVEYOR_REGISTRY_PORT"
                )
            to_start.append(name)
        prepared = {name: _prepare(settings, name, log) for name in to_start}  # downloads first
        for name, (argv, cwd) in prepared.items():
            lay = _PARTS[name].layout(settings)
            pid = spawn(lay, argv, cwd)
            log(f"stack: started {_NAMES[name]} (pid {pid}), log {lay.log_file}")
            waiting[name] = (pid, time.monotonic())
        startup = _wait(settings, waiting, timeout, log)
    result = status(settings)
    for name in _PARTS:
        result[name]["started"] = name in to_start
        result[name]["startup_s"] = startup.get(name)
    return result


def _prepare(settings: Settings, name: str, log) -> tuple[list[str], Path]:
    """Resolve, configure (and for Kafka format) part ``name``; return its argv and working dir."""
    if name == "kafka":
        java = check_java(17, "the Kafka broker")
        libs = _kafka.ensure_libs(settings, log)
        _kafka.write_config(settings)
        _kafka.format_storage(settings, java, libs, log)
        return _kafka.command(settings, java, libs), settings.home / "kafka"
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


def _address(settings: Settings, name: str) -> str:
    return _kafka.address(settings) if name == "kafka" else _registry.url(settings)


def _wait(settings: Settings, waiting: dict[str, tuple[int, float]], timeout: float, log) -> dict:
    """Poll the started parts until each answers; return seconds each took."""
    done: dict[str, float] = {}
    deadline = {name: t0 + timeout for name, (_, t0) in waiting.items()}
    while len(done) < len(waiting):
        for name, (pid, t0) in waiting.items():
            if name in done:
                continue
            part, lay = _PARTS[name], _PARTS[name].layout(settings)
            if part.answers(settings):
                done[name] = round(time.monotonic() - t0, 1)
                log(f"stack: {_NAMES[name]} answers on {_address(settings, name)} after {done[name]} s")
            elif exited(pid):
                raise failure(_NAMES[name], lay, f"(pid {pid}) exited during startup")
            elif time.monotonic() > deadline[name]:
                raise failure(_NAMES[name], lay, f"(pid {pid}) did not answer within {timeout:.0f} s")
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
        parts: which of ``"registry"``, ``"kafka"`` to stop (default both).

    Returns:
        ``{"registry": {"stopped": bool, "pid": int|None, "forced": bool}, "kafka": {...}}``;
        ``stopped`` is False when there was nothing to stop; ``forced`` when SIGKILL was needed.

    Raises:
        ValueError: ``parts`` names something other than ``"registry"``/``"kafka"``.
    """
    unknown = set(parts) - set(_PARTS)
    if unknown:
        raise ValueError(f"unknown stack part(s) {sorted(unknown)}; known: {sorted(_PARTS)}")
    names = [name for name in ("registry", "kafka") if name in parts]
    out = {name: {"stopped": False, "pid": None, "forced": False} for name in names}
    if not settings.home.is_dir():
        log(f"stack: nothing to stop ({settings.home} does not exist)")
        return out
    with home_lock(settings.home):
        for name in names:
            res = stop(_PARTS[name].layout(settings), timeout)
            out[name] = res
            if res["stopped"]:
                how = "killed" if res["forced"] else "stopped"
                log(f"stack: {how} {_NAMES[name]} (pid {res['pid']})")
            else:
                log(f"stack: {_NAMES[name]}: nothing to stop")
    return out
