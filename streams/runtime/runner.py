"""The stream runner: poll → decode → process → sink write/flush → produce + commit.

One :class:`Runner` drives one processor (one consumer group) over its input topics and
its own retry topic. Per batch:

1. ``consume`` up to ``batch_size`` records, at most ``settings.max_in_flight_bytes``;
   retry records not yet due are held back by the :class:`~conveyor.streams.runtime.retry_gate.RetryGate`;
2. decode each value with the Avro serde;
3. ``processor.process_batch`` → one outcome per input: output records or an exception;
4. ``sink.write`` + ``sink.flush()`` the rows (index) — on
   :class:`~conveyor.sinks.base.SinkBackpressureError` every assigned partition is paused and the
   runner keeps polling (so the group does not evict it) until ``retry_after`` passes,
   then retries; nothing is dropped. Milvus rows are upserts by deterministic keys, so
   writing them again after a crash is harmless;
5. in one Kafka transaction (:mod:`conveyor.streams.kafka.delivery`): produce the outputs (keyed by doc
   id); route each failure with the stage's :class:`~conveyor.dlq.policy.FailurePolicy` —
   permanent → dead-letter topic, transient → retry topic with backoff (dead-letter topic
   once the schedule is used up), both in the :mod:`conveyor.dlq.envelope`; add the input
   offsets; commit.
   If anything fails, the transaction is aborted and the batch's partitions are rewound:
   the batch is processed again and read_committed consumers never see the aborted part.

Rebalances (cooperative-sticky) happen only inside ``consume``/``poll``, i.e. between
batches or while paused for backpressure; records of partitions revoked meanwhile are
left to their new owner (neither produced nor committed here). SIGTERM/SIGINT (handled
by :func:`conveyor.streams.runtime.supervisor.run_stages`, which calls :meth:`Runner.stop`) finish the
current batch, commit, and leave the group.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

from confluent_kafka import KafkaError, KafkaException, Message, TopicPartition

from conveyor.dlq.policy import FailurePolicy
from conveyor.processors.base import Processor
from conveyor.sinks.base import Sink
from conveyor.streams.config.settings import Settings
from conveyor.streams.kafka.records import consumed_topic
from conveyor.streams.kafka.serde import AvroSerde, key_bytes
from conveyor.streams.kafka.topics import dlq_role, retry_role, topic_name
from conveyor.streams.ops import acls
from conveyor.streams.runtime.clients import KafkaClients, RunnerClients
from conveyor.streams.runtime.failures import FailureRouter
from conveyor.streams.runtime.faults import injected_failure
from conveyor.streams.runtime.health import (
    DEFAULT_LIVENESS_S,
    HEALTH,
    Health,
    register_connection_checks,
)
from conveyor.streams.runtime.offsets import next_offsets, offset_ranges
from conveyor.streams.runtime.outputs import encode_outcomes
from conveyor.streams.runtime.pausing import PauseControl
from conveyor.streams.runtime.poison import MAX_CRASHES, CrashGuard, PoisonPillError
from conveyor.streams.runtime.retry_gate import RetryGate
from conveyor.streams.runtime.sink_writer import SinkWriter, StoppedWhileSinkUnavailable
from conveyor.streams.telemetry import metrics
from conveyor.streams.telemetry.logs import bind_processor

log = logging.getLogger(__name__)


@dataclass
class Stage:
    """What a runner runs: a processor, its input roles, its output role and/or sink.

    Built from the pipeline definition (:mod:`conveyor.streams.topology.pipeline`); any name works,
    its topics are ``<ns>.<role>``, ``<ns>.retry.<name>`` and ``<ns>.dlq.<name>``.
    """

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
    retry_delays: Optional[tuple[float, ...]] = None
    """Backoff of this stage's retries (default: ``settings.retry_delays_for(name)``)."""
    poll_timeout: float = 0.5
    """Seconds one ``consume`` call waits for records."""

    @property
    def name(self) -> str:
        """The processor's name (also its consumer group suffix)."""
        return self.processor.name


@dataclass
class _Input:
    msg: Message
    value: dict[str, Any]


class TopicsMissingError(RuntimeError):
    """A topic the runner needs does not exist (run ``conveyor topics create``)."""


class Runner:
    """Runs one :class:`Stage` against Kafka until stopped.

    Args:
        settings: connection settings (namespace decides topics and group).
        stage: the processor and its topics.
        batch_size: max records per batch.
        poll_timeout: seconds one ``consume`` call waits for records (default: the stage's).
        serde: shared Avro serde (a new one is made if omitted).
        health: where its liveness heartbeat and readiness checks go (default the process's).
        clients: makes its consumer, delivery and admin client (default :class:`KafkaClients`
            on ``settings``' cluster; unit tests pass an in-memory broker's).
    """

    def __init__(self, settings: Settings, stage: Stage, *, batch_size: Optional[int] = None,
                 poll_timeout: Optional[float] = None, serde: Optional[AvroSerde] = None,
                 health: Health = HEALTH, clients: Optional[RunnerClients] = None):
        self.settings = settings
        self.stage = stage
        self.name = stage.name
        self.batch_size = batch_size or stage.batch_size or settings.batch_size
        self.poll_timeout = stage.poll_timeout if poll_timeout is None else poll_timeout
        self.group_id = settings.group_id(self.name)
        self.input_topics = [topic_name(settings, r) for r in stage.input_roles]
        self.output_topic = topic_name(settings, stage.output_role) if stage.output_role else None
        self.dlq_topic = topic_name(settings, dlq_role(self.name))
        self.retry_topic = topic_name(settings, retry_role(self.name))
        delays = stage.retry_delays if stage.retry_delays is not None else settings.retry_delays_for(self.name)
        self.policy = FailurePolicy(delays, settings.retry_jitter)
        self.serde = serde or AvroSerde(settings)
        clients = clients or KafkaClients(settings)
        self.consumer = clients.consumer(self.group_id, stats_cb=metrics.stats_callback(self.name),
                                         **{"queued.max.messages.kbytes": max(1024, settings.max_in_flight_bytes // 1024),
                                            **stage.consumer_overrides})
        self.delivery = clients.delivery(self.name, settings.instance_id)
        self.admin = clients.admin()
        self.gate = RetryGate(self.consumer, [self.retry_topic])
        self.pauser = PauseControl(self.consumer, self.gate, self.name)
        self.crash_guard = CrashGuard(settings.home / "run" / "inflight" /
                                      f"{self.group_id}.{settings.instance_id or 'default'}.json")
        self._stop = threading.Event()
        self.joined = False
        self.health = health
        max_poll_s = stage.consumer_overrides.get("max.poll.interval.ms", DEFAULT_LIVENESS_S * 1000) / 1000
        self.heartbeat = health.heartbeat(f"{self.name}: loop", settings.liveness_seconds or max_poll_s)
        self.sink_writer = (SinkWriter(stage.sink, self.name, self.pauser, self.heartbeat, self._stop)
                            if stage.sink is not None else None)
        metrics.initialise(self.name)
        health.check(f"{self.name}: group joined", lambda: self.joined)
        register_connection_checks(health, self.admin, self.serde)
        if stage.sink is not None:
            health.check(f"{self.name}: sink", stage.sink.ready)
        self.failures = FailureRouter(self.name, stage.processor.version, self.group_id, self.policy,
                                      self.delivery, retry_topic=self.retry_topic, dlq_topic=self.dlq_topic)
        self.processed = 0

    @property
    def retried(self) -> int:
        """Records sent to the retry topic so far."""
        return self.failures.retried

    @property
    def dead_lettered(self) -> int:
        """Records sent to the dead-letter topic so far."""
        return self.failures.dead_lettered

    @property
    def paused(self) -> bool:
        """Whether the runner holds its partitions paused for backpressure."""
        return self.pauser.paused

    # -- lifecycle -----------------------------------------------------------------
    def stop(self) -> None:
        """Ask the loop to finish the current batch and exit."""
        self._stop.set()

    def check_topics(self, timeout: float = 30.0) -> None:
        """Fail fast when a topic this runner reads or writes does not exist.

        Raises:
            TopicsMissingError: naming the missing topics.
        """
        wanted = [*self.input_topics, self.retry_topic, self.dlq_topic]
        if self.output_topic:
            wanted.append(self.output_topic)
        existing = self.admin.list_topics(timeout=timeout).topics
        missing = [t for t in wanted if t not in existing]
        if missing:
            hidden = (f", or not visible to User:{self.settings.kafka_sasl_username} (it needs Describe on them: "
                      f"conveyor.streams.ops.acls)" if self.settings.kafka_sasl_username else "")
            raise TopicsMissingError(f"{self.name}: topics missing: {', '.join(missing)} "
                                     f"(run `conveyor topics create`){hidden}")

    def run(self, *, max_idle_seconds: Optional[float] = None) -> None:
        """Consume until stopped (or idle for ``max_idle_seconds`` with no retry pending),
        then close cleanly.

        Raises:
            TopicsMissingError: a needed topic does not exist.
            RegistryTlsError: the registry's HTTPS certificate does not verify.
            KafkaException: a fatal client error.
        """
        bind_processor(self.name)
        self.check_topics()
        self.serde.check_tls()
        self.consumer.subscribe([*self.input_topics, self.retry_topic], on_assign=self._on_assign,
                                on_revoke=self._on_revoke, on_lost=self._on_revoke)
        log.info("%s: consuming %s + %s as group %s", self.name, self.input_topics, self.retry_topic, self.group_id)
        idle_since = time.monotonic()
        try:
            while not self._stop.is_set():
                self.heartbeat.beat()
                self.gate.release_due(resume=not self.pauser.paused)
                metrics.RETRY_HELD.labels(self.name).set(len(self.gate.held))
                msgs = self._bound_bytes(self.gate.admit([m for m in self.next_batch() if self._usable(m)]))
                if not msgs:
                    if self.gate.held:
                        idle_since = time.monotonic()
                    elif max_idle_seconds is not None and time.monotonic() - idle_since > max_idle_seconds:
                        break
                    continue
                idle_since = time.monotonic()
                self.process_messages(msgs)
        finally:
            self.close()

    def close(self) -> None:
        """Abort/flush the producer, close the consumer (leaving the group), close sink and processor."""
        self.health.remove(f"{self.name}: ")
        try:
            self.delivery.close(30)
        finally:
            try:
                self.consumer.close()
            finally:
                if self.stage.sink is not None and self.stage.owns_sink:
                    self.stage.sink.close()
                self.stage.processor.close()
        log.info("%s: closed (processed %d, retried %d, dead-lettered %d)", self.name, self.processed,
                 self.retried, self.dead_lettered)

    def _on_assign(self, _consumer: object, partitions: list[TopicPartition]) -> None:
        self.joined = True
        metrics.REBALANCES.labels(self.name, "assigned").inc(len(partitions))
        self.pauser.on_assign(partitions)

    def _on_revoke(self, _consumer: object, partitions: list[TopicPartition]) -> None:
        metrics.REBALANCES.labels(self.name, "revoked").inc(len(partitions))
        self.gate.forget(partitions)

    def next_batch(self) -> list[Message]:
        """Up to ``batch_size`` records, never waiting for a batch to fill while records wait
        (adaptive batching): what the consumer has fetched already is taken at once; only when
        nothing is there does it wait (up to ``poll_timeout``) for the first record, then takes
        whatever arrived with it. Records that arrive while a batch is processed make the next
        batch. With ``settings.batch_linger_ms`` > 0 a short batch waits that long for more
        records first: fewer, larger transactions (less commit cost per record) for that much
        added latency."""
        msgs = self.consumer.consume(self.batch_size, 0)
        if not msgs:
            msgs = self.consumer.consume(1, self.poll_timeout)
            if not msgs:
                return []
        linger = self.settings.batch_linger_ms / 1000
        deadline = time.monotonic() + linger
        while len(msgs) < self.batch_size:
            left = deadline - time.monotonic()
            more = self.consumer.consume(self.batch_size - len(msgs), max(0.0, left) if linger else 0)
            msgs.extend(more)
            if not more or left <= 0:
                break
        return msgs

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

    def _bound_bytes(self, msgs: list[Message]) -> list[Message]:
        """Keep the batch within ``max_in_flight_bytes`` (at least one record); the rest is
        sought back and read by the next batch."""
        total = 0
        kept: list[Message] = []
        for i, m in enumerate(msgs):
            size = len(m.value() or b"") + len(m.key() or b"")
            if kept and total + size > self.settings.max_in_flight_bytes:
                self._rewind(msgs[i:], settle=0.0)
                break
            total += size
            kept.append(m)
        metrics.IN_FLIGHT_BYTES.labels(self.name).set(total)
        return kept

    # -- one batch -------------------------------------------------------------------
    def process_messages(self, msgs: Sequence[Message]) -> None:
        """Process one batch of consumed messages and commit it (see the module docstring).

        Raises:
            KafkaException: a fatal client error. Delivery failures are handled by
                aborting and rewinding the batch, not raised.
        """
        started = time.perf_counter()
        failures: list[tuple[Message, BaseException]] = []
        todo, poison, put_back = self.crash_guard.admit(msgs)
        if put_back:
            self._rewind(put_back, settle=0.0)
        msgs = todo
        if poison is not None:
            msgs = [poison, *todo]
            failures.append((poison, PoisonPillError(
                f"the {self.name} process crashed {MAX_CRASHES} times while processing this record alone")))
        metrics.IN_FLIGHT.labels(self.name).set(len(msgs))
        inputs: list[_Input] = []
        for msg in todo:
            metrics.RECORDS_IN.labels(self.name, msg.topic()).inc()
            previous = self.failures.previous(msg)
            injected = injected_failure(self.name, msg.key(), previous.attempt if previous else 0,
                                        self.settings.fault_transient_rate)
            if injected is not None:
                failures.append((msg, injected))
                continue
            try:
                inputs.append(_Input(msg, self.serde.decode(consumed_topic(msg), msg.value())))
            except Exception as exc:  # noqa: BLE001 - undecodable input: dead letter or retry
                failures.append((msg, exc))
        try:
            outcomes = self.stage.processor.process_batch([i.value for i in inputs]) if inputs else []
            if len(outcomes) != len(inputs):
                raise RuntimeError(f"{self.name} returned {len(outcomes)} outcomes for {len(inputs)} inputs")
        except Exception as exc:  # noqa: BLE001 - the processor failed as a whole, not per record
            outcomes = [exc] * len(inputs)
        encoded, rows, sunk = encode_outcomes(self.serde, self.output_topic, [i.msg for i in inputs], outcomes,
                                              failures, self.settings.max_message_bytes)
        if self.sink_writer is not None:
            try:
                failures.extend(self.sink_writer.write(rows, sunk))
            except StoppedWhileSinkUnavailable as exc:  # redelivered after the restart
                log.warning("%s: %s; the batch stays uncommitted", self.name, exc)
                self._rewind(msgs, settle=0.0)
                return
            metrics.SINK_ROWS.labels(self.name).inc(len(rows))
        trace_ids = {id(i.msg): (i.value or {}).get("trace_id") for i in inputs if isinstance(i.value, dict)}
        owned = {(tp.topic, tp.partition) for tp in self.consumer.assignment()}
        mine = [m for m in msgs if (m.topic(), m.partition()) in owned]
        try:
            self.delivery.begin()
            for msg, values in encoded:
                if (msg.topic(), msg.partition()) in owned:
                    self.emit(values)
            for msg, error in failures:
                if (msg.topic(), msg.partition()) in owned:
                    self.failures.route(msg, error, trace_ids.get(id(msg)))
            commit_started = time.perf_counter()
            self.delivery.commit(self.consumer, next_offsets(mine))
            metrics.COMMIT_LATENCY.labels(self.name).observe(time.perf_counter() - commit_started)
        except (KafkaException, BufferError) as exc:
            denied = self._denial(exc)
            log.error("%s: batch not committed (%s); aborting and rewinding", self.name, denied or exc)
            self.delivery.abort(exc)
            self._rewind(mine)
            return
        self.crash_guard.committed(mine)
        self.processed += len(mine)
        metrics.IN_FLIGHT.labels(self.name).set(0)
        metrics.IN_FLIGHT_BYTES.labels(self.name).set(0)
        metrics.BATCH_LATENCY.labels(self.name).observe(time.perf_counter() - started)

    def _denial(self, exc: BaseException) -> Optional[str]:
        """The missing ACL an authorization failure of the batch shows, else ``None``
        (:func:`conveyor.streams.ops.acls.explain_denial`)."""
        written = self.delivery.topics or {t for t in (self.output_topic, self.retry_topic, self.dlq_topic) if t}
        return acls.explain_denial(self.settings, self.name, exc, written=written, group_id=self.group_id,
                                   transactional_id=getattr(self.delivery, "transactional_id", "?"))

    def emit(self, values: list[tuple[str, bytes]]) -> None:
        """Produce encoded outputs ``(doc_id, value)`` to the output topic, in the batch's transaction.

        Raises:
            KafkaException: the broker refused a record (the batch is aborted and retried).
        """
        assert self.output_topic is not None
        for doc_id, value in values:
            self.delivery.produce(self.output_topic, key=key_bytes(doc_id), value=value)
            metrics.RECORDS_OUT.labels(self.name, self.output_topic).inc()

    def _rewind(self, msgs: Sequence[Message], settle: float = 1.0) -> None:
        for (t, p), (o, _) in offset_ranges(msgs).items():
            try:
                self.consumer.seek(TopicPartition(t, p, o))
            except KafkaException as exc:  # partition revoked meanwhile: its new owner re-reads it
                log.warning("%s: cannot rewind %s[%d]: %s", self.name, t, p, exc)
        time.sleep(settle)
