"""Hostile values through :meth:`AvroSerde.decode` with the real registry.

The registry decides two cases no local test can: a schema id it does not know
(HTTP 404 -> :class:`UnknownSchemaError`, permanent) and a schema id it knows but
registered for another topic (:class:`SchemaMismatchError`, permanent). The fuzz
test then feeds arbitrary bytes and mutated real wire-format values (their schema
ids hit as well, so the registry answers 404s and other topics' schemas) and allows
only a record or a :class:`DecodeError`: a registry that is up must never make a
value look transient.
"""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from conveyor.streams.kafka.io import document_record, text_record
from conveyor.streams.kafka.serde import AvroSerde, DecodeError, SchemaMismatchError, UnknownSchemaError
from conveyor.streams.kafka.topics import topic
from tests.hostile import UNKNOWN_SCHEMA_ID, framed, mutated


@pytest.fixture
def serde(settings) -> AvroSerde:
    return AvroSerde(settings)


def test_valid_avro_under_an_unknown_schema_id_is_permanent(settings, serde):
    texts = topic(settings, "texts")
    body = serde.encode(texts, text_record("valid body, unknown id"))[5:]
    with pytest.raises(UnknownSchemaError) as caught:
        serde.decode(texts, framed(UNKNOWN_SCHEMA_ID, body))
    message = str(caught.value)
    assert caught.value.permanent and isinstance(caught.value, DecodeError)
    assert texts in message and f"schema id {UNKNOWN_SCHEMA_ID}" in message and "HTTP 404" in message


def test_a_text_record_in_the_documents_topic_is_a_schema_mismatch(settings, serde):
    texts, documents = topic(settings, "texts"), topic(settings, "documents")
    value = serde.encode(texts, text_record("I belong to the texts topic"))
    schema_id = int.from_bytes(value[1:5], "big")
    with pytest.raises(SchemaMismatchError) as caught:
        serde.decode(documents, value)
    assert str(caught.value) == (f"value on {documents} was written with schema id {schema_id} (io.conveyor.Text), "
                                 f"but {documents} carries io.conveyor.Document records")
    assert serde.decode(texts, value)["text"] == "I belong to the texts topic"  # fine where it belongs


@pytest.mark.timeout(300)
def test_fuzz_decode_against_the_real_registry(settings, serde):
    texts, documents = topic(settings, "texts"), topic(settings, "documents")
    seeds = {texts: serde.encode(texts, text_record("where is my refund", doc_id="t-1")),
             documents: serde.encode(documents, document_record(b"%PDF-1.4 tiny", "a.pdf", settings, doc_id="d-1"))}

    @hsettings(max_examples=200, deadline=None, derandomize=True, database=None,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(st.data())
    def fuzz(data):
        name = data.draw(st.sampled_from(sorted(seeds)))
        value = data.draw(st.one_of(st.binary(max_size=200),
                                    st.binary(max_size=200).map(lambda b: b"\x00" + b),
                                    mutated(seeds[name], keep_head=0)))
        try:
            assert isinstance(serde.decode(name, value), dict)
        except DecodeError as exc:
            assert exc.permanent and name in str(exc)

    fuzz()
