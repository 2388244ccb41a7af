
import dataclasses

import pytest

from conveyor.streams.config import env
from conveyor.streams.config.settings import Settings
from conveyor.streams.kafka.topics import catalogue, dlq_topics, role_of, topic


def test_defaults_point_at_the_local_stack(tmp_path):
    s = Settings.from_env({env.HOME: str(tmp_path)})
    assert s.bootstrap_servers == "127.0.0.1:19092"
    assert s.schema_registry_url == "http://127.0.0.1:18081/apis/ccompat/v7"
    assert s.milvus_uri == str(tmp_path / "milvus" / "conveyor.db")
    assert s.blob_dir == tmp_path / "blobs"
    assert s.namespace == "conveyor"


def test_secrets_are_hidden_but_reach_the_client_config():
    s = Settings.from_env({env.KAFKA_SASL_PASSWORD: "hunter2", env.KAFKA_SASL_USERNAME: "alice",
                           env.KAFKA_SECURITY_PROTOCOL: "SASL_PLAINTEXT", env.KAFKA_SASL_MECHANISM: "PLAIN",
                           env.MILVUS_TOKEN: "root:Milvus", env.SCHEMA_REGISTRY_USER: "u",
                           env.SCHEMA_REGISTRY_PASSWORD: "pw", "CONVEYOR_RDKAFKA_SOCKET_TIMEOUT_MS": "5000"})
    assert "hunter2" not in repr(s) and "root:Milvus" not in repr(s) and "pw" not in str(s)
    conf = s.kafka_config()
    assert conf["sasl.password"] == "hunter2" and conf["security.protocol"] == "SASL_PLAINTEXT"
    assert conf["socket.timeout.ms"] == "5000"
    assert s.registry_config()["basic.auth.user.info"] == "u:pw"
    assert s.milvus_token_value() == "root:Milvus"


def test_bad_numbers_are_reported_by_variable_name():
    with pytest.raises(ValueError, match=env.BATCH_SIZE):
        Settings.from_env({env.BATCH_SIZE: "lots"})


def test_settings_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        Settings().namespace = "x"


def test_namespace_prefixes_topics_groups_and_collection():
    s = Settings.from_env({env.NAMESPACE: "team-a"})
    names = [spec.name for spec in catalogue(s).values()]
    assert all(n.startswith("team-a.") for n in names)
    assert topic(s, "predictions") == "team-a.predictions"
    assert s.group_id("embed") == "team-a.embed"
    assert s.milvus_collection == "team_a_chunks"
    assert "team-a.dlq.extract" in dlq_topics(s)
    assert role_of(s, "team-a.embedded") == "embedded" and role_of(s, "other.embedded") is None


def test_every_avro_topic_has_its_schema_file():
    for spec in catalogue(Settings()).values():
        if spec.schema:
            assert spec.schema_path.is_file(), spec
