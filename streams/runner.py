"""The stream runner: poll → decode → process → produce / sink write → flush → commit.

One :class:`Runner` drives one processor (one consumer group). Per batch:

1. ``consume`` up to ``batch_size`` records (short timeout);
2. decode each value with the Avro serde — undecodable records are dead-lettered;
3. ``processor.process_batch`` → one outcome per input: output records or an
   exception. A permanent error dead-letters that record (original key, value,
   headers and timestamp kept); a transient one (``permanent = False``: Milvus or
   the registry unavailable) produces nothing for the batch, pauses, backs off
   (1 s doubling to 30 s) and reads the batch again — a slow downstream causes
   backpressure, never dead letters or loss;
4. produce outputs (keyed by doc id) and/or ``sink.write`` the rows;
5. ``sink.flush()`` — on :class:`~sinks.base.SinkBackpressureError` the assigned
   partitions are paused and the runner keeps polling (so the group does not
   evict it) until ``retry_after`` passes, then retries; nothing is dropped;
6. wait for every produced record's acknowledgement, then commit the offsets.
   If an output or dead letter is not acknowledged, nothing is committed and the
   batch's partitions are rewound, so the batch is processed again.

SIGTERM/SIGINT (handled by :func:`streams.supervisor.run_stages`, which calls
:meth:`Runner.stop`) finish the current batch, commit, and leave the group.
Subclasses can override :meth:`Runner.deliver` (e.g. with Kafka transactions)
and :meth:`Runner.route_failure` (e.g. retry topics) without touching the loop.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

from confluent_kafka import KafkaError, KafkaException, Message, TopicPartition

from dlq.envelope import Origin, dead_letter_headers, exception_name
from processors.base import Processor
from sinks.base import Sink, SinkBackpressureError
from streams import metrics
from streams.kafka import DeliveryTracker, make_consumer, make_producer, produce
from streams.serde import AvroSerde, key_bytes
from streams.settings import Settings
from streams.topics import catalogue, dlq_role

log = logging.getLogger(__name__)


@dataclass
class Stage:
    """What a runner runs: a processor, its input roles, its output role and/or sink."""

    processor: Processor
    input_roles: tuple[str, ...]
    output_role: Optional[str] = None
    sink: Optional[Sink] = None
    owns_sink: bool = True
    """Whether the runner closes the sink when it stops (False for a sink shared
    with other stages of the process, closed by whoever made it)."""
    batch_size: Optional[int] = None
    """Records per batch for this stage (default: ``settings.batch_size``)."""
    consumer_overrides: dict[str, Any] = field(default_factory=dict)
    """librdkafka consumer settings of this stage, e.g. a longer ``max.poll.interval.ms``."""

    @property
    def name(self) -> str:
        """The processor's name (also its consumer group suffix)."""
        return self.processor.name


@dataclass
class _Input:
    msg: Message
    value: Optional[dict[str, Any]] = None


class Runner:
    """Runs one :class:`Stage` against Kafka until stopped.

    Args:
        settings: connection settings (namespace decides topics and group).
        stage: the processor and its topics.
        batch_size: max records per batch.
        poll_timeout: seconds one ``consume`` call waits for records.
        serde: shared Avro serde (a new one is made if omitted).
    """

    def __init__(self, settings: Settings, stage: Stage, *, batch_size: Optional[int] = None,
                 poll_timeout: float = 0.5, serde: Optional[AvroSerde] = None):
        self.settings = settings
        self.stage = stage
        self.name = stage.name
        self.batch_size = batch_size or stage.batch_size or settings.batch_size
        self.poll_timeout = poll_timeout
        self.group_id = settings.group_id(self.name)
        specs = catalogue(settings)
        self.input_topics = [specs[r].name for r in stage.input_roles]
        self.output_topic = specs[stage.output_role].name if stage.output_role else None
        self.dlq_topic = specs[dlq_role(self.name)].name
        self.serde = serde or AvroSerde(settings)
        self.consumer = make_consumer(settings, self.group_id, stats_cb=metrics.stats_callback(self.name),
                                      **stage.consumer_overrides)
        self.producer = make_producer(settings)
        self.delivery = DeliveryTracker()
        self._stop = threading.Event()
        self.paused = False
        self._transient_backoff = 0.0
        self.processed = 0
        self.dead_lettered = 0

    # -- lifecycle -----------------------------------------------------------------
    def stop(self) -> None:
        """Ask the loop to finish the current batch and exit."""
        self._stop.set()

    def run(self, *, max_idle_seconds: Optional[float] = None) -> None:
        """Consume until stopped (or idle for ``max_idle_seconds``), then close cleanly."""
        self.consumer.subscribe(self.input_topics)
        log.info("%s: consuming %s as group %s", self.name, self.input_topics, self.group_id)
        idle_since = time.monotonic()
        try:
            while not self._stop.is_set():
                msgs = self.consumer.consume(self.batch_size, self.poll_timeout)
                msgs = [m for m in msgs if self._usable(m)]
                if not msgs:
                    if max_idle_seconds is not None and time.monotonic() - idle_since > max_idle_seconds:
                        break
                    continue
                idle_since = time.monotonic()
                self.process_messages(msgs)
        finally:
            self.close()

    def close(self) -> None:
        """Flush the producer, close the consumer (leaving the group), close sink and processor."""
        try:
            self.producer.flush(30)
        finally:
            try:
                self.consumer.close()
            finally:
                if self.stage.sink is not None and self.stage.owns_sink:
                    self.stage.sink.close()
                self.stage.processor.close()
        log.info("%s: closed (processed %d, dead-lettered %d)", self.name, self.processed, self.dead_lettered)

    def _usable(self, msg: Message) -> bool:
        err = msg.error()
        if err is None:
            return True
        if err.code() == KafkaError._PARTITION_EOF:
            return False
        if err.fatal():
            raise KafkaException(err)
        log.warning("%s: consumer error: %s", self.name, err)
        return False

    # -- one batch -------------------------------------------------------------------
    def process_messages(self, msgs: Sequence[Message]) -> None:
        """Process, deliver and commit one batch of consumed messages.

        Raises:
            KafkaException: a fatal client error. Delivery failures are handled by
                rewinding the batch, not raised.
        """
        started = time.perf_counter()
        metrics.IN_FLIGHT.labels(self.name).set(len(msgs))
        self.delivery.reset()
        failures: list[tuple[Message, BaseException]] = []
        inputs: list[_Input] = []
        for msg in msgs:
            metrics.RECORDS_IN.labels(self.name, msg.topic()).inc()
            try:
                inputs.append(_Input(msg, self.serde.decode(msg.topic(), msg.value())))
            except Exception as exc:  # noqa: BLE001 - undecodable input is a dead letter
                failures.append((msg, exc))
        try:
            outcomes = self.stage.processor.process_batch([i.value for i in inputs]) if inputs else []
            if len(outcomes) != len(inputs):
                raise RuntimeError(f"{self.name} returned {len(outcomes)} outcomes for {len(inputs)} inputs")
        except Exception as exc:  # noqa: BLE001 - the processor failed as a whole, not per record
            outcomes = [exc] * len(inputs)
        ok: list[tuple[Message, list[dict[str, Any]]]] = []
        for item, outcome in zip(inputs, outcomes):
            if isinstance(outcome, BaseException):
                failures.append((item.msg, outcome))
            else:
                ok.append((item.msg, outcome))
        # Encode every output before producing anything, so one bad output fails one record.
        encoded: list[tuple[Message, list[tuple[str, bytes]]]] = []
        rows: list[dict[str, Any]] = []
        sunk: list[Message] = []
        for msg, outputs in ok:
            try:
                if self.output_topic is None:
                    rows.extend(outputs)
                    if outputs:
                        sunk.append(msg)
                else:
                    encoded.append((msg, [(o["doc_id"], self.serde.encode(self.output_topic, o)) for o in outputs]))
            except Exception as exc:  # noqa: BLE001 - this record's dead letter (or a retry)
                failures.append((msg, exc))
        transient = next((e for _, e in failures if not getattr(e, "permanent", True)), None)
        if transient is not None:
            self._retry_later(msgs, transient)
            return
        for msg, values in encoded:
            self.emit(msg, values)
        for msg, exc in failures:
            self.route_failure(msg, exc)
        try:
            if self.stage.sink is not None:
                self._write_sink(rows, sunk)
                metrics.SINK_ROWS.labels(self.name).inc(len(rows))
            self.deliver(msgs)
        except KafkaException as exc:
            log.error("%s: batch not acknowledged (%s); rewinding", self.name, exc)
            self._rewind(msgs)
            return
        self._transient_backoff = 0.0
        self.processed += len(msgs)
        metrics.IN_FLIGHT.labels(self.name).set(0)
        metrics.BATCH_LATENCY.labels(self.name).observe(time.perf_counter() - started)

    TRANSIENT_BACKOFF_INITIAL = 1.0
    TRANSIENT_BACKOFF_MAX = 30.0
    """Backoff (seconds) before a batch with a transient failure is read again: doubling from
    1 s to 30 s, the range Kafka clients use for reconnect backoff (librdkafka's
    ``reconnect.backoff.ms`` / ``reconnect.backoff.max.ms`` defaults are 100 ms and 10 s)."""

    def _retry_later(self, msgs: Sequence[Message], exc: BaseException) -> None:
        """A record failed transiently (e.g. Milvus or the registry unavailable): produce
        nothing, pause, wait an exponential backoff while polling, then read the batch again."""
        self._transient_backoff = min(self.TRANSIENT_BACKOFF_MAX,
                                      max(self.TRANSIENT_BACKOFF_INITIAL, 2 * self._transient_backoff))
        metrics.TRANSIENT_RETRIES.labels(self.name, exception_name(exc)).inc()
        log.warning("%s: transient failure (%s: %s); retrying the batch in %.1fs", self.name,
                    type(exc).__name__, exc, self._transient_backoff)
        self._pause()
        self._wait_paused(self._transient_backoff)
        self._resume()
        self._rewind(msgs, settle=0.0)

    def emit(self, msg: Message, values: list[tuple[str, bytes]]) -> None:
        """Produce the encoded outputs ``(doc_id, value)`` of ``msg`` to the output topic.

        A record the broker refuses outright (e.g. larger than ``message.max.bytes``) makes
        ``msg`` a dead letter instead.
        """
        assert self.output_topic is not None
        for doc_id, value in values:
            try:
                produce(self.producer, self.output_topic, key=key_bytes(doc_id), value=value,
                        on_delivery=self.delivery.callback)
            except KafkaException as exc:
                self.route_failure(msg, exc)
                return
            metrics.RECORDS_OUT.labels(self.name, self.output_topic).inc()

    def route_failure(self, msg: Message, exc: BaseException) -> None:
        """Send ``msg`` unchanged to the dead-letter topic with error headers."""
        ts_type, ts = msg.timestamp()
        origin = Origin(msg.topic(), msg.partition(), msg.offset(), ts if ts and ts > 0 else 0)
        headers = dead_letter_headers(msg.headers(), exc, origin, processor=self.name,
                                      version=self.stage.processor.version, group=self.group_id)
        log.warning("%s: dead-lettering %s[%d]@%d: %s: %s", self.name, origin.topic, origin.partition,
                    origin.offset, type(exc).__name__, exc)
        produce(self.producer, self.dlq_topic, key=msg.key(), value=msg.value(), headers=headers,
                timestamp=origin.timestamp or None, on_delivery=self.delivery.callback)
        metrics.ERRORS.labels(self.name, exception_name(exc)).inc()
        metrics.DEAD_LETTERED.labels(self.name).inc()
        self.dead_lettered += 1

    def deliver(self, msgs: Sequence[Message]) -> None:
        """Wait for every produced record, then commit the batch's offsets synchronously.

        Only partitions still assigned are committed (a cooperative rebalance may have
        moved some away meanwhile; their new owner re-reads them). A failed commit is
        logged, not retried by reprocessing: the outputs are already acknowledged, and
        the next commit covers these offsets.

        Raises:
            KafkaException: a produced record was not acknowledged.
        """
        self.delivery.wait(self.producer)
        owned = {(tp.topic, tp.partition) for tp in self.consumer.assignment()}
        offsets = [tp for tp in self._next_offsets(msgs) if (tp.topic, tp.partition) in owned]
        if not offsets:
            return
        try:
            self.consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            log.warning("%s: offset commit failed (%s); the next commit covers it", self.name, exc)

    @staticmethod
    def _offset_ranges(msgs: Sequence[Message]) -> dict[tuple[str, int], tuple[int, int]]:
        """``{(topic, partition): (first offset, last offset)}`` of a batch."""
        ranges: dict[tuple[str, int], tuple[int, int]] = {}
        for m in msgs:
            key, o = (m.topic(), m.partition()), m.offset()
            lo, hi = ranges.get(key, (o, o))
            ranges[key] = (min(lo, o), max(hi, o))
        return ranges

    @classmethod
    def _next_offsets(cls, msgs: Sequence[Message]) -> list[TopicPartition]:
        return [TopicPartition(t, p, hi + 1) for (t, p), (_, hi) in cls._offset_ranges(msgs).items()]

    def _rewind(self, msgs: Sequence[Message], settle: float = 1.0) -> None:
        for (t, p), (o, _) in self._offset_ranges(msgs).items():
            try:
                self.consumer.seek(TopicPartition(t, p, o))
            except KafkaException as exc:  # partition revoked meanwhile: its new owner re-reads it
                log.warning("%s: cannot rewind %s[%d]: %s", self.name, t, p, exc)
        time.sleep(settle)

    # -- backpressure ----------------------------------------------------------------
    def _write_sink(self, rows: list[dict[str, Any]], sources: list[Message]) -> None:
        """Write and flush ``rows``. A permanent sink error (not backpressure) dead-letters
        every input that produced rows in this batch and discards the buffered rows, so one
        rejected row cannot block the partition forever."""
        sink = self.stage.sink
        assert sink is not None
        try:
            if rows:
                try:
                    sink.write(rows)
                except SinkBackpressureError:
                    pass  # the rows are buffered (Sink contract); the flush below waits for the sink
            self._flush_sink()
        except KafkaException:
            raise
        except Exception as exc:  # noqa: BLE001 - the sink rejected the batch permanently
            log.error("%s: sink rejected the batch (%s: %s); dead-lettering its %d inputs",
                      self.name, type(exc).__name__, exc, len(sources))
            sink.discard()
            self._resume()
            for msg in sources:
                self.route_failure(msg, exc)

    STOP_FLUSH_ATTEMPTS = 3
    """Flush attempts (each at most 2 s apart) still made after a stop request while the sink
    is unavailable: a shutdown waits at most a few seconds, then leaves the batch uncommitted
    for redelivery. A project choice, not taken from elsewhere."""

    def _flush_sink(self) -> None:
        """Flush the sink; on backpressure pause partitions and keep polling until it drains.

        Raises:
            KafkaException: stopped while the sink stayed unavailable; the batch is
                not committed and will be redelivered.
        """
        sink = self.stage.sink
        assert sink is not None
        attempts_after_stop = 0
        while True:
            try:
                sink.flush()
                break
            except SinkBackpressureError as exc:
                metrics.BACKPRESSURE.labels(self.name).inc()
                log.warning("%s: sink backpressure (%s); pausing for %.1fs", self.name, exc, exc.retry_after)
                self._pause()
                if self._stop.is_set():
                    attempts_after_stop += 1
                    if attempts_after_stop > self.STOP_FLUSH_ATTEMPTS:
                        raise KafkaException(KafkaError(KafkaError._DESTROY,
                                                        "stopped while the sink was unavailable"))
                    time.sleep(min(exc.retry_after, 2.0))
                else:
                    self._wait_paused(exc.retry_after)
        self._resume()

    def _pause(self) -> None:
        if not self.paused:
            assignment = self.consumer.assignment()
            if assignment:
                self.consumer.pause(assignment)
            self.paused = True
            metrics.PAUSED.labels(self.name).set(1)

    def _resume(self) -> None:
        if self.paused:
            assignment = self.consumer.assignment()
            if assignment:
                self.consumer.resume(assignment)
            self.paused = False
            metrics.PAUSED.labels(self.name).set(0)

    def _wait_paused(self, seconds: float) -> None:
        """Poll (serving group heartbeats and rebalances) for ``seconds`` while paused.

        A message returned despite the pause is sought back so it is not lost.
        """
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not self._stop.is_set():
            msg = self.consumer.poll(min(0.5, max(0.0, deadline - time.monotonic())))
            if msg is not None and msg.error() is None:
                self.consumer.seek(TopicPartition(msg.topic(), msg.partition(), msg.offset()))
            assignment = self.consumer.assignment()
            if assignment:
                self.consumer.pause(assignment)  # newly assigned partitions stay paused too
