"""The review queue, rebuilt from the topics alone.

:class:`ReviewState` folds records into the queue: every prediction routed ``review`` is an
item (the newest prediction of a doc id replaces an older one: a reprocessed input is reviewed
once, on its newest result); every feedback record decides the item it answers; the source
topics (``documents``, ``texts``) and ``extracted`` are indexed by doc id (topic, partition,
offset — not the bytes), so an item's document, text and OCR pages are read back when a
reviewer opens it. :class:`TopicTailer` feeds a state from the topics in a background thread,
read_committed, from the earliest offset: after a restart the queue is what the topics say,
and the app keeps nothing the topics do not.
"""
from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Optional

from confluent_kafka import Consumer, KafkaError, Message, TopicPartition

from conveyor.streams.config.settings import Settings
from conveyor.streams.kafka.clients import make_consumer
from conveyor.streams.kafka.serde import AvroSerde
from conveyor.streams.kafka.topics import FEEDBACK_ROLE, topic_name

log = logging.getLogger(__name__)

SOURCE_ROLES = ("documents", "texts", "extracted")
"""Topics indexed by doc id so that an item's input and OCR pages can be shown."""
TAILED_ROLES = ("predictions", FEEDBACK_ROLE, *SOURCE_ROLES)


@dataclass
class ReviewItem:
    """One prediction routed to review.

    Attributes:
        doc_id: the input's id (record key).
        version: ``"<partition>:<offset>"`` of the prediction in the predictions topic; a
            decision names the version it answers, so a stale page cannot decide a newer result.
        prediction: the decoded Prediction record.
        seen_ms: epoch ms the prediction was written (its record timestamp).
        decision: the decoded Feedback record that decided it, or ``None`` while it waits.
    """

    doc_id: str
    version: str
    prediction: dict[str, Any]
    seen_ms: int
    decision: Optional[dict[str, Any]] = None

    @property
    def waiting(self) -> bool:
        """``True`` until a reviewer decided it."""
        return self.decision is None


@dataclass
class ReviewState:
    """The queue and its indexes, built only by :meth:`apply` (thread-safe).

    ``predictions`` and ``routed_review`` count every prediction read (the review rate is
    their ratio); ``sources`` maps ``(role, doc_id)`` to the newest record's
    ``(topic, partition, offset)``.
    """

    items: dict[str, ReviewItem] = field(default_factory=dict)
    decisions: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    """(doc_id, item_version) -> Feedback record (one per item version, as its decision_id)."""
    sources: dict[tuple[str, str], tuple[str, int, int]] = field(default_factory=dict)
    predictions: int = 0
    routed_review: int = 0
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    def apply(self, role: str, doc_id: str, value: Optional[dict[str, Any]], *, topic: str, partition: int,
              offset: int, timestamp_ms: int) -> None:
        """Fold one record (``value`` decoded; ``None`` for the indexed source roles) into the state."""
        with self.lock:
            if role in SOURCE_ROLES:
                self.sources[(role, doc_id)] = (topic, partition, offset)
            elif role == "predictions" and value is not None:
                self.predictions += 1
                if value.get("routing") != "review":
                    return
                self.routed_review += 1
                version = f"{partition}:{offset}"
                item = ReviewItem(doc_id, version, value, timestamp_ms)
                item.decision = self.decisions.get((doc_id, version))
                self.items[doc_id] = item
            elif role == FEEDBACK_ROLE and value is not None:
                self.record_decision(value)

    def record_decision(self, feedback: dict[str, Any]) -> None:
        """Mark the item ``feedback`` answers as decided (a decision already known is ignored)."""
        with self.lock:
            key = (feedback["doc_id"], feedback["item_version"])
            if key in self.decisions:
                return
            self.decisions[key] = feedback
            item = self.items.get(feedback["doc_id"])
            if item is not None and item.version == feedback["item_version"] and item.decision is None:
                item.decision = feedback

    def item(self, doc_id: str) -> Optional[ReviewItem]:
        """The item of ``doc_id`` (waiting or decided), or ``None``."""
        with self.lock:
            return self.items.get(doc_id)

    def waiting(self, *, reason: Optional[str] = None, label: Optional[str] = None,
                min_age_s: Optional[float] = None, max_age_s: Optional[float] = None,
                now_ms: Optional[int] = None) -> list[ReviewItem]:
        """Items waiting for a decision, oldest first, filtered by a reason (substring), the
        predicted label and their age in seconds."""
        now = now_ms if now_ms is not None else int(time.time() * 1000)
        with self.lock:
            out = []
            for it in self.items.values():
                age = (now - it.seen_ms) / 1000
                if not it.waiting or (label and it.prediction["label"] != label):
                    continue
                if reason and not any(reason in r for r in it.prediction.get("reasons", [])):
                    continue
                if (min_age_s is not None and age < min_age_s) or (max_age_s is not None and age > max_age_s):
                    continue
                out.append(it)
            return sorted(out, key=lambda i: i.seen_ms)

    def counts(self) -> dict[str, Any]:
        """``{"waiting", "decided", "predictions", "routed_review", "review_rate"}``."""
        with self.lock:
            waiting = sum(1 for i in self.items.values() if i.waiting)
            return {"waiting": waiting, "decided": len(self.items) - waiting, "predictions": self.predictions,
                    "routed_review": self.routed_review,
                    "review_rate": self.routed_review / self.predictions if self.predictions else 0.0}


class TopicTailer:
    """Reads the predictions, feedback and source topics of one namespace from the earliest
    offset into a :class:`ReviewState`, in a daemon thread, until :meth:`stop`.

    Partitions are assigned directly (no consumer group, nothing committed), read_committed.
    :attr:`caught_up` is set once every partition has been read up to its end offset as of
    the start: before that the queue may lack items or decisions, and the app is not ready.
    """

    def __init__(self, settings: Settings, state: ReviewState, *, serde: Optional[AvroSerde] = None,
                 on_error: Callable[[str], None] = log.warning):
        self.settings, self.state = settings, state
        self.serde = serde or AvroSerde(settings)
        self.on_error = on_error
        self.caught_up = threading.Event()
        self._stop = threading.Event()
        self._roles = {topic_name(settings, r): r for r in TAILED_ROLES}
        self._thread = threading.Thread(target=self._run, name="review-tailer", daemon=True)
        self.error: Optional[str] = None

    def start(self) -> TopicTailer:
        """Start reading; returns ``self``."""
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop reading and close the consumer."""
        self._stop.set()
        self._thread.join(timeout)

    def wait_caught_up(self, timeout: float) -> bool:
        """``True`` once the topics were read to their end offsets as of the start."""
        return self.caught_up.wait(timeout)

    def _assignment(self, consumer: Consumer) -> tuple[list[TopicPartition], dict[tuple[str, int], int]]:
        parts: list[TopicPartition] = []
        ends: dict[tuple[str, int], int] = {}
        meta = consumer.list_topics(timeout=30).topics
        for name in self._roles:
            t = meta.get(name)
            if t is None or t.error is not None:
                continue
            for p in t.partitions:
                low, high = consumer.get_watermark_offsets(TopicPartition(name, p), timeout=30)
                parts.append(TopicPartition(name, p, low))
                if high > low:
                    ends[(name, p)] = high
        return parts, ends

    def _run(self) -> None:
        consumer = make_consumer(self.settings, f"conveyor-review-{uuid.uuid4().hex[:12]}",
                                 **{"statistics.interval.ms": 0, "enable.partition.eof": True,
                                    "enable.auto.commit": False})
        try:
            parts, pending = self._assignment(consumer)
            consumer.assign(parts)
            assigned = {(p.topic, p.partition) for p in parts}
            if not pending:
                self.caught_up.set()
            last_meta = time.monotonic()
            while not self._stop.is_set():
                if time.monotonic() - last_meta > 10 and {t for t, _ in assigned} != set(self._roles):
                    last_meta = time.monotonic()
                    self._assign_new(consumer, assigned)
                msg = consumer.poll(0.5)
                if msg is None:
                    continue
                topic, partition = msg.topic(), msg.partition()
                error = msg.error()
                if error:
                    if error.code() == KafkaError._PARTITION_EOF:
                        if topic is not None and partition is not None:
                            pending.pop((topic, partition), None)
                        if not pending:
                            self.caught_up.set()
                        continue
                    self.error = str(error)
                    self.on_error(f"review tailer: {error}")
                    continue
                self._apply(msg)
                offset = msg.offset()
                if topic is None or partition is None or offset is None:
                    continue
                key = (topic, partition)
                if key in pending and offset + 1 >= pending[key]:
                    pending.pop(key)
                    if not pending:
                        self.caught_up.set()
        except Exception as exc:  # noqa: BLE001 - the app reports it (not ready) instead of dying
            self.error = f"{type(exc).__name__}: {exc}"
            self.on_error(f"review tailer stopped: {self.error}")
        finally:
            consumer.close()

    def _assign_new(self, consumer: Consumer, assigned: set[tuple[str, int]]) -> None:
        """Pick up topics created after the start (the namespace had no feedback topic yet)."""
        parts, _ = self._assignment(consumer)
        new = [p for p in parts if (p.topic, p.partition) not in assigned]
        if new:
            consumer.incremental_assign(new)
            assigned.update((p.topic, p.partition) for p in new)

    def _apply(self, msg: Message) -> None:
        topic, partition, offset, key = msg.topic(), msg.partition(), msg.offset(), msg.key()
        if topic is None or partition is None or offset is None or key is None:
            return  # a record read from a partition has all four
        role = self._roles.get(topic)
        if role is None:
            return
        doc_id = key.decode("utf-8", "replace")
        value = None
        if role not in SOURCE_ROLES:
            try:
                value = self.serde.decode(topic, msg.value())
            except Exception as exc:  # noqa: BLE001 - one bad record must not hide the queue
                self.on_error(f"review tailer: {topic}[{partition}]@{offset} skipped: {exc}")
                return
        self.state.apply(role, doc_id, value, topic=topic, partition=partition,
                         offset=offset, timestamp_ms=msg.timestamp()[1])

