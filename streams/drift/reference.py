"""The stored drift reference and its control commands: topic ``<ns>.drift-reference``.

One compacted, single-partition topic with two keys (JSON values):

* ``reference`` - the current references of every signal
  (:meth:`conveyor.streams.drift.DriftMonitor.export_references` plus ``writer``,
  ``revision``, ``updated_ms``, ``reason`` and ``by``, the principal who asked for it); written by the drift worker whenever a
  reference is learned, pinned, set or reset, and by ``conveyor drift reference pin
  --texts`` (a reference set embedded from a CSV). A worker loads it at start, so a
  restart keeps the reference instead of learning a new one.
* ``command`` - ``{"action": "pin", "windows": N}`` or ``{"action": "reset"}`` from
  ``conveyor drift reference pin|reset``, applied by the running worker (it polls the
  topic every timer tick) and answered by a new ``reference`` record.

Records are read in log order; a worker ignores the ``reference`` records it wrote itself.
"""
from __future__ import annotations

import json
import logging
import time
import uuid
from typing import Any, Optional

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import NewTopic

from conveyor.streams.config.settings import Settings
from conveyor.streams.kafka.clients import make_admin, make_consumer, make_producer
from conveyor.streams.kafka.io import read_range, watermarks
from conveyor.streams.ops.audit import principal

log = logging.getLogger(__name__)

REFERENCE_KEY = b"reference"
COMMAND_KEY = b"command"
ACTIONS = ("pin", "reset")


def reference_topic(settings: Settings) -> str:
    """``<namespace>.drift-reference``."""
    return f"{settings.namespace}.drift-reference"


def ensure_topic(settings: Settings, timeout: float = 30.0) -> str:
    """Create the reference topic (1 partition, ``cleanup.policy=compact``) if missing;
    returns its name.

    Raises:
        KafkaException: the broker refused to create it.
    """
    name = reference_topic(settings)
    admin = make_admin(settings)
    if name in admin.list_topics(timeout=timeout).topics:
        return name
    replicas = {"min.insync.replicas": str(settings.min_insync_replicas)} if settings.replication_factor > 1 else {}
    futures = admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=settings.replication_factor,
                                            config={"cleanup.policy": "compact",
                                                    "max.message.bytes": str(settings.max_message_bytes), **replicas})],
        operation_timeout=timeout)
    for fut in futures.values():
        try:
            fut.result()
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
    deadline = time.monotonic() + timeout
    while name not in admin.list_topics(timeout=timeout).topics and time.monotonic() < deadline:
        time.sleep(0.2)
    return name


def encode(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode("utf-8")


def decode(value: Optional[bytes]) -> Optional[dict[str, Any]]:
    """The JSON object of a record value, or None (tombstone, garbage)."""
    if not value:
        return None
    try:
        obj = json.loads(value.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None


class ReferenceStore:
    """Reads and writes ``<ns>.drift-reference`` (see the module docstring).

    Args:
        settings: the namespace and Kafka connection.
        writer: id written into this store's ``reference`` records (default: a new uuid).
    """

    def __init__(self, settings: Settings, writer: Optional[str] = None) -> None:
        self.settings = settings
        self.topic = reference_topic(settings)
        self.writer = writer or str(uuid.uuid4())
        self._producer: Optional[Producer] = None
        self._consumer: Optional[Consumer] = None
        self._revision = 0

    # -- writing --------------------------------------------------------------------------
    def _produce(self, key: bytes, obj: dict[str, Any], timeout: float) -> None:
        if self._producer is None:
            self._producer = make_producer(self.settings)
        errors: list[str] = []
        self._producer.produce(self.topic, key=key, value=encode(obj),
                               on_delivery=lambda err, _m: errors.append(str(err)) if err else None)
        if self._producer.flush(timeout) or errors:
            raise RuntimeError(f"{self.topic}: record not delivered ({errors[:1] or 'timeout'})")

    def publish_reference(self, references: dict[str, Any], reason: str, timeout: float = 30.0,
                          by: Optional[str] = None) -> None:
        """Write ``references`` (``DriftMonitor.export_references()``) as the stored reference;
        ``by`` is the principal who asked for it (default :func:`conveyor.streams.ops.audit.principal`).

        Raises:
            RuntimeError: not acknowledged within ``timeout`` seconds.
        """
        self._revision += 1
        self._produce(REFERENCE_KEY, {**references, "writer": self.writer, "revision": self._revision,
                                      "updated_ms": int(time.time() * 1000), "reason": reason,
                                      "by": by or principal()}, timeout)

    def publish_command(self, action: str, windows: Optional[int] = None, timeout: float = 30.0) -> dict[str, Any]:
        """Write a control command (``pin`` with optional ``windows``, or ``reset``), signed with the
        principal who issued it (``by``); returns it.

        Raises:
            ValueError: an unknown action.
            RuntimeError: not acknowledged within ``timeout`` seconds.
        """
        if action not in ACTIONS:
            raise ValueError(f"unknown action {action!r}; expected one of {ACTIONS}")
        cmd: dict[str, Any] = {"action": action, "id": str(uuid.uuid4()), "issued_ms": int(time.time() * 1000),
                               "by": principal()}
        if windows is not None:
            cmd["windows"] = int(windows)
        self._produce(COMMAND_KEY, cmd, timeout)
        return cmd

    # -- reading --------------------------------------------------------------------------
    def _new_consumer(self) -> Consumer:
        return make_consumer(self.settings, f"{self.settings.namespace}.drift-reference-reader",
                             **{"statistics.interval.ms": 0, "enable.partition.eof": True})

    def read_latest(self, timeout: float = 15.0) -> tuple[Optional[dict[str, Any]], int]:
        """The last ``reference`` record (None if there is none) and the end offset of the
        topic when read; nothing is committed.

        Raises:
            RuntimeError: the topic does not exist, or could not be read to its end within
                ``timeout`` seconds.
        """
        marks = watermarks(self.settings, self.topic, timeout=timeout)
        if marks is None:
            raise RuntimeError(f"{self.topic} does not exist")
        latest: Optional[dict[str, Any]] = None
        try:
            for msg in read_range(self.settings, {(self.topic, p): lh for p, lh in marks.items()}, timeout=timeout):
                if msg.key() == REFERENCE_KEY:
                    latest = decode(msg.value())
        except TimeoutError as exc:
            raise RuntimeError(str(exc)) from exc
        return latest, marks.get(0, (0, 0))[1]

    def follow(self, from_offset: int) -> None:
        """Start following the topic at ``from_offset`` (see :meth:`poll`)."""
        if self._consumer is not None:
            self._consumer.close()
        self._consumer = self._new_consumer()
        self._consumer.assign([TopicPartition(self.topic, 0, max(int(from_offset), 0))])

    def poll(self, max_records: int = 100) -> list[tuple[bytes, dict[str, Any]]]:
        """New ``(key, value)`` records since the last call (non-blocking); ``reference``
        records written by this store's ``writer`` are left out."""
        if self._consumer is None:
            return []
        out: list[tuple[bytes, dict[str, Any]]] = []
        for msg in self._consumer.consume(max_records, timeout=0):
            err = msg.error()
            if err:
                if err.code() != KafkaError._PARTITION_EOF:
                    log.warning("drift: reading %s: %s", self.topic, err)
                continue
            obj = decode(msg.value())
            key = msg.key()
            if obj is None or key not in (REFERENCE_KEY, COMMAND_KEY):
                continue
            if key == REFERENCE_KEY and obj.get("writer") == self.writer:
                continue
            out.append((key, obj))
        return out

    def close(self) -> None:
        """Close the consumer and flush the producer."""
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
        if self._producer is not None:
            self._producer.flush(10)
            self._producer = None


def summary(record: Optional[dict[str, Any]]) -> dict[str, Any]:
    """What ``conveyor drift reference show`` prints: when, why and by whom it was set, and per
    signal its source, size, kept sample and time span (no vectors)."""
    if record is None:
        return {"reference": None}
    signals = {}
    for name, ref in (record.get("signals") or {}).items():
        state = ref.get("state", {})
        row = {"source": ref.get("source"), "windows": ref.get("windows"),
               "start_ms": ref.get("start_ms"), "end_ms": ref.get("end_ms")}
        if state.get("type") == "categorical":
            row["size"] = sum(int(v) for v in state.get("counts", {}).values())
            row["categories"] = len(state.get("counts", {}))
        else:
            row["size"] = state.get("count")
            row["sampled"] = len(state.get("keys", []))
            row["dim"] = state.get("dim")
        signals[name] = row
    return {"reference": {"updated_ms": record.get("updated_ms"), "reason": record.get("reason"),
                          "writer": record.get("writer"), "by": record.get("by"), "window_ms": record.get("window_ms"),
                          "signals": signals}}
