"""A three-node Kafka cluster of the fault suite's own, and the faults that only a cluster has.

:class:`Cluster` starts three combined broker+controller KRaft nodes through
``conveyor.tools.stack.up`` (``--brokers 3``: replication factor 3, ``min.insync.replicas`` 2 for
every topic, the transaction state and offsets topics included) from its own home and free ports,
sharing the main stack's jars and schema registry. Each node is started inside its own cgroup
(cgroup v2, mounted under the cluster's home), so that :meth:`Cluster.partition` can cut one node
off the network with ``iptables``: everything the node's process sends is dropped (OUTPUT,
``-m cgroup --path``) and nothing reaches its ports (INPUT, ``--dport``) — on this machine only,
loopback included; :meth:`Cluster.heal` deletes exactly those rules.

Injectors (``fault(ctx, log)``, as in :mod:`tests.faults.faults`):

* :class:`KillLeader` — SIGKILL the node leading most partitions of the namespace's pipeline
  topics (inputs, intermediate topics and results: where transactions are open at any moment),
  restart it after ``down_for`` seconds; ``times`` times.
* :class:`KillController` — SIGKILL the active controller (the KRaft quorum leader), restart it.
* :class:`StopBroker` — stop a node (SIGTERM) for longer than the producers'
  ``transaction.timeout.ms``, start it again.
* :class:`PartitionBroker` — cut the busiest leader off the network for ``seconds``, then heal.
"""
from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from conveyor.streams.config.settings import NODE_PORT_STEP, Settings, local_bootstrap
from conveyor.streams.kafka.delivery import TRANSACTION_TIMEOUT_MS
from conveyor.tools.stack import down, up, with_brokers
from conveyor.tools.stack._cluster import active_controller, partition_leaders
from conveyor.tools.stack._common import live_pid, port_open
from conveyor.tools.stack._kafka import nodes
from tests.faults.faults import FaultContext, FaultLog
from tests.ports import server_port

PIPELINE_ROLES = ("texts", "documents", "extracted", "embedded", "predictions")
"""Topic roles whose partition leaders count as 'busiest': every input passes through them."""


def _free_base() -> int:
    """A client port ``p`` with ``p``, ``p + 1`` and both of them ``+10``, ``+20`` free (node ports)."""
    for _ in range(200):
        base = server_port()
        ports = [base + d + NODE_PORT_STEP * i for i in range(3) for d in (0, 1)]
        if all(not port_open(p) for p in ports):
            return base
    raise RuntimeError("no free block of Kafka node ports")


class Cluster:
    """Three KRaft nodes on loopback of the fault suite's own (see the module docstring).

    Args:
        shared: the main stack's settings (its ``home`` has the Kafka jars; its registry is used).
        home: a fresh directory for the nodes' configs, data, logs and cgroups.

    Raises:
        RuntimeError: cgroup v2 cannot be mounted or iptables is missing (the partition fault needs both).
    """

    def __init__(self, shared: Settings, home: Path):
        base = _free_base()
        self.settings = with_brokers(dataclasses.replace(
            shared, home=home, kafka_port=base, controller_port=base + 1,
            bootstrap_servers=local_bootstrap(base, 1)), 3)
        libs = shared.home / "kafka" / "libs"
        if libs.is_dir() and not (home / "kafka" / "libs").exists():
            (home / "kafka").mkdir(parents=True, exist_ok=True)
            (home / "kafka" / "libs").symlink_to(libs, target_is_directory=True)
        if not shutil.which("iptables"):
            raise RuntimeError("iptables is not installed (Debian package iptables): the partition fault needs it")
        self.cgroup_root = home / "cgroup2"
        self.cgroup_root.mkdir(parents=True, exist_ok=True)
        if not os.path.ismount(self.cgroup_root):
            out = subprocess.run(["mount", "-t", "cgroup2", "none", str(self.cgroup_root)], capture_output=True, text=True)
            if out.returncode != 0:
                raise RuntimeError(f"cannot mount cgroup v2 at {self.cgroup_root}: {out.stderr.strip()}")
        self.tag = f"conveyor-{base}"
        self._rules: list[list[str]] = []

    def cgroup(self, node_id: int) -> str:
        """The node's cgroup path, as ``iptables -m cgroup --path`` takes it."""
        return f"/{self.tag}/node-{node_id}"

    def _wrap(self, name: str, argv: list[str]) -> list[str]:
        if name == "registry":
            return argv
        node_id = int(name.rsplit("-", 1)[1])
        group = self.cgroup_root / self.cgroup(node_id).lstrip("/")
        group.mkdir(parents=True, exist_ok=True)
        # the shell moves itself into the node's cgroup, then becomes the JVM (same pid)
        return ["sh", "-c", 'echo $$ > "$0" && exec "$@"', str(group / "cgroup.procs"), *argv]

    def start(self) -> dict:
        """Start every node that does not answer (idempotent); return ``up``'s status.

        Raises:
            conveyor.tools.stack.StackError: a node did not come up.
        """
        return up(self.settings, log=lambda _line: None, wrap=self._wrap, timeout=240)

    def pid(self, node_id: int) -> Optional[int]:
        """The live pid of node ``node_id``, or None."""
        return live_pid(nodes(self.settings)[node_id - 1].layout())

    def kill(self, node_id: int) -> Optional[int]:
        """SIGKILL node ``node_id``; return the pid killed (None: it was not running)."""
        pid = self.pid(node_id)
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 30
            while self.pid(node_id) == pid and time.monotonic() < deadline:
                time.sleep(0.1)
        return pid

    def stop_node(self, node_id: int) -> dict:
        """Stop node ``node_id`` (SIGTERM: controlled shutdown, SIGKILL after 60 s)."""
        return down(self.settings, parts=[f"kafka-{node_id}"], log=lambda _line: None, timeout=60)[f"kafka-{node_id}"]

    def busiest_leader(self, namespace: str) -> int:
        """The node leading most partitions of ``namespace``'s pipeline topics (lowest id on a tie)."""
        topics = partition_leaders(self.settings)
        counts = {n.node_id: 0 for n in nodes(self.settings)}
        for role in PIPELINE_ROLES:
            for p in topics.get(f"{namespace}.{role}", {}).values():
                if p["leader"] in counts:
                    counts[p["leader"]] += 1
        return max(sorted(counts), key=lambda n: counts[n])

    def controller(self) -> Optional[int]:
        """The active controller's node id (KRaft quorum leader)."""
        return active_controller(self.settings)

    def partition(self, node_id: int) -> None:
        """Cut node ``node_id`` off: drop what its process sends and what comes to its ports."""
        node = nodes(self.settings)[node_id - 1]
        rules = [["OUTPUT", "-m", "cgroup", "--path", self.cgroup(node_id), "-j", "DROP"],
                 ["INPUT", "-p", "tcp", "-m", "multiport", "--dports", f"{node.port},{node.controller_port}",
                  "-j", "DROP"]]
        for rule in rules:
            subprocess.run(["iptables", "-I", *rule], check=True, capture_output=True, text=True)
            self._rules.append(rule)

    def heal(self) -> None:
        """Delete the rules :meth:`partition` added."""
        while self._rules:
            rule = self._rules.pop()
            subprocess.run(["iptables", "-D", *rule], capture_output=True, text=True)

    def wait_in_sync(self, namespace: str, timeout: float = 180.0) -> float:
        """Wait until every partition of ``namespace``'s topics has all 3 replicas in sync; return seconds."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            try:
                topics = partition_leaders(self.settings)
            except Exception:  # noqa: BLE001 - a node may still be electing
                time.sleep(1)
                continue
            mine = [p for name, t in topics.items() if name.startswith(namespace + ".") for p in t.values()]
            if mine and all(len(p["isr"]) == 3 and p["leader"] >= 0 for p in mine):
                return round(time.monotonic() - t0, 1)
            time.sleep(1)
        return round(time.monotonic() - t0, 1)

    def close(self) -> None:
        """Heal any partition, stop the nodes and remove the cgroups."""
        self.heal()
        down(self.settings, parts=["kafka"], log=lambda _line: None)
        for node in nodes(self.settings):
            group = self.cgroup_root / self.cgroup(node.node_id).lstrip("/")
            if group.exists():
                group.rmdir()
        top = self.cgroup_root / self.tag
        if top.exists():
            top.rmdir()
        subprocess.run(["umount", str(self.cgroup_root)], capture_output=True)


def _down_and_back(ctx: FaultContext, log: FaultLog, cluster: Cluster, node_id: int, take_down, seconds: float,
                   then=None) -> None:
    """Take node ``node_id`` down (``take_down() -> event dict``), keep it down ``seconds`` from then
    (``then() -> event dict`` is logged at the end of that time), start it again — also when
    something failed on the way."""
    t = time.monotonic()
    log.started = log.started or t
    try:
        log.event(ctx, **take_down())
        time.sleep(max(0.0, seconds - (time.monotonic() - t)))
        if then is not None:
            log.event(ctx, **then())
    finally:
        started = cluster.start()
        node = next(n for n in started["nodes"] if n["node_id"] == node_id)
        log.event(ctx, action="node restarted", node=node_id, new_pid=node["pid"], startup_s=node["startup_s"],
                  down_s=round(time.monotonic() - t, 1))
        log.ended = time.monotonic()


@dataclass
class KillLeader:
    """SIGKILL the busiest leader ``times`` times, the first ``first_after`` seconds into the run,
    each restarted after ``down_for`` seconds, ``gap`` seconds between the restarts and the next kill."""

    cluster: Cluster
    namespace: str
    times: int = 3
    first_after: float = 15.0
    down_for: float = 5.0
    gap: float = 15.0

    def __call__(self, ctx: FaultContext, log: FaultLog) -> None:
        if not ctx.wait_until(self.first_after):
            return
        for i in range(self.times):
            node_id = self.cluster.busiest_leader(self.namespace)
            _down_and_back(ctx, log, self.cluster, node_id, lambda: {
                "action": "SIGKILL leader", "node": node_id, "pid": self.cluster.kill(node_id)}, self.down_for)  # noqa: B023 - called now
            if i + 1 < self.times and ctx.stop.wait(self.gap):
                return


@dataclass
class KillController:
    """SIGKILL the active controller ``after`` seconds into the run; restart it after ``down_for`` s."""

    cluster: Cluster
    after: float = 20.0
    down_for: float = 5.0

    def __call__(self, ctx: FaultContext, log: FaultLog) -> None:
        if not ctx.wait_until(self.after):
            return
        node_id = self.cluster.controller()
        if node_id is None:
            raise RuntimeError("no active controller found in the nodes' quorum state")
        _down_and_back(ctx, log, self.cluster, node_id,
                       lambda: {"action": "SIGKILL controller", "node": node_id, "pid": self.cluster.kill(node_id)},
                       self.down_for, then=lambda: {"action": "controller elected", "node": self.cluster.controller()})


@dataclass
class StopBroker:
    """Stop the busiest leader (SIGTERM) ``after`` seconds into the run for ``down_for`` seconds —
    longer than the producers' ``transaction.timeout.ms`` — then start it again."""

    cluster: Cluster
    namespace: str
    after: float = 20.0
    down_for: float = TRANSACTION_TIMEOUT_MS / 1000 + 10

    def __call__(self, ctx: FaultContext, log: FaultLog) -> None:
        if not ctx.wait_until(self.after):
            return
        node_id = self.cluster.busiest_leader(self.namespace)
        _down_and_back(ctx, log, self.cluster, node_id, lambda: {
            "action": "broker stopped", "node": node_id, **self.cluster.stop_node(node_id)}, self.down_for)


@dataclass
class PartitionBroker:
    """Cut the busiest leader off the network ``after`` seconds into the run for ``seconds``, then heal."""

    cluster: Cluster
    namespace: str
    after: float = 20.0
    seconds: float = 30.0

    def __call__(self, ctx: FaultContext, log: FaultLog) -> None:
        if not ctx.wait_until(self.after):
            return
        node_id = self.cluster.busiest_leader(self.namespace)
        log.started = t = time.monotonic()
        try:
            self.cluster.partition(node_id)
            log.event(ctx, action="partitioned", node=node_id, pid=self.cluster.pid(node_id))
            time.sleep(self.seconds)  # not interrupted by ctx.stop: the partition is the test
        finally:
            self.cluster.heal()
            log.ended = time.monotonic()
            log.event(ctx, action="healed", node=node_id, partitioned_s=round(log.ended - t, 1),
                      in_sync_after_s=self.cluster.wait_in_sync(self.namespace, timeout=120))
