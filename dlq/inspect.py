"""Reading dead letters: every dead-letter topic of a namespace, filtered.

A :class:`DeadLetter` is one record of a ``{ns}.dlq.<processor>`` topic: the failed
record's original key, value and headers plus the ``conveyor.dlq.*`` error headers (see
:mod:`conveyor.dlq.envelope`), with the input's original timestamp. :class:`DeadLetterFilter` selects them by origin topic,
processor, error class, exception, failure time and doc id.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Optional

from conveyor.dlq import envelope
from conveyor.dlq.store import DeadLetterStore, Record


@dataclass(frozen=True)
class DeadLetter:
    """One dead-letter record.

    ``key``/``value`` are the original bytes; ``headers`` the original record's own
    headers (``conveyor.dlq.*`` removed); ``error`` the ``conveyor.dlq.*`` headers
    without their prefix (e.g. ``error["exception.class"]``); ``timestamp`` the
    input's original timestamp (``conveyor.dlq.origin.timestamp``), epoch ms;
    ``written_at`` when the dead letter was written (its Kafka timestamp), epoch ms.
    """

    dlq_topic: str
    partition: int
    offset: int
    key: Optional[bytes]
    value: Optional[bytes]
    timestamp: int
    headers: list[tuple[str, bytes]]
    error: dict[str, str]
    written_at: int = 0

    @property
    def ref(self) -> str:
        """``<dlq topic>:<partition>:<offset>``, the dead letter's unique address."""
        return f"{self.dlq_topic}:{self.partition}:{self.offset}"

    @property
    def doc_id(self) -> Optional[str]:
        """The key as text (the doc/text id)."""
        return self.key.decode("utf-8", "replace") if self.key is not None else None

    @property
    def failed_at(self) -> int:
        """Time of the last failure, epoch ms (0 if the header is missing)."""
        try:
            return int(self.error.get("failed.at", "0"))
        except ValueError:
            return 0

    def summary(self, *, stacktrace: bool = False) -> dict[str, Any]:
        """JSON-able view: address, doc id, sizes, error headers, original headers (as text)."""
        error = dict(self.error)
        if not stacktrace:
            error.pop("stacktrace", None)
        return {"ref": self.ref, "dlq_topic": self.dlq_topic, "partition": self.partition, "offset": self.offset,
                "key": self.doc_id, "timestamp": self.timestamp, "written_at": self.written_at,
                "value_bytes": len(self.value or b""),
                "error": error, "headers": envelope.decode_headers(self.headers)}


def parse_time(raw: Optional[str]) -> Optional[int]:
    """``raw`` as epoch ms: an integer (epoch ms) or an ISO 8601 time (UTC if no zone).

    Raises:
        ValueError: neither form parses.
    """
    if raw is None or raw == "":
        return None
    if raw.isdigit():
        return int(raw)
    t = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return int(t.timestamp() * 1000)


@dataclass(frozen=True)
class DeadLetterFilter:
    """Which dead letters to select; every set criterion must match.

    ``origin_topic``: full name or role of the topic the record failed on;
    ``processor``: failing processor; ``error_class``: ``permanent``/``transient``;
    ``exception``: substring of the exception class (case-insensitive);
    ``since``/``until``: last-failure time bounds, epoch ms (inclusive/exclusive);
    ``doc_ids``: keys to keep.
    """

    origin_topic: Optional[str] = None
    processor: Optional[str] = None
    error_class: Optional[str] = None
    exception: Optional[str] = None
    since: Optional[int] = None
    until: Optional[int] = None
    doc_ids: frozenset[str] = field(default_factory=frozenset)

    def matches(self, d: DeadLetter) -> bool:
        """Whether ``d`` passes every criterion (``origin_topic`` compared as a full name:
        :func:`iter_dead_letters` resolves a role first)."""
        if self.origin_topic and d.error.get("origin.topic") != self.origin_topic:
            return False
        if self.processor and d.error.get("processor") != self.processor:
            return False
        if self.error_class and d.error.get("error.class") != self.error_class:
            return False
        if self.exception and self.exception.lower() not in d.error.get("exception.class", "").lower():
            return False
        if self.since is not None and d.failed_at < self.since:
            return False
        if self.until is not None and d.failed_at >= self.until:
            return False
        if self.doc_ids and d.doc_id not in self.doc_ids:
            return False
        return True


def _from_message(msg: Record) -> DeadLetter:
    headers = msg.headers() or []
    written_at = msg.timestamp()[1]
    error = envelope.fields(headers, envelope.DLQ)
    try:
        original = int(error.get("origin.timestamp", ""))
    except ValueError:  # a dead letter written before the header existed: its own timestamp
        original = written_at
    return DeadLetter(dlq_topic=msg.topic(), partition=msg.partition(), offset=msg.offset(), key=msg.key(),
                      value=msg.value(), timestamp=original, written_at=written_at,
                      headers=envelope.strip(headers), error=error)


def iter_dead_letters(store: DeadLetterStore, flt: DeadLetterFilter = DeadLetterFilter(), *,
                      timeout: float = 60.0) -> Iterator[DeadLetter]:
    """Every dead letter of the store's namespace matching ``flt``, each dead-letter topic read
    from the beginning to its end as of the call.

    Raises:
        ValueError: ``flt.processor`` is not a stage of the pipeline.
        TimeoutError: a topic could not be read to its end within ``timeout`` seconds.
    """
    if flt.origin_topic:
        flt = dataclasses.replace(flt, origin_topic=store.resolve(flt.origin_topic))
    topics = store.dead_letter_topics()
    if flt.processor and flt.processor not in topics:
        raise ValueError(f"unknown processor {flt.processor!r}; choose from {', '.join(topics)}")
    for processor, topic in topics.items():
        if flt.processor and processor != flt.processor:
            continue
        for msg in store.read(topic, timeout=timeout):
            d = _from_message(msg)
            if flt.matches(d):
                yield d


def list_dead_letters(store: DeadLetterStore, *, timeout: float = 60.0, processor: Optional[str] = None,
                      flt: Optional[DeadLetterFilter] = None) -> Iterator[dict[str, Any]]:
    """:meth:`DeadLetter.summary` of every matching dead letter (stack traces left out).

    Raises:
        TimeoutError: a topic could not be read to its end within ``timeout`` seconds.
    """
    flt = flt or DeadLetterFilter(processor=processor)
    for d in iter_dead_letters(store, flt, timeout=timeout):
        yield d.summary()


def decode_payload(store: DeadLetterStore, d: DeadLetter) -> dict[str, Any]:
    """The original value decoded with the schema its wire-format id names, when it can be.

    Returns ``{"payload": record}`` or ``{"payload_error": reason}``.
    """
    origin = d.error.get("origin.topic") or d.dlq_topic
    try:
        return {"payload": store.decode(origin, d.value)}
    except Exception as exc:  # noqa: BLE001 - a dead letter is often undecodable by nature
        return {"payload_error": f"{type(exc).__name__}: {exc}"}
