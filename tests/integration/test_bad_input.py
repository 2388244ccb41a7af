"""Hostile input through the real pipeline: every bad record becomes one permanent dead letter.

Against the real broker and registry (no mocks), the test produces into the real
``documents`` and ``texts`` topics of a fresh namespace: raw random bytes (plain
producer), valid Avro under an unknown schema id, a record of the other input
topic's schema, oversize and empty texts, and damaged, encrypted, bomb-sized,
page-bombed, empty and unidentifiable files (through :class:`conveyor.streams.kafka.io.InputProducer`),
mixed with good texts and documents (two of them with a wrong file extension). Then
the real ``extract``, ``embed`` and ``classify`` stages (``conveyor.streams.runtime.stages.build_stage``,
Milvus Lite in the test's tmp dir) run with the real :class:`~conveyor.streams.runtime.runner.Runner`
until idle, one after the other.

Checked: each bad record is in its stage's dead-letter topic exactly once, with the
original value byte for byte and ``conveyor.dlq.*`` headers naming the error class
``permanent``, the exception class and a message saying why; each good record has
exactly one prediction; nothing else is dead-lettered. Damaged files of the shared
corpus join the test when ``../shared/corpus`` is present.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from confluent_kafka import Producer

from conveyor.dlq import envelope
from conveyor.processors.limits import MAX_TEXT_CHARS
from conveyor.streams.kafka.admin import create_topics
from conveyor.streams.kafka.io import InputProducer, document_record, text_record
from conveyor.streams.kafka.serde import AvroSerde, key_bytes
from conveyor.streams.kafka.topics import topic
from conveyor.streams.runtime.runner import Runner
from conveyor.streams.runtime.stages import build_stage, close_sinks
from tests.hostile import UNKNOWN_SCHEMA_ID, blank_pdf, encrypted_pdf, framed, not_avro, png_header, text_image
from tests.integration.helpers import read_all

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "extract"
SHARED_BAD = REPO.parent / "shared" / "corpus" / "bad_and_edge_files"
SERDE, ERRORS = "conveyor.streams.kafka.serde.", "conveyor.processors.errors."

# Damaged files read from ../shared (not shippable): path -> (exception class, words in the message).
SHARED_CASES = {
    "mindee/receipt.heic": ("UnsupportedDocumentError", "HEIF"),
    "ocrmypdf/invalid.pdf": ("CorruptDocumentError", "invalid PDF"),
    "pillow/photoshop-200dpi-broken.jpg": ("EmptyDocumentError", "no text found"),  # broken DPI tag, no text
    "mindee/blank_1.pdf": ("EmptyDocumentError", "no text found"),
    "ocrmypdf/no_contents.pdf": ("EmptyDocumentError", "no text found"),  # a page without /Contents
    "ocrmypdf/livecycle.pdf": ("EmptyDocumentError", "no text found"),  # claims XFA, has none
}
GOOD_TEXTS = ["my card payment was declined", "how do I top up my account by bank transfer?",
              "I still have not received my new card"]


class Inputs:
    """What the test produced: per key, the original value and where its outcome should be."""

    def __init__(self, settings):
        self.settings = settings
        self.serde = AvroSerde(settings)
        self.documents, self.texts = topic(settings, "documents"), topic(settings, "texts")
        self.bad: dict[str, tuple[str, str, bytes, str, str]] = {}  # key -> (dlq role, topic, value, class, words)
        self.good: set[str] = set()
        self.raw = Producer({"bootstrap.servers": settings.bootstrap_servers})

    def raw_value(self, key: str, to: str, value: bytes, dlq: str, exc: str, words: str) -> None:
        """Produce ``value`` as it is (no serde) with a plain confluent_kafka Producer."""
        self.raw.produce(to, key=key.encode(), value=value)
        self.bad[key] = (dlq, to, value, exc, words)

    def record(self, producer: InputProducer, to: str, rec: dict, bad: tuple[str, str, str] | None) -> None:
        """Produce ``rec`` through ``InputProducer``; ``bad`` = (dlq role, exception class, words)."""
        producer.send(to, rec)
        if bad is None:
            self.good.add(rec["doc_id"])
        else:
            self.bad[rec["doc_id"]] = (bad[0], to, self.serde.encode(to, rec), bad[1], bad[2])

    def document(self, producer: InputProducer, doc_id: str, data: bytes, filename: str,
                 bad: tuple[str, str] | None) -> None:
        rec = document_record(data, filename, self.settings, doc_id=doc_id)
        self.record(producer, self.documents, rec, ("dlq.extract", ERRORS + bad[0], bad[1]) if bad else None)

    def text(self, producer: InputProducer, doc_id: str, text: str, bad: tuple[str, str] | None) -> None:
        self.record(producer, self.texts, text_record(text, doc_id=doc_id),
                    ("dlq.embed", ERRORS + bad[0], bad[1]) if bad else None)


def _produce_everything(settings) -> Inputs:
    inp = Inputs(settings)
    text_value = inp.serde.encode(inp.texts, text_record("a text in the wrong topic", doc_id="x"))
    doc_value = inp.serde.encode(inp.documents, document_record(b"%PDF-1.4", "a.pdf", settings, doc_id="y"))
    # Undecodable values: each input topic's consumer is the first stage to meet them.
    for to, dlq, other in ((inp.documents, "dlq.extract", text_value), (inp.texts, "dlq.embed", doc_value)):
        role = to.rsplit(".", 1)[1]
        own = doc_value if role == "documents" else text_value
        inp.raw_value(f"random-{role}", to, not_avro(300, seed=len(role)), dlq, SERDE + "DecodeError",
                      "not Confluent-framed Avro")
        inp.raw_value(f"unknown-id-{role}", to, framed(UNKNOWN_SCHEMA_ID, own[5:]), dlq,
                      SERDE + "UnknownSchemaError", f"schema id {UNKNOWN_SCHEMA_ID}, which the registry")
        inp.raw_value(f"other-schema-{role}", to, other, dlq, SERDE + "SchemaMismatchError",
                      f"but {to} carries io.conveyor.{'Document' if role == 'documents' else 'Text'} records")
    inp.raw.flush(30)

    with InputProducer(settings) as p:
        inp.document(p, "bad-empty", b"", "empty.pdf", ("EmptyDocumentError", "has no bytes"))
        inp.document(p, "bad-unidentifiable", not_avro(4096, seed=11), "scan.pdf",
                     ("UnsupportedDocumentError", "unrecognised file type for 'scan.pdf'"))
        inp.document(p, "bad-pixel-bomb", png_header(100_000, 100_000), "bomb.png",
                     ("DocumentLimitError", "decompression-bomb"))
        inp.document(p, "bad-page-bomb", blank_pdf(10_000), "pages.pdf",
                     ("DocumentLimitError", "10000 pages, more than the limit of 50"))
        inp.document(p, "bad-encrypted", encrypted_pdf(), "locked.pdf", ("EncryptedDocumentError", "password"))
        inp.document(p, "bad-truncated-jpeg", (FIXTURES / "truncated_jpeg.jpg").read_bytes(), "truncated_jpeg.jpg",
                     ("CorruptDocumentError", "truncated"))
        inp.document(p, "bad-broken-png", (FIXTURES / "broken.png").read_bytes(), "broken.png",
                     ("CorruptDocumentError", "cannot decode PNG"))
        for rel, (exc, words) in SHARED_CASES.items():
            if (SHARED_BAD / rel).is_file():
                inp.document(p, f"bad-shared-{Path(rel).stem}", (SHARED_BAD / rel).read_bytes(), Path(rel).name,
                             (exc, words))
        inp.text(p, "bad-oversize-text", "a" * (MAX_TEXT_CHARS + 1),
                 ("TextLimitError", f"{MAX_TEXT_CHARS + 1:,} characters, more than the limit of {MAX_TEXT_CHARS:,}"))
        inp.text(p, "bad-blank-text", " \n\t ", ("ModelInputError", "has no text to embed"))
        # Good records, two documents with a wrong extension (types come from the bytes).
        inp.document(p, "good-pdf-named-jpg", (FIXTURES / "NetpresseInvoice.pdf").read_bytes(), "invoice.jpg", None)
        inp.document(p, "good-jpeg-named-pdf", text_image("JPEG"), "invoice.pdf", None)
        for i, text in enumerate(GOOD_TEXTS):
            inp.text(p, f"good-text-{i}", text, None)
    return inp


@pytest.mark.timeout(600)
def test_every_hostile_input_is_one_permanent_dead_letter_and_good_ones_are_predicted(settings):
    create_topics(settings)
    inp = _produce_everything(settings)
    try:
        for stage in ("extract", "embed", "classify"):
            Runner(settings, build_stage(stage, settings)).run(max_idle_seconds=8.0)
    finally:
        close_sinks()

    predictions = read_all(settings, topic(settings, "predictions"), expect=len(inp.good))
    assert sorted(m.key().decode() for m in predictions) == sorted(inp.good)  # exactly one each
    assert read_all(settings, topic(settings, "dlq.classify"), timeout=3) == []

    for role in ("dlq.extract", "dlq.embed"):
        expected = {k: v for k, v in inp.bad.items() if v[0] == role}
        dead = read_all(settings, topic(settings, role), expect=len(expected))
        keys = [m.key().decode() for m in dead]
        assert sorted(keys) == sorted(expected), f"{role}: got {sorted(keys)}"
        for msg in dead:
            key = msg.key().decode()
            _, origin, value, exc, words = expected[key]
            headers = envelope.decode_headers(msg.headers())
            assert msg.value() == value, f"{key}: dead letter value differs from the original bytes"
            assert msg.key() == key_bytes(key)
            assert headers[envelope.ERROR_CLASS] == "permanent", (key, headers)
            assert headers[envelope.EXCEPTION_CLASS] == exc, (key, headers[envelope.EXCEPTION_MESSAGE])
            assert words in headers[envelope.EXCEPTION_MESSAGE], (key, headers[envelope.EXCEPTION_MESSAGE])
            assert headers[envelope.ORIGIN_TOPIC] == origin and headers[envelope.PROCESSOR] == role[4:]
