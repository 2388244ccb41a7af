"""Decoding hostile values without a registry: framing, schema mismatch, corrupt bodies, fuzz.

The writer schemas are the real ``schemas/*.avsc`` files, parsed with
:meth:`WriterSchema.from_str` as the serde parses what the registry returns; values
are framed by hand (magic byte, schema id, fastavro body), exactly the Confluent wire
format. The registry path (unknown ids, the real registry) is tested in
``tests/integration/test_serde_hostile.py``.
"""
from __future__ import annotations

import dataclasses
import io
import json
import random
import socket

import fastavro
import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError
from fastavro.utils import generate_one
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conveyor.schemas import schema_json, schema_text
from conveyor.streams.config.settings import Settings
from conveyor.streams.kafka.io import text_record
from conveyor.streams.kafka.serde import (
    AvroSerde,
    DecodeError,
    RegistryUnavailableError,
    SchemaMismatchError,
    WriterSchema,
    decode_framed,
    record_full_name,
    registry_unavailable,
)
from tests.hostile import framed, mutated, not_avro

FILES = {"texts": "text.avsc", "documents": "document.avsc", "extracted": "extracted.avsc",
         "embedded": "embedded.avsc", "predictions": "prediction.avsc"}
IDS = {role: 100 + i for i, role in enumerate(FILES)}
RAW = {role: schema_json(name) for role, name in FILES.items()}
WRITERS = {role: WriterSchema.from_str(IDS[role], schema_text(name)) for role, name in FILES.items()}
EXPECTED = {role: record_full_name(RAW[role]) for role in FILES}
FUZZ = settings(max_examples=400, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _encode(role: str, record: dict) -> bytes:
    """``record`` in the wire format, written with the real ``.avsc`` (logical types included)."""
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(RAW[role]), record)
    return framed(IDS[role], out.getvalue())


def _samples() -> dict[str, bytes]:
    """One valid value per topic: a real text record and fastavro-generated records (seeded)."""
    state = random.getstate()
    random.seed(20240301)
    try:
        values = {role: _encode(role, generate_one(fastavro.parse_schema(RAW[role]))) for role in FILES}
    finally:
        random.setstate(state)
    values["texts"] = _encode("texts", text_record("my card was declined twice", doc_id="txt-1"))
    return values


SAMPLES = _samples()


def _decode(role: str, data: bytes) -> dict:
    return decode_framed(f"unit.{role}", data, WRITERS[role], EXPECTED[role])


def _decodes_or_refuses(role: str, data: bytes) -> None:
    """The only outcomes allowed: a record, or a permanent DecodeError saying which topic."""
    try:
        assert isinstance(_decode(role, data), dict)
    except DecodeError as exc:
        assert exc.permanent and f"unit.{role}" in str(exc)


# ------------------------------------------------------------------ one case each

def test_a_valid_value_round_trips_with_timestamps_as_epoch_ms():
    record = text_record("where is my refund", doc_id="txt-2")
    assert _decode("texts", _encode("texts", record)) == record
    assert isinstance(_decode("texts", _encode("texts", record))["event_time"], int)


def test_random_bytes_are_not_confluent_framed():
    with pytest.raises(DecodeError, match=r"unit.texts is not Confluent-framed Avro \(magic byte \d+, 64 bytes"):
        _decode("texts", not_avro(64, seed=1))


@pytest.mark.parametrize("value", [None, b""])
def test_null_and_empty_values_are_refused(value):
    with pytest.raises(DecodeError, match="empty value on unit.texts"):
        _decode("texts", value)


def test_a_frame_without_body_is_truncated():
    with pytest.raises(DecodeError, match=r"schema id 100 \(io.conveyor.Text\).*truncated"):
        _decode("texts", framed(IDS["texts"], b""))


def test_a_cut_off_body_is_truncated():
    with pytest.raises(DecodeError, match="truncated"):
        _decode("texts", SAMPLES["texts"][:-3])


def test_bytes_after_the_record_are_refused():
    with pytest.raises(DecodeError, match="2 bytes left over after its io.conveyor.Text record"):
        _decode("texts", SAMPLES["texts"] + b"\x00\x00")


def test_a_record_of_another_topics_schema_is_a_mismatch():
    text_value = SAMPLES["texts"]
    with pytest.raises(SchemaMismatchError) as caught:
        decode_framed("unit.documents", text_value, WRITERS["texts"], EXPECTED["documents"])
    message = str(caught.value)
    assert "unit.documents" in message and "schema id 100" in message
    assert "io.conveyor.Text" in message and "io.conveyor.Document" in message
    assert caught.value.permanent and isinstance(caught.value, DecodeError)


def test_an_evolved_schema_with_the_same_name_still_decodes():
    v2 = dict(RAW["texts"], fields=RAW["texts"]["fields"] + [
        {"name": "language", "type": ["null", "string"], "default": None}])
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(v2), {**text_record("hola", doc_id="t"), "language": "es"})
    writer = WriterSchema.from_str(7, json.dumps(v2))
    assert decode_framed("unit.texts", framed(7, out.getvalue()), writer, EXPECTED["texts"])["language"] == "es"


def test_a_registry_schema_that_is_not_avro_json_is_a_decode_error():
    with pytest.raises(DecodeError, match="schema id 9 is not a valid Avro schema"):
        WriterSchema.from_str(9, 'syntax = "proto3"; message Text {}')


def test_an_unreachable_registry_is_transient_not_a_dead_letter():
    with socket.socket() as sock:  # a port that was free a moment ago: connection refused
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    settings_ = dataclasses.replace(Settings.from_env(), namespace="unit", schema_registry_url=url)
    serde = AvroSerde(settings_, client=SchemaRegistryClient({"url": url, "max.retries": 0}))
    with pytest.raises(RegistryUnavailableError, match=r"unit.texts \(schema id 100\)") as caught:
        serde.decode("unit.texts", SAMPLES["texts"])
    assert caught.value.permanent is False


@pytest.mark.parametrize("status, transient", [(404, False), (422, False), (400, False), (401, True),
                                                (403, True), (429, True), (500, True), (503, True)])
def test_registry_answers_about_the_schema_are_permanent_others_transient(status, transient):
    assert registry_unavailable(SchemaRegistryError(status, status * 100 + 3, "answer")) is transient


# ------------------------------------------------------------------ fuzz (bounded, derandomized)

@FUZZ
@given(data=st.binary(max_size=256))
def test_fuzz_arbitrary_bytes(data):
    _decodes_or_refuses("texts", data)


@FUZZ
@given(role=st.sampled_from(sorted(FILES)), body=st.binary(max_size=256))
def test_fuzz_arbitrary_bodies_behind_a_valid_frame(role, body):
    _decodes_or_refuses(role, framed(IDS[role], body))


@FUZZ
@given(st.data())
def test_fuzz_mutated_valid_values(data):
    role = data.draw(st.sampled_from(sorted(FILES)))
    _decodes_or_refuses(role, data.draw(mutated(SAMPLES[role])))
