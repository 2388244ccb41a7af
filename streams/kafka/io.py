"""Producing user inputs (documents, texts) and consuming topics as JSON.

These are the functions behind ``conveyor produce`` and ``conveyor consume``.
"""
from __future__ import annotations

import base64
import csv
import hashlib
import mimetypes
import os
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Optional

from confluent_kafka import KafkaError, Message, TopicPartition

from conveyor.processors.base import now_millis
from conveyor.streams import __version__
from conveyor.streams.config.settings import Settings
from conveyor.streams.kafka.blobstore import BlobStore
from conveyor.streams.kafka.clients import (
    DeliveryTracker,
    make_consumer,
    make_producer,
    produce,
)
from conveyor.streams.kafka.records import consumed_headers, consumed_topic, position
from conveyor.streams.kafka.serde import AvroSerde, key_bytes
from conveyor.streams.kafka.topics import catalogue, role_of

PRODUCER_NAME = "cli"


def new_id(prefix: str) -> str:
    """A fresh id like ``doc-3f2a…`` (uuid4, 20 hex chars)."""
    return f"{prefix}-{uuid.uuid4().hex[:20]}"


def iter_files(paths: Iterable[str | Path]) -> Iterator[tuple[Path, Optional[str]]]:
    """Expand files and directories (recursively, sorted) into ``(path, error)`` pairs.

    ``error`` is a message for a path that does not exist, is not a regular file
    (e.g. a dangling symlink) or is a directory that cannot be listed; such paths
    are reported, never skipped silently. Hidden files (``.name``) are skipped.
    """
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            errors: list[OSError] = []
            for root, dirs, files in os.walk(p, onerror=errors.append):
                dirs.sort()
                for name in sorted(files):
                    if name.startswith("."):
                        continue
                    child = Path(root) / name
                    yield (child, None) if child.is_file() else (child, f"not a regular file: {child}")
            for err in errors:
                yield Path(err.filename or p), f"cannot list directory {err.filename}: {err.strerror}"
        elif p.is_file():
            yield p, None
        elif p.exists() or p.is_symlink():
            yield p, f"not a regular file: {p}"
        else:
            yield p, f"no such file or directory: {p}"


def document_record(data: bytes, filename: str, settings: Settings, *, doc_id: Optional[str] = None,
                    blobs: Optional[BlobStore] = None, attributes: Optional[dict[str, str]] = None) -> dict[str, Any]:
    """A ``Document`` record for ``data``: inline up to ``settings.inline_max_bytes``,
    otherwise stored in the blob store and referenced by ``blob_uri``."""
    digest = hashlib.sha256(data).hexdigest()
    doc_id = doc_id or new_id("doc")
    inline = len(data) <= settings.inline_max_bytes
    blob_uri = None
    if not inline:
        blob_uri = (blobs or BlobStore(settings.blob_dir)).put(data, digest)
    return {
        "doc_id": doc_id, "trace_id": uuid.uuid4().hex, "event_time": now_millis(),
        "producer": PRODUCER_NAME, "producer_version": __version__,
        "filename": filename, "content_type": mimetypes.guess_type(filename)[0],
        "size_bytes": len(data), "sha256": digest,
        "content": data if inline else None, "blob_uri": blob_uri,
        "attributes": attributes or {},
    }


def text_record(text: str, *, doc_id: Optional[str] = None, source: Optional[str] = None,
                attributes: Optional[dict[str, str]] = None) -> dict[str, Any]:
    """A ``Text`` record."""
    return {
        "doc_id": doc_id or new_id("txt"), "trace_id": uuid.uuid4().hex, "event_time": now_millis(),
        "producer": PRODUCER_NAME, "producer_version": __version__,
        "text": text, "source": source, "attributes": attributes or {},
    }


class InputProducer:
    """Produces documents and texts to the namespace's input topics; use as a context
    manager so every record is acknowledged (``flush``) before it exits."""

    def __init__(self, settings: Settings, serde: Optional[AvroSerde] = None):
        self.settings = settings
        self.serde = serde or AvroSerde(settings)
        self.serde.check_tls()
        self.producer = make_producer(settings)
        self.delivery = DeliveryTracker()
        self.blobs = BlobStore(settings.blob_dir)
        specs = catalogue(settings)
        self.documents_topic = specs["documents"].name
        self.texts_topic = specs["texts"].name

    def __enter__(self) -> InputProducer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.flush()

    def send(self, topic: str, record: dict[str, Any], *, timestamp: Optional[int] = None) -> None:
        """Encode and produce ``record`` keyed by its ``doc_id``; ``timestamp`` (epoch ms,
        default now) is the Kafka record timestamp, e.g. a backfilled input's original time."""
        produce(self.producer, topic, key=key_bytes(record["doc_id"]), value=self.serde.encode(topic, record),
                on_delivery=self.delivery.callback, timestamp=timestamp)

    def document(self, path: Path, *, doc_id: Optional[str] = None,
                 attributes: Optional[dict[str, str]] = None) -> dict[str, Any]:
        """Produce the file at ``path``; return its JSON report line.

        Raises:
            OSError: the file cannot be read.
        """
        data = path.read_bytes()
        rec = document_record(data, path.name, self.settings, doc_id=doc_id, blobs=self.blobs,
                              attributes={"path": str(path), **(attributes or {})})
        self.send(self.documents_topic, rec)
        return {"path": str(path), "doc_id": rec["doc_id"], "topic": self.documents_topic,
                "size_bytes": rec["size_bytes"], "sha256": rec["sha256"],
                "transport": "inline" if rec["content"] is not None else "blob"}

    def text(self, text: str, *, doc_id: Optional[str] = None, source: Optional[str] = None,
             timestamp: Optional[int] = None) -> dict[str, Any]:
        """Produce one text (Kafka ``timestamp`` in epoch ms, default now); return its JSON report line."""
        rec = text_record(text, doc_id=doc_id, source=source)
        self.send(self.texts_topic, rec, timestamp=timestamp)
        return {"doc_id": rec["doc_id"], "topic": self.texts_topic, "chars": len(text)}

    def flush(self, timeout: float = 60.0) -> None:
        """Wait until every produced record is acknowledged.

        Raises:
            confluent_kafka.KafkaException: a record was not acknowledged.
        """
        self.delivery.wait(self.producer, timeout)


def read_texts_csv(path: Path, text_column: str, id_column: Optional[str] = None,
                   limit: Optional[int] = None) -> Iterator[tuple[Optional[str], str]]:
    """``(id, text)`` rows of a CSV file with a header.

    Raises:
        KeyError: a named column is missing from the header.
    """
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        cols = reader.fieldnames or []
        for col in filter(None, (text_column, id_column)):
            if col not in cols:
                raise KeyError(f"column {col!r} not in {path} (columns: {', '.join(cols)})")
        for i, row in enumerate(reader):
            if limit is not None and i >= limit:
                break
            yield (row[id_column] if id_column else None), row[text_column]


def abbreviate(value: Any, keep: int = 4) -> Any:
    """JSON-friendly copy of a decoded record: float vectors cut to ``keep`` items
    plus a count, bytes as base64 (first 64 bytes) with their length."""
    if isinstance(value, dict):
        return {k: abbreviate(v, keep) for k, v in value.items()}
    if isinstance(value, list):
        if len(value) > 2 * keep and all(isinstance(v, float) for v in value[:keep]):
            return [round(v, 5) for v in value[:keep]] + [f"... {len(value)} floats"]
        return [abbreviate(v, keep) for v in value]
    if isinstance(value, (bytes, bytearray)):
        return {"bytes": len(value), "base64_head": base64.b64encode(bytes(value[:64])).decode()}
    return value


def consume(settings: Settings, topic: str, *, from_beginning: bool = False, max_messages: Optional[int] = None,
            timeout: float = 10.0, serde: Optional[AvroSerde] = None, decode: bool = True,
            group_id: Optional[str] = None) -> Iterator[dict[str, Any]]:
    """Read ``topic`` (committed records only) and yield one dict per record.

    Stops after ``max_messages`` records or when no record arrived for
    ``timeout`` seconds. Avro topics are decoded; other topics (dead letters)
    show their headers and raw value. Uses a throw-away consumer group and
    commits nothing.
    """
    serde = serde or AvroSerde(settings)
    role = role_of(settings, topic)
    avro = role is not None and catalogue(settings)[role].schema
    consumer = make_consumer(settings, group_id or f"conveyor-cli-{uuid.uuid4().hex[:12]}",
                             **{"auto.offset.reset": "earliest" if from_beginning else "latest",
                                "statistics.interval.ms": 0})
    state = {"last": time.monotonic(), "assigned": False}

    def on_assign(_consumer: object, _partitions: list[TopicPartition]) -> None:
        # The idle timeout counts from the assignment, not from the (slower) group join.
        state["last"], state["assigned"] = time.monotonic(), True

    consumer.subscribe([topic], on_assign=on_assign)
    seen = 0
    try:
        while max_messages is None or seen < max_messages:
            msg = consumer.poll(0.5)
            if msg is None:
                waited = time.monotonic() - state["last"]
                if waited > timeout and (state["assigned"] or waited > timeout + 30):
                    break
                continue
            err = msg.error()
            if err:
                if err.code() != KafkaError._PARTITION_EOF:
                    raise RuntimeError(f"consume {topic}: {err}")
                continue
            state["last"] = time.monotonic()
            seen += 1
            yield message_dict(msg, serde if (avro and decode) else None)
    finally:
        consumer.close()


def message_dict(msg: Message, serde: Optional[AvroSerde] = None) -> dict[str, Any]:
    """A consumed record as a dict: topic, partition, offset, key (text), timestamp (ms),
    headers (text, if any) and value — decoded when ``serde`` is given (a value that does
    not decode is kept raw, with ``decode_error``), raw bytes otherwise."""
    key, headers = msg.key(), consumed_headers(msg)
    out: dict[str, Any] = {"topic": msg.topic(), "partition": msg.partition(), "offset": msg.offset(),
                           "key": key.decode("utf-8", "replace") if key else None,
                           "timestamp": msg.timestamp()[1]}
    if headers:
        out["headers"] = {k: (v.decode("utf-8", "replace") if v else "") for k, v in headers}
    out["value"] = msg.value()
    if serde is not None:
        try:
            out["value"] = serde.decode(consumed_topic(msg), msg.value())
        except Exception as exc:  # noqa: BLE001 - show, don't crash, on a bad record
            out["decode_error"] = str(exc)
    return out


def watermarks(settings: Settings, topic: str, *, timeout: float = 10.0) -> Optional[dict[int, tuple[int, int]]]:
    """``{partition: (low, high)}`` offsets of ``topic``, or ``None`` when it does not exist."""
    consumer = make_consumer(settings, f"conveyor-cli-{uuid.uuid4().hex[:12]}", **{"statistics.interval.ms": 0})
    try:
        meta = consumer.list_topics(topic, timeout=timeout).topics.get(topic)
        if meta is None or meta.error is not None:
            return None
        return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout) for p in meta.partitions}
    finally:
        consumer.close()


def read_range(settings: Settings, ranges: dict[tuple[str, int], tuple[int, int]], *,
               timeout: float = 60.0) -> Iterator[Message]:
    """Every committed record at offsets ``start <= offset < end`` of each ``(topic, partition)``
    in ``ranges`` (``{(topic, partition): (start, end)}``), partitions assigned directly (no
    group join, nothing committed). Records of aborted transactions and transaction markers are
    skipped (read_committed), so fewer than ``end - start`` records may come back.

    Raises:
        RuntimeError: a consumer error.
        TimeoutError: the ranges were not read within ``timeout`` seconds.
    """
    pending = {k: end for k, (start, end) in ranges.items() if start < end}
    if not pending:
        return
    consumer = make_consumer(settings, f"conveyor-cli-{uuid.uuid4().hex[:12]}",
                             **{"statistics.interval.ms": 0, "enable.partition.eof": True})
    try:
        consumer.assign([TopicPartition(t, p, ranges[(t, p)][0]) for t, p in pending])
        deadline = time.monotonic() + timeout
        while pending:
            if time.monotonic() > deadline:
                raise TimeoutError(f"partitions {sorted(pending)} not read to their end offsets in {timeout:.0f}s")
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            err = msg.error()
            if err:
                if err.code() != KafkaError._PARTITION_EOF:
                    raise RuntimeError(f"read {msg.topic()}: {err}")
                topic, partition = msg.topic(), msg.partition()
                if topic is not None and partition is not None:  # an end-of-partition event names it
                    pending.pop((topic, partition), None)
                continue
            topic, partition, offset = position(msg)
            key = (topic, partition)
            if key not in pending:
                continue
            if offset < pending[key]:
                yield msg
            if offset + 1 >= pending[key]:
                pending.pop(key, None)
    finally:
        consumer.close()


def read_to_end(settings: Settings, topic: str, *, timeout: float = 60.0,
                missing_ok: bool = False) -> Iterator[Message]:
    """Every committed record of ``topic`` from the earliest offset up to the end as of
    the call (:func:`read_range` over its watermarks). A missing topic yields nothing when
    ``missing_ok``.

    Raises:
        RuntimeError: the topic does not exist (unless ``missing_ok``), or a consumer error.
        TimeoutError: the end was not reached within ``timeout`` seconds.
    """
    marks = watermarks(settings, topic)
    if marks is None:
        if missing_ok:
            return
        raise RuntimeError(f"topic {topic} not found")
    yield from read_range(settings, {(topic, p): lh for p, lh in marks.items()}, timeout=timeout)
