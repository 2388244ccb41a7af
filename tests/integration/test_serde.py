"""Avro serde through the real registry: wire format, schema evolution, bad bytes."""
from __future__ import annotations

import json
import struct

import pytest
from confluent_kafka.schema_registry import Schema
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from conveyor.schemas import schema_text
from conveyor.streams.kafka.io import text_record
from conveyor.streams.kafka.serde import AvroSerde, DecodeError, EncodeError
from conveyor.streams.kafka.topics import topic


def test_round_trip_in_confluent_wire_format(settings):
    serde = AvroSerde(settings)
    name = topic(settings, "texts")
    rec = text_record("where is my card?", source="unit")
    data = serde.encode(name, rec)
    assert data[0] == 0  # magic byte
    schema_id = struct.unpack(">I", data[1:5])[0]
    registered = serde.client.get_schema(schema_id)
    assert json.loads(registered.schema_str)["name"] == "Text"
    assert serde.decode(name, data) == rec


def test_record_written_with_older_schema_stays_readable_after_optional_field_added(settings):
    serde = AvroSerde(settings)
    name = topic(settings, "texts")
    subject = f"{name}-value"
    v1 = schema_text("text.avsc")
    old = AvroSerializer(serde.client, v1)(text_record("old record"), SerializationContext(name, MessageField.VALUE))
    serde.set_compatibility(name, "BACKWARD")
    v2 = json.loads(v1)
    v2["fields"].append({"name": "language", "type": ["null", "string"], "default": None})
    v2_str = json.dumps(v2)
    assert serde.client.test_compatibility(subject, Schema(v2_str, "AVRO"))
    serde.client.register_schema(subject, Schema(v2_str, "AVRO"))
    # A consumer on the new schema reads the old record; the new field takes its default.
    reader = AvroDeserializer(serde.client, v2_str)
    value = reader(old, SerializationContext(name, MessageField.VALUE))
    assert value["text"] == "old record" and value["language"] is None
    # A required field without a default would break old records: BACKWARD rejects it.
    v3 = json.loads(v1)
    v3["fields"].append({"name": "tenant", "type": "string"})
    assert not serde.client.test_compatibility(subject, Schema(json.dumps(v3), "AVRO"))


def test_bad_values_raise_clear_errors(settings):
    serde = AvroSerde(settings)
    name = topic(settings, "texts")
    with pytest.raises(DecodeError, match="not Confluent-framed"):
        serde.decode(name, b"\x7bnot avro")
    with pytest.raises(DecodeError):
        serde.decode(name, b"\x00\x7f\xff\xff\xf0garbage")  # unknown schema id
    with pytest.raises(DecodeError, match="empty"):
        serde.decode(name, b"")
    with pytest.raises(EncodeError):
        serde.encode(name, {"doc_id": "x"})  # missing required fields
