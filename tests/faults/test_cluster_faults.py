"""Cluster fault scenarios (issue 12): a three-node KRaft cluster (replication factor 3,
``min.insync.replicas`` 2, the transaction state and offsets topics included), every processor
running twice, a Milvus server — while a partition leader dies mid-transaction, the controller
dies, a broker stays down longer than ``transaction.timeout.ms``, or a broker is cut off the network.

Each ends with the ledger check of :func:`tests.faults.harness.problems`: every input exactly one
result or one dead letter, no duplicate, no loss, Milvus rows exactly as expected, lag 0; and the
recovery time. Sizes: ``CONVEYOR_FAULT_CLUSTER_TEXTS`` (default 1000, what CI runs) texts plus 8
documents over ``CONVEYOR_FAULT_CLUSTER_PRODUCE_SECONDS`` (default 45); ``make test-faults-full``
runs 10,000 texts over 300 s.
"""
from __future__ import annotations

import dataclasses
import os

import pytest

from tests.faults.cluster import Cluster, KillController, KillLeader, PartitionBroker, StopBroker
from tests.faults.harness import Outcome, Scenario, problems, record, run_scenario
from tests.faults.inputs import build_inputs

N_TEXTS = int(os.environ.get("CONVEYOR_FAULT_CLUSTER_TEXTS") or 1000)
PRODUCE_SECONDS = float(os.environ.get("CONVEYOR_FAULT_CLUSTER_PRODUCE_SECONDS") or 45)
INSTANCES = 2

pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.timeout(int(1500 + 2 * PRODUCE_SECONDS))]


@pytest.fixture(scope="module")
def cluster(fault_stack, tmp_path_factory):
    """The suite's three-node cluster, stopped (and any network partition healed) at teardown."""
    c = Cluster(fault_stack, tmp_path_factory.mktemp("fault-cluster"))
    try:
        c.start()
        yield c
    finally:
        c.close()


@pytest.fixture
def cluster_settings(fault_settings, cluster):
    """The scenario's settings pointed at the cluster: bootstrap list of the three nodes,
    topics with three replicas and ``min.insync.replicas`` 2."""
    return dataclasses.replace(fault_settings, bootstrap_servers=cluster.settings.bootstrap_servers,
                               kafka_brokers=3, replication_factor=3, min_insync_replicas=2)


def run(name, settings, tmp_path, fault, seed, checks=()) -> Outcome:
    """Run one cluster scenario (two instances of every processor), record its figures, and fail
    with every problem found."""
    inputs = build_inputs(settings, n_texts=N_TEXTS)
    outcome = run_scenario(Scenario(name, settings, inputs, fault, tmp_path / "logs", seed=seed,
                                    produce_seconds=PRODUCE_SECONDS, instances=INSTANCES,
                                    timeout=PRODUCE_SECONDS + 600, notes={"brokers": 3, "instances": INSTANCES}))
    issues = problems(outcome) + [p for check in checks for p in check(outcome)]
    record(outcome.figures, issues)
    assert not issues, "\n".join(issues) + "\n\nprocessor logs (tails):\n" + outcome.log_tails()
    return outcome


def _events(o: Outcome, action: str) -> list[dict]:
    return [e for e in o.fault_log.events if e.get("action") == action]


def test_partition_leader_killed_three_times(cluster_settings, cluster, tmp_path, fault_seed):
    """1. SIGKILL the leader of the busiest partitions three times while transactions are open."""
    def killed_three_times(o: Outcome) -> list[str]:
        kills = _events(o, "SIGKILL leader")
        ok = len(kills) == 3 and all(e["pid"] for e in kills) and len(_events(o, "node restarted")) == 3
        return [] if ok else [f"leader was not killed and restarted three times: {o.fault_log.events}"]

    fault = KillLeader(cluster, cluster_settings.namespace, first_after=0.2 * PRODUCE_SECONDS,
                       gap=0.15 * PRODUCE_SECONDS)
    run("leader", cluster_settings, tmp_path, fault, fault_seed, checks=[killed_three_times])


def test_active_controller_killed(cluster_settings, cluster, tmp_path, fault_seed):
    """2. SIGKILL the active controller (KRaft quorum leader); another node takes over."""
    def controller_moved(o: Outcome) -> list[str]:
        killed, elected = _events(o, "SIGKILL controller"), _events(o, "controller elected")
        if not killed or not killed[0]["pid"]:
            return [f"the controller was not killed: {o.fault_log.events}"]
        if not elected or elected[0]["node"] in (None, killed[0]["node"]):
            return [f"no other controller was elected while node {killed[0]['node']} was down: {o.fault_log.events}"]
        return []

    run("controller", cluster_settings, tmp_path, KillController(cluster, after=0.4 * PRODUCE_SECONDS),
        fault_seed, checks=[controller_moved])


def test_broker_down_longer_than_the_transaction_timeout(cluster_settings, cluster, tmp_path, fault_seed):
    """3. Stop a broker for longer than ``transaction.timeout.ms`` (60 s), then start it again."""
    def down_long_enough(o: Outcome) -> list[str]:
        back = _events(o, "node restarted")
        return [] if back and back[0]["down_s"] >= 60 else [f"the broker was not down 60 s: {o.fault_log.events}"]

    run("txn-timeout", cluster_settings, tmp_path, StopBroker(cluster, cluster_settings.namespace,
                                                             after=0.3 * PRODUCE_SECONDS),
        fault_seed, checks=[down_long_enough])


def test_broker_cut_off_the_network_for_30s(cluster_settings, cluster, tmp_path, fault_seed):
    """4. Cut the busiest leader off the network (iptables) for 30 s, then heal."""
    def partitioned(o: Outcome) -> list[str]:
        healed = _events(o, "healed")
        return [] if healed and healed[0]["partitioned_s"] >= 30 else [f"no 30 s partition: {o.fault_log.events}"]

    run("partition", cluster_settings, tmp_path, PartitionBroker(cluster, cluster_settings.namespace,
                                                                 after=0.3 * PRODUCE_SECONDS),
        fault_seed, checks=[partitioned])
