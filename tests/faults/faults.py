"""Fault injectors. Each runs in its own thread beside the pipeline and logs what it did.

An injector is a callable ``fault(ctx, log)``: :class:`FaultContext` gives it the supervisor,
the run's start time, a seeded RNG and a stop event (set when the run ends early); it fills a
:class:`FaultLog` (first/last fault time, events). Every injector leaves the infrastructure
running when it returns, also when it fails or is stopped early (``finally``).

* :class:`KillProcessors` — SIGKILL a random live processor child N times at random gaps; the
  :class:`conveyor.streams.runtime.supervisor.Supervisor` restarts it (backoff 1 s doubling to 30 s).
* :class:`RestartBroker` — stop and start a Kafka broker through ``conveyor.tools.stack`` (same port,
  same data dir), see :class:`Broker`.
* :class:`MilvusOutage` — stop the Milvus server, keep it down ``down_for`` seconds, start it.
* :func:`no_fault` — nothing (inputs alone are the fault, e.g. hostile payloads).
"""
from __future__ import annotations

import os
import random
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Optional

from conveyor.streams.runtime.supervisor import Supervisor
from tests.integration.helpers import Broker

__all__ = ["Broker", "FaultContext", "FaultLog", "KillProcessors", "MilvusOutage", "RestartBroker", "no_fault",
           "run_fault"]


@dataclass
class FaultContext:
    """What an injector may use: the supervisor, the run's start (monotonic s), an RNG, a stop event."""

    supervisor: Supervisor
    t0: float
    rng: random.Random
    stop: threading.Event

    def wait_until(self, offset: float) -> bool:
        """Sleep until ``t0 + offset``; False when the run was stopped meanwhile."""
        return not self.stop.wait(max(0.0, self.t0 + offset - time.monotonic()))


@dataclass
class FaultLog:
    """``started``/``ended``: monotonic times of the first fault and of the end of the last one
    (the infrastructure is back); ``events``: one dict per action, with ``t`` seconds after t0."""

    started: Optional[float] = None
    ended: Optional[float] = None
    events: list[dict[str, Any]] = field(default_factory=list)
    error: Optional[BaseException] = None
    done: threading.Event = field(default_factory=threading.Event)

    def event(self, ctx: FaultContext, **what: Any) -> None:
        self.events.append({"t": round(time.monotonic() - ctx.t0, 1), **what})


def run_fault(fault, ctx: FaultContext, log: FaultLog) -> None:
    """Thread target: run ``fault``, store its exception in ``log.error``, set ``log.done``."""
    try:
        fault(ctx, log)
    except BaseException as exc:  # noqa: BLE001 - reported by the harness
        log.error = exc
    finally:
        if log.started is None:
            log.started = log.ended = time.monotonic()
        log.done.set()


def no_fault(ctx: FaultContext, log: FaultLog) -> None:
    """No infrastructure fault."""
    log.started = log.ended = ctx.t0


@dataclass
class KillProcessors:
    """SIGKILL a randomly chosen live processor child ``kills`` times, the first after
    ``first_after`` seconds, then every ``gap`` (uniform random, seconds)."""

    kills: int = 12
    first_after: float = 15.0
    gap: tuple[float, float] = (3.0, 9.0)

    def __call__(self, ctx: FaultContext, log: FaultLog) -> None:
        if not ctx.wait_until(self.first_after):
            return
        done = 0
        while done < self.kills and not ctx.stop.is_set():
            alive = [c for c in ctx.supervisor.children if c.proc is not None and c.proc.poll() is None]
            if not alive:  # every child is waiting for its restart backoff
                ctx.stop.wait(0.5)
                continue
            child = ctx.rng.choice(alive)
            pid = child.proc.pid
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                continue
            now = time.monotonic()
            log.started = log.started or now
            log.ended = now
            done += 1
            log.event(ctx, action="SIGKILL", group="-".join(child.group), pid=pid,
                      uptime_s=round(now - child.started_at, 1))
            ctx.stop.wait(ctx.rng.uniform(*self.gap))


@dataclass
class RestartBroker:
    """Restart ``broker`` once, ``after`` seconds into the run."""

    broker: Broker
    after: float
    down_for: float = 0.0

    def __call__(self, ctx: FaultContext, log: FaultLog) -> None:
        if not ctx.wait_until(self.after):
            return
        log.started = time.monotonic()
        try:
            log.event(ctx, action="broker restart", **self.broker.restart(self.down_for))
        finally:
            log.ended = time.monotonic()


@dataclass
class MilvusOutage:
    """Stop the Milvus server ``after`` seconds into the run, keep it down ``down_for`` seconds,
    start it again (same port and data). ``server`` has ``stop()`` and ``start() -> seconds``."""

    server: Any
    after: float
    down_for: float = 30.0

    def __call__(self, ctx: FaultContext, log: FaultLog) -> None:
        if not ctx.wait_until(self.after):
            return
        log.started = time.monotonic()
        try:
            self.server.stop()
            log.event(ctx, action="milvus stopped")
            time.sleep(self.down_for)  # not interrupted by ctx.stop: the outage is the test
        finally:
            startup = self.server.start()
            log.ended = time.monotonic()
            log.event(ctx, action="milvus started", startup_s=round(startup, 1),
                      down_s=round(log.ended - log.started, 1))
