"""Health of a processor process: ``/healthz`` (liveness), ``/readyz`` (readiness) and
``/metrics`` on one HTTP port.

* **Liveness** — every loop of the process (a runner stage's poll loop, the drift worker's
  timer) beats a :class:`Heartbeat`; ``/healthz`` answers 200 while every beat is younger than
  its bound (the longest one loop may take: the stage's ``max.poll.interval.ms``, the same
  bound after which Kafka evicts a consumer), else 503 — a stuck loop gets the pod restarted.
* **Readiness** — ``/readyz`` answers 200 when every registered check passes: the stage joined
  its consumer group, Kafka answers a metadata request, the schema registry answers, the sink
  (vector store) answers. A background thread runs the checks every :data:`CHECK_TTL` seconds
  and ``/readyz`` answers from the latest results at once, so a probe never waits on a slow
  dependency.
  While it answers 503 (e.g. Milvus down) Kubernetes takes the pod out of service endpoints;
  the stage itself keeps waiting (backpressure), it does not exit.
* ``/metrics`` — the Prometheus exposition of :mod:`conveyor.streams.telemetry.metrics`.

Both answers carry a JSON body naming each check, e.g.
``{"ready": false, "checks": {"embed: group joined": true, "registry": false}}``.
Served by ``prometheus_client``'s threading WSGI server (wsgiref), on
``CONVEYOR_METRICS_ADDR`` (default 127.0.0.1; the container image uses 0.0.0.0) and
``CONVEYOR_METRICS_PORT`` (0: off).
"""
from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional
from wsgiref.simple_server import WSGIRequestHandler, make_server
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from prometheus_client import make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

if TYPE_CHECKING:
    from conveyor.streams.kafka.serde import AvroSerde

log = logging.getLogger(__name__)

CHECK_TTL = 3.0
"""Seconds between two runs of the readiness checks (Kubernetes probes every 10 s by default)."""
DEFAULT_LIVENESS_S = 300.0
"""Liveness bound of a loop without a longer one of its own: librdkafka's default
``max.poll.interval.ms`` (300,000 ms)."""


@dataclass
class Heartbeat:
    """The last time one loop made progress (monotonic seconds) and how stale it may get."""

    name: str
    bound: float
    last: float = field(default_factory=time.monotonic)

    def beat(self) -> None:
        """The loop made progress (a poll returned, a batch committed, a timer fired)."""
        self.last = time.monotonic()

    @property
    def age(self) -> float:
        """Seconds since the last beat."""
        return time.monotonic() - self.last


@dataclass
class _Check:
    fn: Callable[[], bool]
    result: bool = False
    ran: bool = False


class Health:
    """The liveness heartbeats and readiness checks of one process."""

    def __init__(self) -> None:
        self._beats: dict[str, Heartbeat] = {}
        self._checks: dict[str, _Check] = {}
        self._lock = threading.Lock()

    def heartbeat(self, name: str, bound: float = DEFAULT_LIVENESS_S) -> Heartbeat:
        """A new heartbeat called ``name`` that goes stale after ``bound`` seconds."""
        hb = Heartbeat(name, bound)
        with self._lock:
            self._beats[name] = hb
        return hb

    def check(self, name: str, fn: Callable[[], bool]) -> None:
        """Register a readiness check; ``fn`` returns True when ready (an exception counts as
        not ready)."""
        with self._lock:
            self._checks[name] = _Check(fn)

    def remove(self, prefix: str) -> None:
        """Forget the heartbeats and checks whose name starts with ``prefix`` (a stopped stage)."""
        with self._lock:
            for book in (self._beats, self._checks):
                for name in [n for n in book if n.startswith(prefix)]:
                    del book[name]

    def live(self) -> tuple[bool, dict[str, float]]:
        """``(alive, {heartbeat: seconds since its last beat})``; alive when none is stale."""
        with self._lock:
            beats = list(self._beats.values())
        ages = {hb.name: round(hb.age, 1) for hb in beats}
        return all(hb.age <= hb.bound for hb in beats), ages

    def run_checks(self) -> None:
        """Run every readiness check once (an exception counts as not ready)."""
        with self._lock:
            checks = list(self._checks.items())
        for name, c in checks:
            try:
                c.result = bool(c.fn())
            except Exception as exc:  # noqa: BLE001 - a failing check is "not ready"
                log.info("readiness check %s failed: %s", name, exc)
                c.result = False
            c.ran = True
        self._export(dict(checks))

    def _export(self, checks: dict[str, _Check]) -> None:
        """``conveyor_ready{processor}``: a stage's own checks (``"<stage>: ..."``) and the
        shared ones all pass."""
        from conveyor.streams.telemetry.metrics import READY

        shared = all(c.result for n, c in checks.items() if ": " not in n)
        stages = {n.split(": ", 1)[0] for n in checks if ": " in n}
        for stage in stages:
            own = all(c.result for n, c in checks.items() if n.startswith(f"{stage}: "))
            READY.labels(stage).set(1 if shared and own else 0)

    def start_checks(self, interval: float = CHECK_TTL) -> None:
        """Run the checks every ``interval`` seconds in a daemon thread."""
        def loop() -> None:
            while True:
                self.run_checks()
                time.sleep(interval)

        threading.Thread(target=loop, name="health-checks", daemon=True).start()

    def ready(self) -> tuple[bool, dict[str, bool]]:
        """``(ready, {check: passed})`` from the latest run: ready when there are checks, all
        have run and all passed."""
        with self._lock:
            checks = dict(self._checks)
        out = {name: c.result for name, c in checks.items()}
        return bool(checks) and all(c.ran and c.result for c in checks.values()), out

    def wsgi_app(self) -> WSGIApplication:
        """The WSGI application serving ``/healthz``, ``/readyz`` and ``/metrics``."""
        metrics: WSGIApplication = make_wsgi_app()  # typed as a bare Callable by prometheus_client

        def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
            path = environ.get("PATH_INFO", "")
            body: dict[str, object]
            if path in ("/healthz", "/livez"):
                ok, ages = self.live()
                body = {"live": ok, "heartbeats_age_s": ages}
            elif path == "/readyz":
                ok, checks = self.ready()
                body = {"ready": ok, "checks": checks}
            else:
                return metrics(environ, start_response)
            start_response("200 OK" if ok else "503 Service Unavailable", [("Content-Type", "application/json")])
            return [json.dumps(body).encode()]

        return app


HEALTH = Health()
"""The process's health registry (stages and the drift worker register here)."""


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Probes every few seconds: not logged."""


def register_connection_checks(health: Health, admin: Any, serde: AvroSerde) -> None:
    """Readiness checks every stage of a process shares: Kafka answers a metadata request
    (``admin.list_topics``, e.g. an ``AdminClient``) and the schema registry answers (each
    probe bounded by 3 s)."""
    health.check("kafka", lambda: bool(admin.list_topics(timeout=3).brokers))
    health.check("schema registry", lambda: serde.registry_answers(timeout=3))


def serve(port: int, addr: str = "127.0.0.1", health: Health = HEALTH) -> Optional[ThreadingWSGIServer]:
    """Serve ``/healthz``, ``/readyz`` and ``/metrics`` of ``health`` on ``addr:port`` in a
    daemon thread and start its readiness checks (port 0: don't serve). Returns the server
    (``shutdown()`` stops it), or ``None``.

    Raises:
        OSError: the port is taken.
    """
    if not port:
        return None
    server = make_server(addr, port, health.wsgi_app(), ThreadingWSGIServer, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="health-http", daemon=True).start()
    health.start_checks()
    log.info("health and metrics on http://%s:%d/{healthz,readyz,metrics}", addr, server.server_port)
    return server
