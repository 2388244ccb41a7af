"""The three-node local cluster's configuration: node ports and directories, the KRaft quorum,
replication factor 3 and min.insync.replicas 2 for every topic, and the client settings that go with it."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from conveyor.streams.config.settings import Settings
from conveyor.tools.stack import recorded_brokers, with_brokers
from conveyor.tools.stack._cluster import active_controller
from conveyor.tools.stack._kafka import nodes


def _props(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))


def test_three_nodes_form_one_quorum_with_three_replicas_of_everything(tmp_path: Path):
    settings = with_brokers(Settings(home=tmp_path, kafka_port=30092, controller_port=30093,
                                     bootstrap_servers="127.0.0.1:30092"), 3)
    assert settings.bootstrap_servers == "127.0.0.1:30092,127.0.0.1:30102,127.0.0.1:30112"
    assert (settings.replication_factor, settings.min_insync_replicas) == (3, 2)
    second = nodes(settings)[1]
    assert (second.name, second.port, second.controller_port) == ("kafka-2", 30102, 30103)
    assert second.directory == tmp_path / "kafka" / "node-2"
    props = _props(second.write_config().read_text())
    assert props["node.id"] == "2" and props["process.roles"] == "broker,controller"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:30093,2@127.0.0.1:30103,3@127.0.0.1:30113"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:30102,CONTROLLER://127.0.0.1:30103"
    for key in ("default.replication.factor", "offsets.topic.replication.factor",
                "transaction.state.log.replication.factor"):
        assert props[key] == "3", key
    assert props["min.insync.replicas"] == props["transaction.state.log.min.isr"] == "2"
    assert props["log.dirs"] == str(tmp_path / "kafka" / "node-2" / "data")


def test_one_node_keeps_the_classic_layout_and_one_replica(tmp_path: Path):
    settings = Settings(home=tmp_path)
    [node] = nodes(settings)
    assert (node.name, node.directory, node.port) == ("kafka", tmp_path / "kafka", settings.kafka_port)
    props = _props(node.write_config().read_text())
    assert props["controller.quorum.voters"] == f"1@127.0.0.1:{settings.controller_port}"
    assert props["transaction.state.log.replication.factor"] == props["min.insync.replicas"] == "1"


def test_client_settings_follow_the_node_count():
    three = Settings.from_env({"CONVEYOR_KAFKA_BROKERS": "3", "CONVEYOR_KAFKA_PORT": "30092"})
    assert three.bootstrap_servers == "127.0.0.1:30092,127.0.0.1:30102,127.0.0.1:30112"
    assert (three.kafka_brokers, three.replication_factor, three.min_insync_replicas) == (3, 3, 2)
    remote = Settings.from_env({"CONVEYOR_BOOTSTRAP_SERVERS": "kafka:9092", "CONVEYOR_REPLICATION_FACTOR": "3"})
    assert (remote.bootstrap_servers, remote.replication_factor, remote.min_insync_replicas) == ("kafka:9092", 3, 2)
    assert with_brokers(remote, 3).bootstrap_servers == "kafka:9092"  # another cluster is not rewritten
    with pytest.raises(ValueError, match="CONVEYOR_KAFKA_BROKERS must be 1 or 3"):
        Settings.from_env({"CONVEYOR_KAFKA_BROKERS": "2"})


def test_the_active_controller_is_the_newest_quorum_leader_on_disk(tmp_path: Path):
    settings = with_brokers(Settings(home=tmp_path), 3)
    assert active_controller(settings) is None and recorded_brokers(settings) is None
    for node, (leader, epoch) in zip(nodes(settings), ((1, 4), (3, 6), (3, 6))):
        state = node.directory / "data" / "__cluster_metadata-0" / "quorum-state"
        state.parent.mkdir(parents=True)
        state.write_text(json.dumps({"leaderId": leader, "leaderEpoch": epoch}))
    assert active_controller(settings) == 3
