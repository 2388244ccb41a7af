"""State shared by the agents and the timer of one drift app: :class:`DriftRuntime`.

The input topics are read as raw bytes and decoded with
:class:`conveyor.streams.kafka.serde.AvroSerde` in the agents. An undecodable record is logged,
counted (``conveyor_drift_decode_errors_total{topic}`` and ``conveyor_errors_total``)
and sent unchanged to the ``dlq.drift`` topic with the dead-letter headers.

Closing windows is split in two: :meth:`DriftRuntime.harvest_closable` reads the faust
tables (event-loop thread: only the agents write them), :meth:`DriftRuntime.close`
runs the tests, applies reference commands and stores the reference (a worker thread:
MMD permutations take ~0.1 s per window). :meth:`DriftRuntime.tick` does both.
"""
from __future__ import annotations

import logging
import threading
from typing import Any, Optional

from confluent_kafka import Producer
from prometheus_client import Counter

from conveyor.dlq import envelope
from conveyor.dlq.envelope import Origin, exception_name, original_timestamp
from conveyor.dlq.policy import FailurePolicy
from conveyor.streams.config.settings import Settings
from conveyor.streams.drift import publish, reference, tables
from conveyor.streams.drift.config import PROCESSOR, DriftConfig
from conveyor.streams.drift.monitor import (
    PRODUCER_VERSION,
    StreamClock,
    WindowAggregate,
)
from conveyor.streams.kafka.clients import produce
from conveyor.streams.kafka.serde import AvroSerde, DecodeError
from conveyor.streams.kafka.topics import dlq_role, topic_name
from conveyor.streams.telemetry import metrics

log = logging.getLogger(__name__)

DECODE_ERRORS = Counter("conveyor_drift_decode_errors_total",
                        "Input records the drift monitor could not decode (dead-lettered)", ["topic"])
LATE_RECORDS = Counter("conveyor_drift_late_records_total",
                       "Input records whose window was already closed (ignored)", ["topic"])


class DriftRuntime:
    """State shared by the agents and the timer of one drift app (``app.conveyor_drift``)."""

    def __init__(self, settings: Settings, config: DriftConfig) -> None:
        self.settings = settings
        self.config = config
        self.monitor = config.monitor()
        self.clock = StreamClock(idle_seconds=config.idle)
        self.serde = AvroSerde(settings)
        self.embedded_topic = topic_name(settings, "embedded")
        self.predictions_topic = topic_name(settings, "predictions")
        self.drift_topic = topic_name(settings, "drift")
        self.dlq_topic = topic_name(settings, dlq_role(PROCESSOR))
        self.policy = FailurePolicy()  # the monitor only observes: no retry topic, failures are dead letters
        self._producer: Optional[Producer] = None
        self._producer_lock = threading.Lock()
        self.reports_published = 0
        #: Reports not delivered yet (retried on the next tick; at-least-once).
        self.pending: list[dict[str, Any]] = []
        self.labels_table: Any = None
        self.counts_table: Any = None
        self.samples_table: Any = None
        #: Per partition and window, the documents written to the samples table.
        self.admission = tables.Admission(config.window_sample)
        #: The stored reference (``<ns>.drift-reference``), when ``config.store_reference``.
        self.store: Optional[reference.ReferenceStore] = None
        self._stored_revision = self.monitor.revision
        #: Dimension of the first doc vector seen.
        self.vector_dim: Optional[int] = None

    # -- decoding ------------------------------------------------------------------------
    def decode(self, topic: str, value: Optional[bytes], message: Any = None) -> Optional[dict[str, Any]]:
        """The Avro record, or None if it cannot be decoded: then it is logged, counted
        and, when the faust ``message`` is given, sent to the drift dead-letter topic."""
        metrics.RECORDS_IN.labels(PROCESSOR, topic).inc()
        try:
            record = self.serde.decode(topic, value)
            int(record["event_time"])
            return record
        except (DecodeError, KeyError, TypeError, ValueError) as exc:
            DECODE_ERRORS.labels(topic).inc()
            log.warning("drift: skipping undecodable record on %s: %s", topic, exc)
            self.dead_letter(message, exc)
            return None

    def dead_letter(self, message: Any, exc: BaseException) -> None:
        """Send a faust ``message`` (topic, partition, offset, key, value, headers, timestamp in
        seconds) unchanged to ``dlq.drift`` with the ``conveyor.dlq.*`` headers (its timestamp in
        ``conveyor.dlq.origin.timestamp``; the dead letter is stamped with the time it is written),
        and wait for the broker's acknowledgement. ``message=None`` only counts the error."""
        metrics.ERRORS.labels(PROCESSOR, exception_name(exc)).inc()
        if message is None:
            return
        headers = message.headers or []
        headers = list(headers.items()) if isinstance(headers, dict) else list(headers)
        ts = original_timestamp(headers, int((message.timestamp or 0) * 1000))
        origin = Origin(message.topic, message.partition, message.offset, ts)
        route = self.policy.route(exc, origin, previous=None, processor=PROCESSOR, version=PRODUCER_VERSION,
                                  group=self.settings.group_id(PROCESSOR))
        producer = self._get_producer()
        produce(producer, self.dlq_topic, key=message.key, value=message.value,
                headers=envelope.attach(headers, route.failure, route.prefix))
        if producer.flush(30):
            log.error("drift: dead letter for %s[%d]@%d not acknowledged", message.topic, message.partition,
                      message.offset)
        else:
            metrics.DEAD_LETTERED.labels(PROCESSOR, route.failure.error_class).inc()

    def check_dimension(self, dim: int) -> None:
        """Remember the first doc vector dimension seen.

        Raises:
            ValueError: ``dim`` differs from it (such a record is dead-lettered).
        """
        if self.vector_dim is None:
            self.vector_dim = int(dim)
        elif int(dim) != self.vector_dim:
            raise ValueError(f"embedding dimension changed: {dim} != {self.vector_dim}")

    def is_late(self, topic: str, ts_ms: int) -> bool:
        """Whether event time ``ts_ms`` falls in an already closed window (counted per topic)."""
        if self.monitor.is_closed(self.monitor.window_start(ts_ms)):
            LATE_RECORDS.labels(topic).inc()
            return True
        return False

    def admit(self, topic: str, partition: int, value: Optional[bytes],
              message: Any = None) -> Optional[tuple[dict[str, Any], int]]:
        """Decode one input record of ``topic``/``partition`` and advance the watermark
        with its event time: ``(record, event_time_ms)``, or None when it is undecodable
        (dead-lettered) or its window is already closed (counted; see :meth:`decode`,
        :meth:`is_late`)."""
        record = self.decode(topic, value, message)
        if record is None:
            return None
        ts_ms = int(record["event_time"])
        self.clock.observe(ts_ms, source=(topic, partition))
        if self.is_late(topic, ts_ms):
            return None
        return record, ts_ms

    # -- reference store -------------------------------------------------------------------
    def open_store(self, timeout: float = 30.0) -> None:
        """Create/read ``<ns>.drift-reference``: load the stored reference into the monitor
        and follow the topic for commands. Blocking (Kafka round trips).

        Raises:
            KafkaException, RuntimeError: the topic cannot be created or read.
        """
        reference.ensure_topic(self.settings, timeout)
        store = reference.ReferenceStore(self.settings)
        latest, end = store.read_latest(timeout)
        if latest and latest.get("signals"):
            try:
                loaded = self.monitor.load_references(latest)
                log.info("drift: loaded the stored reference of %s (%s)", ", ".join(loaded), latest.get("reason"))
            except (KeyError, TypeError, ValueError) as exc:
                log.warning("drift: ignoring an unreadable stored reference: %s", exc)
        store.follow(end)
        self._stored_revision = self.monitor.revision
        self.store = store

    def apply_commands(self) -> None:
        """Apply what arrived on the reference topic: a ``reference`` written elsewhere
        (``conveyor drift reference pin --texts``/``reset``) replaces the monitor's; a
        ``pin`` command pins the last closed windows. Non-blocking."""
        if self.store is None:
            return
        for key, obj in self.store.poll():
            try:
                if key == reference.REFERENCE_KEY:
                    signals = self.monitor.load_references(obj)
                    self._stored_revision = self.monitor.revision
                    log.warning("drift: reference replaced (%s): %s", obj.get("reason"), ", ".join(signals) or "none")
                elif obj.get("action") == "pin":
                    signals = self.monitor.pin_reference(obj.get("windows"))
                    log.warning("drift: pinned the last %s window(s) as the reference of %s",
                                obj.get("windows") or self.monitor.reference_windows, ", ".join(signals))
                    self.store_reference(f"pin {obj.get('id')}", by=obj.get("by"))
            except (KeyError, TypeError, ValueError) as exc:
                log.warning("drift: cannot apply %s %s: %s", key.decode(), obj.get("action", ""), exc)

    def store_reference(self, reason: str, by: Optional[str] = None) -> None:
        """Write the monitor's references to the store (if any), recording ``by`` (who asked; default
        this worker's own principal) with them. Blocking.

        Raises:
            RuntimeError: not acknowledged.
        """
        if self.store is None:
            return
        self.store.publish_reference(self.monitor.export_references(), reason, by=by)
        self._stored_revision = self.monitor.revision

    # -- closing windows -----------------------------------------------------------------
    def harvest(self, limit_ms: int) -> list[WindowAggregate]:
        """Aggregates of every window in the tables that ends at or before ``limit_ms``
        and is not closed yet (partitions summed); see :func:`conveyor.streams.drift.tables.harvest`."""
        return tables.harvest(self.monitor, self.labels_table, self.counts_table, self.samples_table, limit_ms)

    def harvest_closable(self, wall_ms: Optional[int] = None) -> tuple[list[WindowAggregate], Optional[int]]:
        """The windows the watermark closes, read from the tables, and the watermark
        (``([], None)`` when nothing closes). Call it on the event-loop thread."""
        watermark = self.clock.now(wall_ms)
        if watermark is None:
            return [], None
        limit = self.monitor.closable_before(watermark)
        if self.monitor.closed_until_ms is not None and limit <= self.monitor.closed_until_ms:
            return [], None
        self.admission.forget_before(limit)
        return self.harvest(limit), watermark

    def close(self, aggregates: list[WindowAggregate], watermark: Optional[int]) -> list[dict[str, Any]]:
        """Apply reference commands, close the harvested windows (their reports are
        returned, not yet published) and store a changed reference. Blocking."""
        self.apply_commands()
        reports: list[dict[str, Any]] = []
        if watermark is not None:
            for agg in aggregates:
                self.monitor.add_window(agg)
            reports = self.monitor.close_windows(watermark)
        if self.store is not None and self.monitor.revision != self._stored_revision:
            try:
                self.store_reference("learned" if self.monitor.references else "reset")
            except RuntimeError as exc:  # retried at the next tick (revision still differs)
                log.warning("drift: storing the reference failed: %s", exc)
        return reports

    def tick(self, wall_ms: Optional[int] = None) -> list[dict[str, Any]]:
        """Close what the watermark allows; returns the new reports (not yet published)."""
        return self.close(*self.harvest_closable(wall_ms))

    # -- output ----------------------------------------------------------------------------
    def _get_producer(self) -> Producer:
        with self._producer_lock:
            if self._producer is None:
                from conveyor.streams.kafka.clients import make_producer

                self._producer = make_producer(self.settings)
            return self._producer

    def publish(self, reports: list[dict[str, Any]], timeout: float = 30.0) -> None:
        """Produce ``reports`` (key = signal) and wait for delivery; set the gauges.

        Blocking: call it from a thread (the timer uses the default executor).

        Raises:
            RuntimeError: a report was not delivered within ``timeout`` seconds.
        """
        if not reports:
            return
        publish.produce_reports(self._get_producer(), self.serde, self.drift_topic, reports, timeout)
        self.reports_published += len(reports)
        publish.record_published(reports, self.drift_topic)

    def shutdown(self) -> None:
        """Flush and drop the report producer (if one was made); close the reference store."""
        with self._producer_lock:
            if self._producer is not None:
                self._producer.flush(10)
                self._producer = None
        if self.store is not None:
            self.store.close()
            self.store = None
