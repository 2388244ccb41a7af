"""How a runner makes one batch's outputs and input offsets durable.

:class:`TransactionalDelivery` (the default) is Kafka's consume-transform-produce
exactly-once pattern (KIP-98, KIP-447): every record a batch produces — outputs, retry
records, dead letters — and the batch's input offsets are committed in one transaction
(``send_offsets_to_transaction`` with the consumer's group metadata, then
``commit_transaction``). Downstream consumers read with ``isolation.level=read_committed``,
so they never see the outputs of an aborted or crashed batch, and a re-delivered batch
cannot produce a second copy of a committed result.

:class:`AtLeastOnceDelivery` (``CONVEYOR_TRANSACTIONS=0``) waits for every produced
record's acknowledgement (idempotent producer, acks=all) and then commits the offsets with
the consumer: no loss, but a crash between the two can duplicate outputs.

Either way, if anything is not acknowledged the batch is not committed: the runner
aborts, rewinds and processes the batch again.
"""
from __future__ import annotations

import functools
import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Optional

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from conveyor.streams.config.settings import Settings
from conveyor.streams.kafka.clients import DeliveryTracker, make_producer, produce
from conveyor.streams.telemetry import metrics

log = logging.getLogger(__name__)

TRANSACTION_TIMEOUT_MS = 60_000
"""``transaction.timeout.ms``: the broker aborts a transaction left open this long (e.g. by
a killed process whose transactional id is not reused). librdkafka's default, 60 s."""
COMMIT_ATTEMPTS = 5
"""Times a retriable ``commit_transaction`` failure is retried before the batch is aborted."""
CALL_TIMEOUT = 60.0
"""Seconds each transactional call (init/commit/abort/send offsets) may block."""
WATCHDOG_TIMEOUT = 30.0
"""Seconds after which a ``send_offsets_to_transaction``/``commit_transaction`` call that has not
returned is given up: librdkafka's ``send_offsets_to_transaction`` can ignore its timeout and hang
forever when the group coordinator went down during the transaction (confluentinc/librdkafka
issues #5456 and #5511, seen here after a broker restart). The hung producer is abandoned and a
new one with the same transactional id fences it, which aborts its open transaction."""


class AtLeastOnceDelivery:
    """Idempotent producer; wait for acknowledgements, then commit offsets with the consumer.

    Args:
        settings: connection settings.
        name: processor name (metrics, logs).
    """

    transactional = False

    def __init__(self, settings: Settings, name: str):
        self.settings = settings
        self.name = name
        self.producer = make_producer(settings)
        self.tracker = DeliveryTracker()
        self.topics: set[str] = set()

    def begin(self) -> None:
        """Start a batch (forget earlier delivery reports and the topics written)."""
        self.tracker.reset()
        self.topics = set()

    def produce(self, topic: str, *, key: Optional[bytes], value: Optional[bytes],
                headers: Optional[list[tuple[str, bytes]]] = None) -> None:
        """Produce one record of the batch, stamped with the current time (never an input's:
        see :data:`conveyor.streams.kafka.topics.WRITE_TIME`).

        Raises:
            KafkaException: the record is invalid (e.g. too large); nothing was queued.
            BufferError: the producer queue stayed full (see :func:`conveyor.streams.kafka.clients.produce`).
        """
        self.topics.add(topic)
        produce(self.producer, topic, key=key, value=value, headers=headers, on_delivery=self.tracker.callback)

    def commit(self, consumer: Consumer, offsets: Sequence[TopicPartition]) -> None:
        """Wait for every record of the batch, then commit ``offsets`` synchronously.

        A failed offset commit is logged, not raised: the outputs are durable and the
        next commit covers these offsets.

        Raises:
            KafkaException: a produced record was not acknowledged.
        """
        self.tracker.wait(self.producer)
        if offsets:
            try:
                consumer.commit(offsets=list(offsets), asynchronous=False)
            except KafkaException as exc:
                log.warning("%s: offset commit failed (%s); the next commit covers it", self.name, exc)

    def abort(self, exc: Optional[BaseException] = None) -> None:
        """Nothing to undo: records already sent stay (at-least-once)."""

    def close(self, timeout: float = 30.0) -> None:
        """Flush what is queued."""
        self.producer.flush(timeout)


class TransactionalDelivery(AtLeastOnceDelivery):
    """Outputs and input offsets in one Kafka transaction per batch.

    Args:
        settings: connection settings.
        name: processor name.
        transactional_id: stable per processor instance, so a restarted instance fences
            (and aborts) its predecessor's open transaction at once; default: the group
            plus a random suffix (then a killed instance's open transaction is aborted
            by the broker after :data:`TRANSACTION_TIMEOUT_MS`).
        producer_factory: makes a producer from librdkafka overrides (default
            :func:`conveyor.streams.kafka.clients.make_producer` on ``settings``; unit tests pass
            a stand-in).

    Raises:
        KafkaException: the broker refused to initialise transactions.
    """

    transactional = True

    watchdog_timeout = WATCHDOG_TIMEOUT
    """Seconds given to a transaction call (:data:`WATCHDOG_TIMEOUT`)."""
    watchdog_grace = 5.0
    """Seconds waited beyond :attr:`watchdog_timeout` before the call counts as hung and the
    producer is replaced."""

    def __init__(self, settings: Settings, name: str, *, transactional_id: Optional[str] = None,
                 producer_factory: Optional[Callable[..., Producer]] = None):
        self.settings = settings
        self.producer_factory = producer_factory or functools.partial(make_producer, settings)
        self.name = name
        self.transactional_id = transactional_id or f"{settings.group_id(name)}.{uuid.uuid4().hex[:12]}"
        self.tracker = DeliveryTracker()
        self.topics: set[str] = set()
        self.producer = self._new_producer()
        self.open = False
        self._abandoned: list[Producer] = []  # hung producers, kept referenced while their call is stuck

    def _new_producer(self) -> Producer:
        producer = self.producer_factory(**{"transactional.id": self.transactional_id,
                                            "transaction.timeout.ms": TRANSACTION_TIMEOUT_MS})
        deadline = time.monotonic() + 5 * CALL_TIMEOUT
        while True:
            try:
                producer.init_transactions(CALL_TIMEOUT)
                return producer
            except KafkaException as exc:
                err: KafkaError = exc.args[0]
                if not err.retriable() or time.monotonic() > deadline:
                    raise
                log.warning("%s: init_transactions: %s; retrying", self.name, err)
                time.sleep(1.0)

    def begin(self) -> None:
        """Begin the batch's transaction.

        Raises:
            KafkaException: the producer is in an unusable state (the caller aborts/rewinds).
        """
        super().begin()
        self.producer.begin_transaction()
        self.open = True

    def commit(self, consumer: Consumer, offsets: Sequence[TopicPartition]) -> None:
        """Add ``offsets`` to the transaction and commit it; retriable failures are retried.

        Raises:
            KafkaException: the transaction could not be committed; the caller must
                :meth:`abort` and rewind the batch.
        """
        if offsets:
            producer, metadata = self.producer, consumer.consumer_group_metadata()
            self._watched("send_offsets_to_transaction",
                          lambda: producer.send_offsets_to_transaction(list(offsets), metadata, self.watchdog_timeout))
        for attempt in range(1, COMMIT_ATTEMPTS + 1):
            try:
                # bound now: the call must go to this producer even if the watchdog replaces it
                commit = functools.partial(self.producer.commit_transaction, self.watchdog_timeout)
                self._watched("commit_transaction", commit)
                self.open = False
                return
            except KafkaException as exc:
                err: KafkaError = exc.args[0]
                if err.retriable() and attempt < COMMIT_ATTEMPTS:
                    log.warning("%s: commit_transaction: %s; retrying", self.name, err)
                    continue
                raise

    def _watched(self, what: str, call: Callable[[], None]) -> None:
        """Run ``call`` with a :data:`WATCHDOG_TIMEOUT` watchdog.

        Raises:
            KafkaException: what ``call`` raised, or ``_TIMED_OUT`` when it hung (the producer
                has then been replaced and the transaction is gone).
        """
        outcome: dict[str, BaseException] = {}

        def target() -> None:
            try:
                call()
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
                outcome["exc"] = exc

        thread = threading.Thread(target=target, name=f"{self.name}-{what}", daemon=True)
        thread.start()
        thread.join(self.watchdog_timeout + self.watchdog_grace)
        if thread.is_alive():
            log.error("%s: %s hung for %.0fs (librdkafka #5456); replacing the producer", self.name, what,
                      self.watchdog_timeout + self.watchdog_grace)
            self._abandoned.append(self.producer)
            self.producer = self._new_producer()  # fences the hung one: its transaction is aborted
            self.open = False
            raise KafkaException(KafkaError(KafkaError._TIMED_OUT, f"{what} hung; producer replaced"))
        if "exc" in outcome:
            raise outcome["exc"]

    def abort(self, exc: Optional[BaseException] = None) -> None:
        """Abort the open transaction (its records are never visible to read_committed
        consumers). A producer in a fatal state (``exc`` is a fatal Kafka error, e.g. fenced,
        or the abort itself fails) is replaced by a new one with the same transactional id."""
        metrics.TRANSACTIONS_ABORTED.labels(self.name).inc()
        err = exc.args[0] if isinstance(exc, KafkaException) and exc.args else None
        if isinstance(err, KafkaError) and err.fatal():
            log.warning("%s: fatal producer error (%s); replacing the producer", self.name, err)
            self._replace_producer()
            self.open = False
            return
        if not self.open:
            return
        try:
            self.producer.abort_transaction(CALL_TIMEOUT)
        except KafkaException as abort_exc:
            abort_err: KafkaError = abort_exc.args[0]
            log.warning("%s: abort_transaction: %s; replacing the producer", self.name, abort_err)
            self._replace_producer()
        self.open = False

    def _replace_producer(self) -> None:
        try:
            self.producer.flush(0)
        except Exception:  # noqa: BLE001 - the old producer is being discarded
            pass
        self.producer = self._new_producer()

    def close(self, timeout: float = 30.0) -> None:
        """Abort an open transaction and flush."""
        if self.open:
            self.abort()
        self.producer.flush(timeout)


def make_delivery(settings: Settings, name: str, *, instance_id: Optional[str] = None) -> AtLeastOnceDelivery:
    """The delivery of ``settings.transactions``: transactional (default) or at-least-once.

    ``instance_id`` (e.g. ``CONVEYOR_INSTANCE_ID`` set by ``run all``) makes the
    transactional id stable across restarts of the same instance.
    """
    if not settings.transactions:
        return AtLeastOnceDelivery(settings, name)
    tid = f"{settings.group_id(name)}.{instance_id}" if instance_id else None
    return TransactionalDelivery(settings, name, transactional_id=tid)
