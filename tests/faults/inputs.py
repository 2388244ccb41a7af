"""Inputs of the fault suite: real texts and documents with distinct ids, plus known-bad ones.

An :class:`InputSet` is a list of :class:`Item` s, each with a distinct input id (the Kafka key)
and whether it is *bad*, i.e. must end as a dead letter:

* good texts — BANKING77 queries from ``../shared/corpus/text_banking77/train.csv`` (a seeded
  sample), or the demo's 200-row sample repeated under distinct ids when ``../shared`` is absent;
* good documents — text-layer PDFs and small scans from the demo corpus (OCR costs 2–10 s per
  image on 2 cores, so only a few);
* damaged files — the demo's two damaged images plus the damaged/empty/unsupported files of
  ``../shared/corpus/bad_and_edge_files`` (the list the end-to-end test uses);
* old inputs — a good text (and with the bad ones, a blank text) stamped November 2023, far
  older than retention: what Conveyor writes for them (retry records, dead letters, results)
  must outlive the broker's retention check (the test targets run it every 2 s);
* hostile payloads — values produced straight into the ``documents`` and ``texts`` topics
  (random bytes, an unknown schema id, an empty value, truncated Avro, a record of the other
  topic's schema) and records that decode but cannot be processed (tampered, path-traversing,
  empty, unidentifiable, pixel-bomb, page-bomb and encrypted documents; blank and oversize texts).

:func:`produce_paced` produces the items in a seeded random order at an even pace, so faults
meet a pipeline that is busy the whole time.
"""
from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from conveyor.processors.limits import MAX_TEXT_CHARS
from conveyor.streams.config.settings import Settings
from conveyor.streams.kafka.clients import produce
from conveyor.streams.kafka.io import InputProducer, document_record, read_texts_csv, text_record
from conveyor.streams.kafka.serde import AvroSerde, key_bytes
from conveyor.streams.kafka.topics import topic
from conveyor.streams.runtime.faults import injected_failure
from conveyor.tools.demo.run import CORPUS
from tests.hostile import UNKNOWN_SCHEMA_ID, blank_pdf, encrypted_pdf, framed, not_avro, png_header
from tests.integration.test_pipeline_e2e import DAMAGED

SHARED_CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus"
BANKING77_TRAIN = SHARED_CORPUS / "text_banking77" / "train.csv"
DEMO_TEXTS = CORPUS / "texts" / "banking77_sample.csv"
SHARED_BAD = SHARED_CORPUS / "bad_and_edge_files"

GOOD_DOCUMENTS = (
    "invoices/AmazonWebServices.pdf", "invoices/FlipkartInvoice.pdf", "invoices/Invoice_1.pdf",
    "forms/fw9_1.pdf", "forms/covid-informed-consent-form.pdf",
    "receipts/aldi_02032020_19_02423.jpg", "receipts/lidl_02032020_02_00716.jpg", "invoices/oyo.png",
)
"""Demo-corpus documents used as good inputs: five text-layer PDFs and three scans (OCR)."""
DEMO_DAMAGED = ("damaged/truncated_jpeg.jpg", "damaged/broken.png")
OLD_TIMESTAMP = 1_700_000_000_000
"""Kafka timestamp of the old inputs: 2023-11-14, older than any retention of the topics."""


@dataclass(frozen=True)
class Item:
    """One input: ``kind`` is ``text`` (``payload`` = str), ``document`` (``payload`` = Path)
    or ``raw`` (``payload`` = ``(role, make)`` where ``make(serde, settings)`` returns the
    value bytes to produce to ``role``'s topic). ``bad``: must end as a dead letter."""

    input_id: str
    kind: str
    payload: object
    bad: bool = False
    note: str = ""
    timestamp: Optional[int] = None
    """Kafka timestamp to produce with (epoch ms; ``None``: now)."""


@dataclass
class InputSet:
    """The items of one scenario run; ids are distinct."""

    items: list[Item]

    def __post_init__(self) -> None:
        ids = [i.input_id for i in self.items]
        if len(ids) != len(set(ids)):
            raise ValueError("input ids must be distinct")

    @property
    def ids(self) -> set[str]:
        return {i.input_id for i in self.items}

    @property
    def bad_ids(self) -> set[str]:
        return {i.input_id for i in self.items if i.bad}

    @property
    def good_ids(self) -> set[str]:
        return self.ids - self.bad_ids

    def describe(self, input_id: str) -> str:
        """A short human label of an input (file name or note), for failure messages."""
        for item in self.items:
            if item.input_id == input_id:
                return item.note or (item.payload.name if isinstance(item.payload, Path) else item.kind)
        return "?"


def real_texts(n: int, seed: int = 0) -> list[str]:
    """``n`` real support queries: a seeded sample of BANKING77 train (10,003 rows) from
    ``../shared``, or the demo's 200-row sample repeated when ``../shared`` is absent."""
    if BANKING77_TRAIN.is_file():
        rows = [t for _, t in read_texts_csv(BANKING77_TRAIN, "text")]
        rng = random.Random(seed)
        return rng.sample(rows, n) if n <= len(rows) else [rows[i % len(rows)] for i in range(n)]
    rows = [t for _, t in read_texts_csv(DEMO_TEXTS, "text")]
    return [rows[i % len(rows)] for i in range(n)]


def damaged_files() -> dict[str, Path]:
    """``{label: path}`` of damaged files: the demo's two, plus ``../shared``'s when present."""
    files = {f"demo/{rel}": CORPUS / rel for rel in DEMO_DAMAGED}
    if SHARED_BAD.is_dir():
        files.update({f"shared/{rel}": SHARED_BAD / rel for rel in sorted(DAMAGED)})
    return files


def _raw(value: bytes | None) -> Callable[[AvroSerde, Settings], bytes | None]:
    return lambda serde, settings: value


def _encoded(role: str, record: dict, cut: Optional[int] = None) -> Callable[[AvroSerde, Settings], bytes]:
    """Confluent-framed Avro of ``record`` under ``role``'s schema, optionally cut to ``cut`` bytes."""
    def make(serde: AvroSerde, settings: Settings) -> bytes:
        data = serde.encode(topic(settings, role), record)
        return data[:cut] if cut else data
    return make


def hostile_items(settings: Settings, seed: int = 0) -> list[Item]:
    """Payloads no processor can turn into a result, each a dead letter of the first processor
    that reads it (``extract`` on the documents topic, ``embed`` on the texts topic). Built with
    the hostile-input builders of :mod:`tests.hostile` (undecodable values, bombs, encrypted
    PDF, oversize text) plus truncated Avro, a tampered and a path-traversing document."""
    pdf = (CORPUS / "invoices" / "Invoice_1.pdf").read_bytes()

    def doc(doc_id: str, data: bytes, name: str, **changes) -> dict:
        return {**document_record(data, name, settings, doc_id=doc_id), **changes}

    tampered = doc("hostile-doc-tampered", pdf, "Invoice_1.pdf", content=pdf[:-200] + bytes(200))
    traversal = doc("hostile-doc-traversal", b"x", "passwd", content=None, blob_uri="file:///etc/passwd")
    text_value = _encoded("texts", text_record("not a document", doc_id="hostile-doc-text-schema"))
    doc_value = _encoded("documents", doc("hostile-txt-doc-schema", pdf, "Invoice_1.pdf"))
    items = [
        ("hostile-doc-junk", "documents", _raw(not_avro(512, seed)), "512 random bytes"),
        ("hostile-doc-unknown-schema", "documents",
         lambda serde, s: framed(UNKNOWN_SCHEMA_ID, doc_value(serde, s)[5:]), "unknown schema id"),
        ("hostile-doc-empty-value", "documents", _raw(b""), "empty value"),
        ("hostile-doc-truncated", "documents", _encoded("documents", doc("hostile-doc-truncated", pdf, "a.pdf"),
                                                        cut=len(pdf) // 3), "truncated Avro"),
        ("hostile-doc-text-schema", "documents", text_value, "a Text record on the documents topic"),
        ("hostile-doc-tampered", "documents", _encoded("documents", tampered), "sha256 does not match content"),
        ("hostile-doc-traversal", "documents", _encoded("documents", traversal), "blob_uri file:///etc/passwd"),
        ("hostile-doc-empty-file", "documents", _encoded("documents", doc("hostile-doc-empty-file", b"", "e.pdf")),
         "empty file"),
        ("hostile-doc-unidentifiable", "documents", _encoded("documents", doc(
            "hostile-doc-unidentifiable", not_avro(4096, seed + 1), "scan.pdf")), "unidentifiable bytes"),
        ("hostile-doc-pixel-bomb", "documents", _encoded("documents", doc(
            "hostile-doc-pixel-bomb", png_header(100_000, 100_000), "bomb.png")), "100,000 x 100,000 px PNG header"),
        ("hostile-doc-page-bomb", "documents", _encoded("documents", doc(
            "hostile-doc-page-bomb", blank_pdf(10_000), "pages.pdf")), "10,000-page PDF"),
        ("hostile-doc-encrypted", "documents", _encoded("documents", doc(
            "hostile-doc-encrypted", encrypted_pdf(), "locked.pdf")), "password-protected PDF"),
        ("hostile-txt-junk", "texts", _raw(not_avro(512, seed + 2)), "512 random bytes"),
        ("hostile-txt-unknown-schema", "texts",
         lambda serde, s: framed(UNKNOWN_SCHEMA_ID, text_value(serde, s)[5:]), "unknown schema id"),
        ("hostile-txt-blank", "texts", _encoded("texts", text_record(" \n\t ", doc_id="hostile-txt-blank")),
         "blank text"),
        ("hostile-txt-oversize", "texts", _encoded("texts", text_record(
            "a" * (MAX_TEXT_CHARS + 1), doc_id="hostile-txt-oversize")), "text over the length limit"),
        ("hostile-txt-doc-schema", "texts", doc_value, "a Document record on the texts topic"),
    ]
    return [Item(i, "raw", (role, make), bad=True, note=note) for i, role, make, note in items]


def old_input_id(rate: float = 0.1) -> str:
    """An id whose record the transient-failure injection at ``rate`` picks in both ``embed``
    and ``classify`` (:func:`conveyor.streams.runtime.faults.injected_failure`), so in that scenario the old
    input travels two retry topics."""
    n = 0
    while not all(injected_failure(p, key_bytes(f"old-{n:04d}"), 0, rate) for p in ("embed", "classify")):
        n += 1
    return f"old-{n:04d}"


def build_inputs(settings: Settings, *, n_texts: int = 2000, with_bad: bool = False, seed: int = 0) -> InputSet:
    """The scenario's inputs: ``n_texts`` texts and the good documents, plus (``with_bad``) the
    damaged files and hostile payloads.

    Raises:
        FileNotFoundError: a demo-corpus file is missing.
    """
    items = [Item(f"txt-{i:05d}", "text", text) for i, text in enumerate(real_texts(n_texts, seed))]
    items.append(Item(old_input_id(), "text", "I was charged twice for the same card payment last month",
                      note="text stamped 2023-11-14", timestamp=OLD_TIMESTAMP))
    for i, rel in enumerate(GOOD_DOCUMENTS):
        path = CORPUS / rel
        if not path.is_file():
            raise FileNotFoundError(path)
        items.append(Item(f"doc-{i:02d}-{path.stem[:24]}", "document", path, note=rel))
    if with_bad:
        for i, (label, path) in enumerate(damaged_files().items()):
            items.append(Item(f"bad-{i:02d}-{path.stem[:24]}", "document", path, bad=True, note=label))
        items.extend(hostile_items(settings, seed))
        items.append(Item("old-bad-blank", "text", " \n ", bad=True, note="blank text stamped 2023-11-14",
                          timestamp=OLD_TIMESTAMP))
    return InputSet(items)


@dataclass
class ProduceLog:
    """Times (monotonic s) of the first and last produced item, and how many were produced."""

    started: Optional[float] = None
    finished: Optional[float] = None
    produced: int = 0
    error: Optional[BaseException] = None
    done: threading.Event = field(default_factory=threading.Event)


def produce_paced(settings: Settings, inputs: InputSet, *, duration: float, seed: int = 0,
                  log: Optional[ProduceLog] = None, stop: Optional[threading.Event] = None) -> ProduceLog:
    """Produce every item, in a seeded random order, evenly over ``duration`` seconds; wait
    for every acknowledgement. Errors are stored in ``log.error`` (for use in a thread).

    Documents go through :class:`conveyor.streams.kafka.io.InputProducer` (as ``conveyor produce`` does),
    texts too; raw items through the same underlying ``confluent_kafka.Producer``, keyed by
    their input id.
    """
    log = log or ProduceLog()
    order = list(inputs.items)
    random.Random(seed).shuffle(order)
    gap = duration / max(1, len(order))
    try:
        with InputProducer(settings) as producer:
            log.started = time.monotonic()
            for n, item in enumerate(order):
                if stop is not None and stop.is_set():
                    break
                delay = log.started + n * gap - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                if item.kind == "text":
                    producer.text(item.payload, doc_id=item.input_id, source="fault-suite", timestamp=item.timestamp)
                elif item.kind == "document":
                    producer.document(item.payload, doc_id=item.input_id)
                else:
                    role, make = item.payload
                    produce(producer.producer, topic(settings, role), key=key_bytes(item.input_id),
                            value=make(producer.serde, settings), on_delivery=producer.delivery.callback)
                log.produced += 1
            producer.flush(timeout=300)
        log.finished = time.monotonic()
    except BaseException as exc:  # noqa: BLE001 - reported by the harness
        log.error = exc
    finally:
        log.done.set()
    return log
