"""The local stack for real: broker and registry answer, big messages pass, ccompat works."""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import socket
import uuid

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from conveyor.streams.config import env
from conveyor.streams.config.settings import Settings
from conveyor.tools.stack import StackError, down, status, up

MIB = 1024 * 1024
external = pytest.mark.skipif(
    bool(os.environ.get(env.BOOTSTRAP_SERVERS)), reason="uses a stack named by the environment"
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _record(name: str, *fields: dict) -> Schema:
    doc = {"type": "record", "name": name, "namespace": "io.conveyor.test",
           "fields": [{"name": "doc_id", "type": "string"}, *fields]}
    return Schema(json.dumps(doc), "AVRO")


@external
def test_status_reports_both_up(stack_settings: Settings):
    state = status(stack_settings)
    assert state["kafka"]["up"] and state["registry"]["up"], state
    assert state["kafka"]["address"] == f"127.0.0.1:{stack_settings.kafka_port}"
    assert state["registry"]["url"].endswith("/apis/ccompat/v7")
    assert state["milvus"]["kind"] in ("lite", "server")


@external
def test_up_again_is_idempotent(stack_settings: Settings):
    before = status(stack_settings)
    again = up(stack_settings, log=lambda line: None)
    for part in ("kafka", "registry"):
        assert again[part]["up"] and not again[part]["started"], again
        assert again[part]["pid"] == before[part]["pid"]


def test_large_message_roundtrip(settings: Settings):
    topic = f"{settings.namespace}.big"
    admin = AdminClient(settings.kafka_config())
    admin.create_topics([NewTopic(topic, 1, 1, config={
        "max.message.bytes": str(settings.max_message_bytes)})])[topic].result(30)
    try:
        payload = os.urandom(5 * MIB + 123)
        producer = Producer({**settings.kafka_config(), "message.max.bytes": settings.max_message_bytes})
        producer.produce(topic, key=b"k", value=payload)
        assert producer.flush(30) == 0
        consumer = Consumer({
            **settings.kafka_config(), "group.id": settings.group_id("bigtest"),
            "fetch.max.bytes": settings.max_message_bytes + MIB,
            "max.partition.fetch.bytes": settings.max_message_bytes + MIB,
            "receive.message.max.bytes": 2 * settings.max_message_bytes + MIB,
        })
        consumer.assign([TopicPartition(topic, 0, 0)])
        try:
            msg = None
            for _ in range(30):
                msg = consumer.poll(1.0)
                if msg is not None:
                    break
            assert msg is not None and msg.error() is None, msg and msg.error()
            assert msg.value() == payload
        finally:
            consumer.close()
    finally:
        admin.delete_topics([topic])[topic].result(30)


def test_registry_register_and_fetch_by_id(settings: Settings):
    client = SchemaRegistryClient(settings.registry_config())
    subject = f"{settings.namespace}.doc-value"
    schema = _record("Doc", {"name": "body", "type": "string"})
    try:
        schema_id = client.register_schema(subject, schema)
        assert isinstance(schema_id, int) and schema_id > 0
        assert client.register_schema(subject, schema) == schema_id
        fresh = SchemaRegistryClient(settings.registry_config())  # no cache
        fetched = fresh.get_schema(schema_id)
        assert json.loads(fetched.schema_str) == json.loads(schema.schema_str)
        latest = fresh.get_latest_version(subject)
        assert latest.schema_id == schema_id and latest.version == 1
    finally:
        client.delete_subject(subject, permanent=False)


def test_avro_serde_roundtrip_through_ccompat(settings: Settings):
    from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    client = SchemaRegistryClient(settings.registry_config())
    topic = f"{settings.namespace}.serde"
    schema = _record("Serde", {"name": "size", "type": "long"})
    ctx = SerializationContext(topic, MessageField.VALUE)
    try:
        data = AvroSerializer(client, schema.schema_str)({"doc_id": "d1", "size": 7}, ctx)
        assert data[0] == 0  # Confluent wire format: magic byte, 4-byte schema id, Avro body
        schema_id = int.from_bytes(data[1:5], "big")
        assert client.get_latest_version(f"{topic}-value").schema_id == schema_id
        fresh = SchemaRegistryClient(settings.registry_config())
        assert AvroDeserializer(fresh)(data, ctx) == {"doc_id": "d1", "size": 7}
    finally:
        client.delete_subject(f"{topic}-value", permanent=False)


def test_registry_backward_compatibility(settings: Settings):
    client = SchemaRegistryClient(settings.registry_config())
    subject = f"{settings.namespace}.evolve-value"
    try:
        client.register_schema(subject, _record("Evolve"))
        client.set_compatibility(subject, "BACKWARD")
        assert client.get_compatibility(subject) == "BACKWARD"
        assert client.get_compatibility(subject) == "BACKWARD"
        optional = _record("Evolve", {"name": "lang", "type": ["null", "string"], "default": None})
        required = _record("Evolve", {"name": "size", "type": "long"})
        assert client.test_compatibility(subject, optional) is True
        assert client.test_compatibility(subject, required) is False
        v2 = client.register_schema(subject, optional)
        assert client.get_latest_version(subject).schema_id == v2
        with pytest.raises(SchemaRegistryError) as err:
            client.register_schema(subject, required)
        assert err.value.http_status_code == 409
        assert client.get_latest_version(subject).version == 2
    finally:
        client.delete_subject(subject, permanent=False)


def test_down_on_nothing_started_touches_nothing(tmp_path):
    home = tmp_path / "home"
    lonely = Settings(home=home, kafka_port=_free_port(), controller_port=_free_port(),
                      registry_port=_free_port())
    assert down(lonely, log=lambda line: None) == {
        part: {"stopped": False, "pid": None, "forced": False} for part in ("registry", "kafka")}
    # a pid file naming a process up() did not start (this test runner) is ignored and removed
    (home / "run").mkdir(parents=True)
    (home / "run" / "kafka.pid").write_text(f"{os.getpid()}\n")
    assert down(lonely, log=lambda line: None)["kafka"]["stopped"] is False
    assert not (home / "run" / "kafka.pid").exists()
    state = status(lonely)
    assert not state["kafka"]["up"] and state["kafka"]["pid"] is None
    assert not state["registry"]["up"] and state["registry"]["pid"] is None
    with pytest.raises(ValueError):
        down(lonely, parts=["zookeeper"])


def test_stack_error_is_an_exception_with_a_message():
    assert issubclass(StackError, Exception)
    assert "x" in str(StackError("x"))


def test_missing_tools_give_clear_errors(monkeypatch):
    from conveyor.tools.stack import _common

    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setattr(_common.shutil, "which", lambda name: None)
    monkeypatch.setattr(_common.glob, "glob", lambda pattern: [])
    with pytest.raises(StackError, match=r"Java 17\+ not found on PATH: install a JDK"):
        _common.check_java(17)
    with pytest.raises(StackError, match=r"Maven \(mvn\) not found"):
        _common.check_mvn()


def test_too_old_java_names_what_was_found():
    with pytest.raises(StackError, match=r"needs Java 999\+, found only .*\(Java \d+\)"):
        from conveyor.tools.stack._common import check_java
        check_java(999, "a future registry")


@pytest.mark.slow
@external
def test_schema_ids_survive_registry_restart(tmp_path):
    """A private registry (own home and ports) keeps its ids across down/up (H2 file storage)."""
    private = dataclasses.replace(
        Settings.from_env({env.HOME: str(tmp_path / "home")}),
        kafka_port=_free_port(), controller_port=_free_port(), registry_port=_free_port(),
    )
    private = dataclasses.replace(
        private,
        bootstrap_servers=f"127.0.0.1:{private.kafka_port}",
        schema_registry_url=f"http://127.0.0.1:{private.registry_port}/apis/ccompat/v7",
    )
    try:
        up(private, log=lambda line: None)
        subject = f"persist-{uuid.uuid4().hex[:8]}-value"
        schema = _record("Persist", {"name": "n", "type": "int"})
        schema_id = SchemaRegistryClient(private.registry_config()).register_schema(subject, schema)
        assert down(private, parts=["registry"], log=lambda line: None)["registry"]["stopped"]
        assert not status(private)["registry"]["up"]
        again = up(private, log=lambda line: None)
        assert again["registry"]["started"] and not again["kafka"]["started"]
        fetched = SchemaRegistryClient(private.registry_config()).get_schema(schema_id)
        assert json.loads(fetched.schema_str) == json.loads(schema.schema_str)
    finally:
        down(private, log=lambda line: None)
        shutil.rmtree(tmp_path / "home", ignore_errors=True)  # ~400 MB of jars and data
