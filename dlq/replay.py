"""Replaying dead letters once their cause is fixed.

:func:`replay` re-publishes selected dead letters to the topic they failed on (or another
topic) with the original key, value and headers, plus replay provenance headers. A replayed
record is stamped with the replay time, so it lives for the target topic's retention; the
input's original timestamp travels in ``conveyor.replay.origin.timestamp``:

=============================  ==================================================
header                         value (UTF-8)
=============================  ==================================================
conveyor.replay.id             id of this replay run
conveyor.replay.of             ``<dlq topic>:<partition>:<offset>`` replayed
conveyor.replay.at             replay time, epoch ms
conveyor.replay.error.class    error class of the dead letter (why it was there)
conveyor.replay.by             the principal who ran the replay (audit)
conveyor.replay.origin.timestamp  the input's original timestamp, epoch ms
=============================  ==================================================

Each replayed record and a ledger entry keyed by its dead letter's address
(``{ns}.dlq.replays``, a compacted topic) are written in one Kafka transaction, so a
replay run that is repeated — or crashes and is run again — skips what was already
replayed, and the same dead letter never yields two results. ``force`` replays again
regardless. A record that fails again becomes a new dead letter (new address), which
can be replayed in turn.
"""
from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Optional

from confluent_kafka import KafkaException

from conveyor.dlq.envelope import REPLAY, REPLAY_ORIGIN_TIMESTAMP
from conveyor.dlq.inspect import DeadLetter, DeadLetterFilter, iter_dead_letters
from conveyor.dlq.store import DeadLetterStore, Transaction
from conveyor.processors.base import now_millis

PREFIX = REPLAY
REPLAY_ID = PREFIX + "id"
REPLAY_OF = PREFIX + "of"
REPLAY_AT = PREFIX + "at"
REPLAY_ERROR_CLASS = PREFIX + "error.class"
REPLAY_BY = PREFIX + "by"
TRANSACTION_RECORDS = 100
"""Dead letters replayed per transaction (each commit makes them and their ledger entries durable)."""


@dataclass
class ReplayReport:
    """Outcome of a replay run: counts and the per-record plan/result lines."""

    replay_id: str
    dry_run: bool
    selected: int = 0
    replayed: int = 0
    skipped_already_replayed: int = 0
    skipped_no_target: int = 0
    records: list[dict[str, Any]] = field(default_factory=list)

    def totals(self) -> dict[str, Any]:
        """Counts as a JSON-able dict."""
        return {"replay_id": self.replay_id, "dry_run": self.dry_run, "selected": self.selected,
                "replayed": self.replayed, "skipped_already_replayed": self.skipped_already_replayed,
                "skipped_no_target": self.skipped_no_target}


def replayed_refs(store: DeadLetterStore, *, timeout: float = 60.0) -> dict[str, dict[str, Any]]:
    """``{dead-letter address: ledger entry}`` of every dead letter replayed so far.

    Raises:
        TimeoutError: the ledger topic could not be read to its end in time.
    """
    out: dict[str, dict[str, Any]] = {}
    for msg in store.read(store.ledger_topic(), timeout=timeout):
        key, value = msg.key(), msg.value()
        if key is None:
            continue
        ref = key.decode("utf-8", "replace")
        if value is None:
            out.pop(ref, None)  # tombstone
            continue
        try:
            out[ref] = json.loads(value)
        except ValueError:
            out[ref] = {}
    return out


def _target(d: DeadLetter, to_topic: Optional[str]) -> Optional[str]:
    return to_topic or d.error.get("origin.topic") or None


def replay(store: DeadLetterStore, flt: DeadLetterFilter, *, to_topic: Optional[str] = None, dry_run: bool = False,
           rate: Optional[float] = None, force: bool = False, timeout: float = 60.0,
           on_record: Optional[Callable[[dict[str, Any]], None]] = None,
           progress: Optional[Callable[[Iterable[DeadLetter], int], Iterable[DeadLetter]]] = None,
           by: str = "") -> ReplayReport:
    """Re-publish the dead letters matching ``flt``.

    Args:
        store: the namespace's Kafka access (:class:`conveyor.streams.kafka.deadletters.KafkaDeadLetterStore`).
        flt: which dead letters.
        to_topic: target topic (full name or role) instead of each record's origin topic.
        dry_run: plan only: report what would be replayed, produce nothing.
        rate: at most this many records per second (``None``: unthrottled).
        force: replay dead letters the ledger says were replayed already.
        timeout: seconds to read each topic to its end.
        on_record: called with each record's plan/result line (JSON-able dict).
        progress: wraps the iterable of selected dead letters (e.g. ``tqdm``), given the count.
        by: the principal running the replay, recorded in each replayed record's
            ``conveyor.replay.by`` header and in its ledger entry (``replayed_by``).

    Returns:
        the :class:`ReplayReport`.

    Raises:
        ValueError: ``to_topic`` does not exist.
        KafkaException: a transaction could not be committed (nothing of that transaction
            is visible; running the replay again resumes it).
    """
    report = ReplayReport(replay_id=uuid.uuid4().hex[:16], dry_run=dry_run)
    done = {} if force else replayed_refs(store, timeout=timeout)
    selected = list(iter_dead_letters(store, flt, timeout=timeout))
    report.selected = len(selected)
    existing = store.existing_topics(timeout)
    if to_topic:
        to_topic = store.resolve(to_topic)
        if to_topic not in existing:
            raise ValueError(f"target topic {to_topic!r} does not exist")
    ledger = store.ledger_topic()
    producer = None
    if not dry_run:
        producer = store.transactional_producer(f"{ledger}.{report.replay_id}")
    in_txn = 0
    started = time.monotonic()
    items: Iterable[DeadLetter] = progress(selected, len(selected)) if progress else selected
    try:
        for d in items:
            target = _target(d, to_topic)
            line = {"ref": d.ref, "key": d.doc_id, "to": target, "exception": d.error.get("exception.class")}
            if d.ref in done:
                report.skipped_already_replayed += 1
                line["action"] = "skip: already replayed"
                line["replayed_by"] = done[d.ref].get("replay_id")
            elif target is None or target not in existing:
                report.skipped_no_target += 1
                line["action"] = "skip: no target topic"
            elif dry_run:
                report.replayed += 1
                line["action"] = "would replay"
            else:
                if rate:
                    wait = started + report.replayed / rate - time.monotonic()
                    if wait > 0:
                        time.sleep(wait)
                assert producer is not None  # created above unless dry_run
                if in_txn == 0:
                    producer.begin_transaction()
                _publish(store, producer, d, target, ledger, report.replay_id, by)
                in_txn += 1
                report.replayed += 1
                line["action"] = "replayed"
                if in_txn >= TRANSACTION_RECORDS:
                    producer.commit_transaction(60)
                    in_txn = 0
            report.records.append(line)
            if on_record:
                on_record(line)
        if producer is not None and in_txn:
            producer.commit_transaction(60)
            in_txn = 0
    except (KafkaException, BufferError):
        if producer is not None and in_txn:
            producer.abort_transaction(30)
        raise
    return report


def _publish(store: DeadLetterStore, producer: Transaction, d: DeadLetter, target: str, ledger: str,
             replay_id: str, by: str = "") -> None:
    now = now_millis()
    headers = [h for h in d.headers if not h[0].startswith(PREFIX)] + [
        (REPLAY_ID, replay_id.encode()), (REPLAY_OF, d.ref.encode()), (REPLAY_AT, str(now).encode()),
        (REPLAY_ERROR_CLASS, d.error.get("error.class", "").encode()),
        (REPLAY_ORIGIN_TIMESTAMP, str(d.timestamp).encode()), (REPLAY_BY, by.encode()),
    ]
    store.send(producer, target, key=d.key, value=d.value, headers=headers)  # stamped now: see the module doc
    entry = {"replay_id": replay_id, "replayed_at": now, "to": target, "key": d.doc_id,
             "exception": d.error.get("exception.class"), "replayed_by": by}
    store.send(producer, ledger, key=d.ref.encode(), value=json.dumps(entry).encode())
