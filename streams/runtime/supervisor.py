"""Running processors: several stages in one process (threads), or ``run all``
as a local supervisor of child processes that restarts a crashed child."""
from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Optional

from conveyor.streams.config import env
from conveyor.streams.config.settings import Settings
from conveyor.streams.runtime.stages import (
    build_stage,
    close_sinks,
    single_process_store,
)
from conveyor.streams.topology.pipeline import builtin_pipeline, pipeline
from conveyor.streams.topology.pipeline import process_groups as _groups

log = logging.getLogger(__name__)


def process_groups(settings: Settings, *, with_drift: bool = True, builtin_only: bool = False) -> list[list[str]]:
    """How ``run all`` splits the pipeline's stages into processes
    (:func:`conveyor.streams.topology.pipeline.process_groups`): one each, except the stages using a
    single-process vector store (a Milvus Lite file), which share one. ``builtin_only``
    leaves plugin stages out (the fault suite and benchmarks measure the core pipeline)."""
    return _groups(single_process_store(settings), with_drift=with_drift,
                   of=builtin_pipeline() if builtin_only else pipeline())


def run_stages(names: Sequence[str], settings: Settings, *, install_signals: bool = True,
               max_idle_seconds: Optional[float] = None, stop_event: Optional[threading.Event] = None) -> None:
    """Run the named runner stages in this process, one thread each, until stopped.

    Raises:
        UnknownStageError: an unknown stage name (the message lists the available ones).
        ValueError: a stage that runs on its own (``drift`` is a faust app).
        RuntimeError: a stage thread died with an exception.
    """
    from conveyor.streams.runtime.runner import Runner

    specs = [pipeline().stage(n) for n in names]
    runners = [Runner(settings, build_stage(s.name, settings)) for s in specs]
    errors: list[BaseException] = []

    def target(r: Runner) -> None:
        try:
            r.run(max_idle_seconds=max_idle_seconds)
        except BaseException as exc:
            log.exception("%s died", r.name)
            errors.append(exc)
            for other in runners:
                other.stop()

    threads = [threading.Thread(target=target, args=(r,), name=f"runner-{r.name}", daemon=True) for r in runners]
    if install_signals:
        def stop_all(_signum: int, _frame: Optional[FrameType]) -> None:
            for r in runners:
                r.stop()

        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, stop_all)
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        if stop_event is not None and stop_event.is_set():
            for r in runners:
                r.stop()
        for t in threads:
            t.join(0.2)
    close_sinks()  # the vector store is shared by index and classify: closed once both have stopped
    if errors:
        raise RuntimeError(f"processor failed: {errors[0]!r}") from errors[0]


@dataclass(eq=False)  # identity: two children may run the same group (scale-out)
class _Child:
    group: list[str]
    proc: Optional[subprocess.Popen[bytes]] = None
    restarts: int = 0
    started_at: float = 0.0
    log_path: Optional[Path] = None


@dataclass
class Supervisor:
    """Starts each process group as ``python -m conveyor.streams.cli.main run <names>`` and keeps it alive.

    A child that exits unexpectedly is restarted after a backoff (1 s doubling
    to 30 s). :meth:`stop` sends SIGTERM (children drain and commit), then
    SIGKILL after ``grace`` seconds.
    """

    settings: Settings
    groups: list[list[str]]
    log_dir: Optional[Path] = None
    grace: float = 30.0
    command: tuple[str, ...] = (sys.executable, "-m", "conveyor.streams.cli.main", "run")
    """The child's command line before its stage names (unit tests run a stand-in)."""
    children: list[_Child] = field(default_factory=list)
    _stopping: bool = False
    STABLE_AFTER = 60.0
    """Seconds a child must have run for its restart backoff to start again at 1 s."""

    def _spawn(self, child: _Child) -> None:
        environ = dict(os.environ)
        environ[env.NAMESPACE] = self.settings.namespace
        environ[env.MILVUS_URI] = self.settings.milvus_uri
        environ[env.VECTOR_SINK] = self.settings.vector_sink
        environ[env.BLOB_DIR] = str(self.settings.blob_dir)
        environ[env.BOOTSTRAP_SERVERS] = self.settings.bootstrap_servers
        environ[env.SCHEMA_REGISTRY_URL] = self.settings.schema_registry_url
        st = self.settings  # security and routing settings travel with the Settings object, not only os.environ
        for name, value in ((env.KAFKA_SECURITY_PROTOCOL, st.kafka_security_protocol),
                            (env.KAFKA_SASL_MECHANISM, st.kafka_sasl_mechanism),
                            (env.KAFKA_SASL_USERNAME, st.kafka_sasl_username),
                            (env.KAFKA_SASL_PASSWORD, st.kafka_sasl_password.get_secret_value()
                             if st.kafka_sasl_password else None),
                            (env.KAFKA_SSL_CA_LOCATION, st.kafka_ssl_ca_location),
                            (env.SCHEMA_REGISTRY_SSL_CA_LOCATION, st.schema_registry_ssl_ca_location),
                            (env.AUTO_THRESHOLD, None if st.auto_threshold is None else repr(st.auto_threshold))):
            if value:
                environ[name] = value
        # Stable per child across restarts: the restarted child's transactional producer
        # fences its killed predecessor and aborts its open transaction right away.
        environ[env.INSTANCE_ID] = f"{socket.gethostname()}.{os.getpid()}.{self.children.index(child)}"
        if self.settings.metrics_port:
            environ[env.METRICS_PORT] = str(self.settings.metrics_port + self.children.index(child))
            environ[env.METRICS_ADDR] = self.settings.metrics_addr
        out = None
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            child.log_path = self.log_dir / f"{self.child_name(child)}.log"
            out = open(child.log_path, "ab")
        cmd = [*self.command, *child.group]
        child.proc = subprocess.Popen(cmd, env=environ, stdout=out, stderr=subprocess.STDOUT if out else None)
        child.started_at = time.monotonic()
        log.info("started %s (pid %d)", " ".join(child.group), child.proc.pid)

    def start(self) -> None:
        """Start every group."""
        self.children = [_Child(list(g)) for g in self.groups]
        for c in self.children:
            self._spawn(c)

    def check(self) -> None:
        """Restart children that exited (call periodically)."""
        for c in self.children:
            if self._stopping or c.proc is None or c.proc.poll() is None:
                continue
            if time.monotonic() - c.started_at > self.STABLE_AFTER:
                c.restarts = 0  # it ran fine for a while: restart fast again
            backoff = min(30.0, 2.0 ** c.restarts)
            if time.monotonic() - c.started_at < backoff:
                continue
            log.warning("%s exited with %s; restarting (restart #%d)", " ".join(c.group), c.proc.returncode,
                        c.restarts + 1)
            c.restarts += 1
            self._spawn(c)

    def stop(self) -> dict[str, int]:
        """SIGTERM all children, wait ``grace`` seconds, SIGKILL the rest; return exit codes by
        group name (``extract``; ``extract.<index>`` when the group runs more than once)."""
        self._stopping = True
        for c in self.children:
            if c.proc and c.proc.poll() is None:
                c.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.grace
        codes = {}
        for c in self.children:
            if c.proc is None:
                continue
            try:
                c.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in %.0fs; killing", " ".join(c.group), self.grace)
                c.proc.kill()
                c.proc.wait(10)
            codes[self.child_name(c)] = c.proc.returncode
        return codes

    def child_name(self, child: _Child) -> str:
        """``extract`` or, when the group runs more than once, ``extract.<index>``."""
        name = "-".join(child.group)
        if sum(c.group == child.group for c in self.children) > 1:
            name += f".{self.children.index(child)}"
        return name

    def run_forever(self) -> None:
        """Start, supervise until SIGTERM/SIGINT, then stop."""
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        self.start()
        while not stop.wait(1.0):
            self.check()
        self.stop()
