"""A second, separate single-node KRaft broker with a ``SASL_PLAINTEXT`` listener (mechanism
``PLAIN``), for trying and testing Kafka security settings without touching the main stack.

It reuses the Kafka jars the main stack resolved (``settings.home / "kafka" / "libs"``) and
keeps everything else apart, under ``settings.home``:

* ``<name>/server.properties`` (mode 0600: it holds the JAAS passwords) and ``<name>/data/``;
* ``logs/<name>.log`` and ``run/<name>.pid``, where ``<name>`` is ``sasl-kafka-<port>``.

Listeners: ``SASL_PLAINTEXT://127.0.0.1:<port>`` for clients and between brokers (as user
``admin``), ``CONTROLLER://127.0.0.1:<controller_port>`` (PLAINTEXT, KRaft only). Users and
passwords live in the listener's JAAS line
``listener.name.sasl_plaintext.plain.sasl.jaas.config=...PlainLoginModule required ...
user_<name>="<password>"``. Without ``authorizer`` every authenticated user may do anything;
with it the broker runs KRaft's ``StandardAuthorizer`` (KIP-801): ``admin`` (and the
controller listener's ``ANONYMOUS``) are super users, everyone else needs ACLs
(``allow.everyone.if.no.acl.found=false``, the default).
Tuning (message sizes, replication 1, threads) is the main broker's template.

:func:`stop` signals only the process :func:`start` recorded in the pid file, and only if
its command line carries this broker's marker; the main stack's ``up``/``down`` never see it.
"""
from __future__ import annotations

import re
import secrets
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from conveyor.streams.config.settings import Settings
from conveyor.tools.stack import _kafka
from conveyor.tools.stack._common import (
    Layout,
    StackError,
    check_java,
    exited,
    failure,
    live_pid,
    marker_args,
    port_open,
    spawn,
    template,
    write_if_changed,
    write_private,
)
from conveyor.tools.stack._common import (
    stop as _stop,
)

DEFAULT_PORT = 29092
"""Client port of the SASL broker (the main broker uses 19092)."""
DEFAULT_CONTROLLER_PORT = 29093
"""KRaft controller port of the SASL broker (the main controller uses 19093)."""
JVM_OPTS = ["-Xms128m", "-Xmx512m", *(o for o in _kafka.JVM_OPTS if not o.startswith(("-Xms", "-Xmx")))]
"""The main broker's JVM options with a smaller heap: a test broker holds little data."""
MECHANISM = "PLAIN"
PROTOCOL = "SASL_PLAINTEXT"
AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
"""KRaft's ACL authorizer (KIP-801)."""
_SAFE = re.compile(r"^[A-Za-z0-9._-]+$")


@dataclass(frozen=True)
class SaslBroker:
    """What the SASL broker looks like: ports, users and where its files go.

    Args:
        home: state directory (``settings.home``); jars are read from ``home/kafka/libs``.
        users: client users as ``((name, password), ...)``; names and passwords are
            1+ characters of ``[A-Za-z0-9._-]`` (they go into the JAAS line without escaping).
        port: TCP port of the SASL_PLAINTEXT listener on 127.0.0.1.
        controller_port: TCP port of the KRaft controller listener on 127.0.0.1.
        admin_password: password of the inter-broker user ``admin`` (random by default).
        authorizer: run the ``StandardAuthorizer`` (only ``admin`` is a super user).

    Passwords are left out of ``repr``.

    Raises:
        ValueError: a user name or password has characters outside ``[A-Za-z0-9._-]``, or
            a user is called ``admin``.
    """

    home: Path
    users: tuple[tuple[str, str], ...] = field(repr=False)
    port: int = DEFAULT_PORT
    controller_port: int = DEFAULT_CONTROLLER_PORT
    admin_password: str = field(default_factory=lambda: secrets.token_hex(16), repr=False)
    authorizer: bool = False

    def __post_init__(self) -> None:
        for name, password in (*self.users, ("admin", self.admin_password)):
            if not (_SAFE.match(name) and _SAFE.match(password)):
                raise ValueError(f"SASL user {name!r}: names and passwords must match {_SAFE.pattern}")
        if any(name == "admin" for name, _ in self.users):
            raise ValueError("the user 'admin' is the broker's own inter-broker user; pick another name")

    @property
    def name(self) -> str:
        """Component name, ``sasl-kafka-<port>``: pid/log file stem and process marker."""
        return f"sasl-kafka-{self.port}"

    @property
    def layout(self) -> Layout:
        """Pid file ``home/run/<name>.pid`` and log file ``home/logs/<name>.log``."""
        return Layout(self.name, self.home)

    @property
    def directory(self) -> Path:
        """``home/<name>``: ``server.properties`` and ``data/``."""
        return self.home / self.name

    @property
    def bootstrap_servers(self) -> str:
        """``127.0.0.1:<port>``, for ``CONVEYOR_BOOTSTRAP_SERVERS``."""
        return f"127.0.0.1:{self.port}"

    def client_config(self, username: str = "admin", password: Optional[str] = None) -> dict[str, str]:
        """librdkafka settings that authenticate as ``username`` (its own password by default).

        Raises:
            KeyError: ``username`` is not a user of this broker and no password was given.
        """
        if password is None:
            password = self.admin_password if username == "admin" else dict(self.users)[username]
        return {"bootstrap.servers": self.bootstrap_servers, "security.protocol": PROTOCOL,
                "sasl.mechanism": MECHANISM, "sasl.username": username, "sasl.password": password}


def server_properties(broker: SaslBroker, settings: Settings) -> str:
    """The broker's ``server.properties``: the main broker's template (so the same message
    size limits, ``settings.max_message_bytes`` + 1 MiB) with the listeners replaced by a
    SASL_PLAINTEXT one and a PLAINTEXT controller, plus the JAAS users."""
    text = _kafka.server_properties(settings, port=broker.port, controller_port=broker.controller_port,
                                    log_dirs=broker.directory / "data")
    overrides = {
        "listeners": f"SASL_PLAINTEXT://127.0.0.1:{broker.port},CONTROLLER://127.0.0.1:{broker.controller_port}",
        "advertised.listeners": f"SASL_PLAINTEXT://127.0.0.1:{broker.port}",
        "listener.security.protocol.map": "SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT",
        "inter.broker.listener.name": "SASL_PLAINTEXT",
        "sasl.enabled.mechanisms": MECHANISM,
        "sasl.mechanism.inter.broker.protocol": MECHANISM,
        "listener.name.sasl_plaintext.plain.sasl.jaas.config":
            _kafka.plain_jaas_config(broker.admin_password, dict(broker.users)),
    }
    if broker.authorizer:
        overrides["authorizer.class.name"] = AUTHORIZER
        overrides["super.users"] = "User:admin;User:ANONYMOUS"
    return ("# SASL_PLAINTEXT test broker, written by conveyor.tools.stack._sasl.start (main template below).\n"
            + _kafka.apply_overrides(text, overrides, "SASL/PLAIN"))


def answers(broker: SaslBroker, timeout: float = 3.0) -> bool:
    """Whether the broker answers an authenticated (``admin``) metadata request."""
    if not port_open(broker.port):
        return False
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({**broker.client_config(), "log_level": 2})
    try:
        return bool(admin.list_topics(timeout=timeout).brokers)
    except KafkaException:
        return False


def _format(broker: SaslBroker, java: str, libs: Path, config: Path) -> None:
    """Format a fresh KRaft log dir with a new cluster id.

    Raises:
        StackError: the StorageTool fails.
    """
    data = broker.directory / "data"
    shutil.rmtree(data, ignore_errors=True)
    cmd = [java, f"-Dlog4j2.configurationFile={broker.directory / 'log4j2.properties'}", "-cp", f"{libs}/*",
           "kafka.tools.StorageTool", "format", "-t", _kafka.new_cluster_id(), "-c", str(config)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise StackError(f"SASL broker storage format failed (exit {out.returncode}):\n"
                         + (out.stdout + out.stderr).strip()[-3000:])


def start(broker: SaslBroker, settings: Settings, *, timeout: float = 120.0,
          log: Callable[[str], object] = print) -> int:
    """Start the SASL broker with fresh, empty storage and wait until it answers.

    Needs Java 17+ and the main stack's Kafka jars (resolved with Maven if missing, as
    ``conveyor stack up`` does). A broker of this name that already runs from this home
    is stopped first, so the users and passwords are always ``broker``'s.

    Args:
        broker: ports, users and home.
        settings: ``max_message_bytes`` (the broker accepts that plus 1 MiB); its own
            ``home`` is not used (``broker.home`` is).
        timeout: seconds to wait, after spawning the JVM, for an authenticated metadata answer.
        log: called with one progress line at a time (never with a password).

    Returns:
        The broker's pid.

    Raises:
        StackError: no Java 17+, jars missing and Maven unavailable, a port taken by another
            process, the storage format failed, the process exited, or it did not answer
            within ``timeout`` seconds (the message names the log file and quotes its end).
    """
    java = check_java(17, "the SASL test broker")
    stop(broker)
    busy = [p for p in (broker.port, broker.controller_port) if port_open(p)]
    if busy:
        raise StackError(f"cannot start the SASL test broker: port(s) {busy} are taken by another process")
    libs = _kafka.ensure_libs(Settings(home=broker.home), log)
    config = broker.directory / "server.properties"
    write_if_changed(broker.directory / "log4j2.properties", template("kafka-log4j2.properties"))
    write_private(config, server_properties(broker, settings))
    _format(broker, java, libs, config)
    argv = [java, f"-Dlog4j2.configurationFile={broker.directory / 'log4j2.properties'}", *JVM_OPTS,
            *marker_args(broker.layout), "-cp", f"{libs}/*", "kafka.Kafka", str(config)]
    pid = spawn(broker.layout, argv, broker.directory)
    log(f"stack: started SASL test broker (pid {pid}) on {broker.bootstrap_servers}, log {broker.layout.log_file}")
    t0 = time.monotonic()
    while not answers(broker):
        if exited(pid):
            raise failure("SASL test broker", broker.layout, f"(pid {pid}) exited during startup")
        if time.monotonic() - t0 > timeout:
            stop(broker)
            raise failure("SASL test broker", broker.layout, f"(pid {pid}) did not answer within {timeout:.0f} s")
        time.sleep(0.5)
    log(f"stack: SASL test broker answers after {time.monotonic() - t0:.1f} s")
    return pid


def stop(broker: SaslBroker, timeout: float = 30.0) -> dict:
    """Stop the broker :func:`start` started from ``broker.home`` on ``broker.port``, if any.

    SIGTERM, then SIGKILL after ``timeout`` seconds; only the pid in ``run/<name>.pid``
    whose command line carries this broker's marker is signalled.

    Returns:
        ``{"stopped": bool, "pid": int|None, "forced": bool}``.
    """
    return _stop(broker.layout, timeout)


def running_pid(broker: SaslBroker) -> Optional[int]:
    """Pid of the live broker :func:`start` started, or ``None``."""
    return live_pid(broker.layout)


def main(argv: Optional[list[str]] = None) -> int:
    """``python -m conveyor.tools.stack._sasl up|down|status``: run the SASL broker by hand.

    ``up`` accepts the client user ``$CONVEYOR_KAFKA_SASL_USERNAME`` with password
    ``$CONVEYOR_KAFKA_SASL_PASSWORD`` (read from the environment, never from the command
    line, so it does not show in ``ps``) on ``--port``/``--controller-port``, with fresh
    storage, and prints ``{"pid", "bootstrap_servers", "log"}`` as JSON. ``down`` stops it.
    Exit code 1 with one ``error:`` line on :class:`StackError` or a missing variable.
    """
    import argparse
    import json
    import os as _os
    import sys

    from conveyor.streams.config import env

    parser = argparse.ArgumentParser(prog="python -m conveyor.tools.stack._sasl", description=(main.__doc__ or "").split("\n")[0])
    parser.add_argument("action", choices=("up", "down", "status"))
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--controller-port", type=int, default=DEFAULT_CONTROLLER_PORT)
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    user, password = _os.environ.get(env.KAFKA_SASL_USERNAME), _os.environ.get(env.KAFKA_SASL_PASSWORD)
    users: tuple[tuple[str, str], ...] = ()
    if args.action == "up":
        if not (user and password):
            print(f"error: set {env.KAFKA_SASL_USERNAME} and {env.KAFKA_SASL_PASSWORD}", file=sys.stderr)
            return 1
        users = ((user, password),)
    broker = SaslBroker(settings.home, users=users,
                        port=args.port, controller_port=args.controller_port)
    try:
        if args.action == "up":
            pid = start(broker, settings, log=lambda line: print(line, file=sys.stderr))
            out: dict = {"pid": pid, "bootstrap_servers": broker.bootstrap_servers, "log": str(broker.layout.log_file)}
        elif args.action == "down":
            out = stop(broker)
        else:
            out = {"pid": running_pid(broker), "bootstrap_servers": broker.bootstrap_servers,
                   "log": str(broker.layout.log_file)}
    except (StackError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
