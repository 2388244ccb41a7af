"""The one failure envelope: what a retry record and a dead letter carry, and its codec.

A record that failed keeps its key, value and headers byte for byte (the Kafka Connect and
confluent-kafka habit) and gains one set of failure headers. Retry records and dead letters
use the same fields under their own prefix — ``conveyor.retry.`` on a retry record,
``conveyor.dlq.`` on a dead letter — so one :class:`Failure` value, encoded by :func:`encode`
and read back by :func:`decode`, describes both:

=======================  ==================================================================
field (after prefix)     value (UTF-8)
=======================  ==================================================================
``origin.topic``         topic the record was first read from (never a retry topic)
``origin.partition``     its partition there (decimal)
``origin.offset``        its offset there (decimal)
``origin.timestamp``     the input's original timestamp, epoch ms: of the record as first
                         produced, also after retries and replays
``group``                consumer group of the failing processor
``processor``            processor name; ``processor.version`` its version
``error.class``          ``permanent`` or ``transient`` (:func:`conveyor.dlq.policy.error_class`)
``exception.class``      exception class, module-qualified
``exception.message``    its message (at most :data:`MAX_MESSAGE_CHARS` characters)
``stacktrace``           formatted traceback (its last :data:`MAX_STACKTRACE_CHARS` characters)
``attempt``              attempts made so far (1 after the first failure)
``first.failed.at``      time of the first failure, epoch ms; ``failed.at`` of the latest
``due``                  retry records only: epoch ms before which the retry must not run
=======================  ==================================================================

Both are stamped with the time they are written (their Kafka timestamp), so they live for
their topic's retention whatever the input's age; the input's time is ``origin.timestamp``.

Migration from the two vocabularies before: every ``conveyor.dlq.*`` name is unchanged;
``conveyor.retry.*`` keeps ``attempt``, ``due``, ``first.failed.at``, ``origin.*``,
``exception.class`` and ``exception.message`` (now up to 4 KiB instead of 1 KiB) and gains
the other fields above. A replayed record carries ``conveyor.replay.*`` provenance
(:mod:`conveyor.dlq.replay`), among them :data:`REPLAY_ORIGIN_TIMESTAMP`.
"""
from __future__ import annotations

import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

from conveyor.processors.base import now_millis

Headers = Optional[Sequence[tuple[str, Optional[bytes]]]]

RETRY = "conveyor.retry."
"""Prefix of the failure headers of a retry record."""
DLQ = "conveyor.dlq."
"""Prefix of the failure headers of a dead letter."""
PREFIX = DLQ
REPLAY = "conveyor.replay."
"""Prefix of a replayed record's provenance headers."""

FIELDS = ("origin.topic", "origin.partition", "origin.offset", "origin.timestamp", "group", "processor",
          "processor.version", "error.class", "exception.class", "exception.message", "stacktrace",
          "attempt", "first.failed.at", "failed.at", "due")
"""Every field of the envelope, in header order."""

# Dead-letter header names (users filter and script on these).
ORIGIN_TOPIC = DLQ + "origin.topic"
ORIGIN_PARTITION = DLQ + "origin.partition"
ORIGIN_OFFSET = DLQ + "origin.offset"
ORIGIN_TIMESTAMP = DLQ + "origin.timestamp"
GROUP = DLQ + "group"
PROCESSOR = DLQ + "processor"
PROCESSOR_VERSION = DLQ + "processor.version"
ERROR_CLASS = DLQ + "error.class"
EXCEPTION_CLASS = DLQ + "exception.class"
EXCEPTION_MESSAGE = DLQ + "exception.message"
STACKTRACE = DLQ + "stacktrace"
FAILED_AT = DLQ + "failed.at"
FIRST_FAILED_AT = DLQ + "first.failed.at"
ATTEMPT = DLQ + "attempt"

# Retry-record header names.
RETRY_ATTEMPT = RETRY + "attempt"
RETRY_DUE = RETRY + "due"
RETRY_FIRST_FAILED_AT = RETRY + "first.failed.at"
RETRY_ORIGIN_TOPIC = RETRY + "origin.topic"
RETRY_ORIGIN_PARTITION = RETRY + "origin.partition"
RETRY_ORIGIN_OFFSET = RETRY + "origin.offset"
RETRY_ORIGIN_TIMESTAMP = RETRY + "origin.timestamp"
RETRY_EXCEPTION_CLASS = RETRY + "exception.class"

REPLAY_ORIGIN_TIMESTAMP = REPLAY + "origin.timestamp"
"""Header of a replayed record: the original timestamp of the input it replays (epoch ms);
a replayed record is itself stamped with the replay time (see :mod:`conveyor.dlq.replay`)."""

MAX_MESSAGE_CHARS = 4096
MAX_STACKTRACE_CHARS = 16384


@dataclass(frozen=True)
class Origin:
    """Where a failed record was first read: topic, partition, offset, and the input's
    original timestamp (epoch ms)."""

    topic: str
    partition: int
    offset: int
    timestamp: int


@dataclass(frozen=True)
class Failure:
    """One failure of one record: the envelope's fields (see the module docstring).

    Times are epoch ms; ``due`` is set on retry records only.
    """

    origin: Origin
    processor: str
    processor_version: str
    group: str
    error_class: str
    exception_class: str
    exception_message: str
    stacktrace: str
    attempt: int
    first_failed_at: int
    failed_at: int
    due: Optional[int] = None

    def values(self) -> dict[str, str]:
        """``{field: text}`` for every field that is set."""
        out = {"origin.topic": self.origin.topic, "origin.partition": str(self.origin.partition),
               "origin.offset": str(self.origin.offset), "origin.timestamp": str(self.origin.timestamp),
               "group": self.group, "processor": self.processor, "processor.version": self.processor_version,
               "error.class": self.error_class, "exception.class": self.exception_class,
               "exception.message": self.exception_message, "stacktrace": self.stacktrace,
               "attempt": str(self.attempt), "first.failed.at": str(self.first_failed_at),
               "failed.at": str(self.failed_at)}
        if self.due is not None:
            out["due"] = str(self.due)
        return out


def exception_name(exc: BaseException) -> str:
    """Module-qualified class name, e.g. ``conveyor.processors.errors.CorruptDocumentError``."""
    cls = type(exc)
    return f"{cls.__module__}.{cls.__qualname__}"


def describe(exc: BaseException, origin: Origin, *, processor: str, version: str, group: str, error_class: str,
             attempt: int = 1, first_failed_at: Optional[int] = None, failed_at: Optional[int] = None,
             due: Optional[int] = None) -> Failure:
    """The :class:`Failure` of ``exc`` for a record read at ``origin``; ``failed_at`` defaults
    to now and ``first_failed_at`` to ``failed_at`` (epoch ms). Message and stack trace are
    cut to :data:`MAX_MESSAGE_CHARS` / :data:`MAX_STACKTRACE_CHARS`."""
    failed_at = now_millis() if failed_at is None else failed_at
    stack = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return Failure(origin=origin, processor=processor, processor_version=version, group=group,
                   error_class=error_class, exception_class=exception_name(exc),
                   exception_message=(str(exc) or type(exc).__name__)[:MAX_MESSAGE_CHARS],
                   stacktrace=stack[-MAX_STACKTRACE_CHARS:], attempt=attempt,
                   first_failed_at=failed_at if first_failed_at is None else first_failed_at,
                   failed_at=failed_at, due=due)


def encode(failure: Failure, prefix: str) -> list[tuple[str, bytes]]:
    """``failure`` as headers under ``prefix`` (:data:`RETRY` or :data:`DLQ`)."""
    return [(prefix + k, v.encode("utf-8")) for k, v in failure.values().items()]


def strip(headers: Headers) -> list[tuple[str, bytes]]:
    """``headers`` without any failure header (``conveyor.retry.*``, ``conveyor.dlq.*``):
    the original record's own headers."""
    return [(k, v or b"") for k, v in headers or () if not k.startswith((RETRY, DLQ))]


def attach(headers: Headers, failure: Failure, prefix: str) -> list[tuple[str, bytes]]:
    """The original headers (earlier failure headers dropped, so each record describes its
    latest failure once) followed by ``failure`` encoded under ``prefix``."""
    return strip(headers) + encode(failure, prefix)


def decode_headers(headers: Headers) -> dict[str, str]:
    """Headers as ``{name: text}`` (last value wins; bytes decoded as UTF-8 with replacement)."""
    out: dict[str, str] = {}
    for k, v in headers or []:
        out[k] = v.decode("utf-8", "replace") if isinstance(v, (bytes, bytearray)) else (v or "")
    return out


def fields(headers: Headers, prefix: str) -> dict[str, str]:
    """The failure fields under ``prefix`` as ``{field: text}`` (prefix removed)."""
    return {k[len(prefix):]: v for k, v in decode_headers(headers).items() if k.startswith(prefix)}


def _int(raw: Optional[str]) -> Optional[int]:
    try:
        return int(raw) if raw is not None else None
    except ValueError:
        return None


def decode(headers: Headers, prefix: str) -> Optional[Failure]:
    """The :class:`Failure` encoded under ``prefix``, or ``None`` when the record carries none
    (or its ``attempt`` or ``origin.topic`` is missing or malformed: then it counts as a first
    delivery). Other malformed numbers read as 0."""
    f = fields(headers, prefix)
    attempt = _int(f.get("attempt"))
    if not attempt or attempt < 1 or not f.get("origin.topic"):
        return None
    num = {k: _int(f.get(k)) or 0 for k in ("origin.partition", "origin.offset", "origin.timestamp",
                                              "first.failed.at", "failed.at")}
    return Failure(origin=Origin(f["origin.topic"], num["origin.partition"], num["origin.offset"],
                                 num["origin.timestamp"]),
                   processor=f.get("processor", ""), processor_version=f.get("processor.version", ""),
                   group=f.get("group", ""), error_class=f.get("error.class", ""),
                   exception_class=f.get("exception.class", ""), exception_message=f.get("exception.message", ""),
                   stacktrace=f.get("stacktrace", ""), attempt=attempt, first_failed_at=num["first.failed.at"],
                   failed_at=num["failed.at"], due=_int(f.get("due")))


def due_ms(headers: Headers) -> int:
    """A retry record's due time (epoch ms; 0 when absent or malformed)."""
    return _int(fields(headers, RETRY).get("due")) or 0


def original_timestamp(headers: Headers, timestamp: Optional[int], *, retried_at: Optional[int] = None) -> int:
    """The input's original timestamp (epoch ms) of a consumed record: ``retried_at`` (the
    retry record's ``origin.timestamp``) if given, else a replayed record's
    :data:`REPLAY_ORIGIN_TIMESTAMP` header, else the record's own ``timestamp`` (0 if none)."""
    replayed = _int(decode_headers(headers).get(REPLAY_ORIGIN_TIMESTAMP))
    for ts in (retried_at, replayed, timestamp):
        if ts is not None and ts > 0:
            return ts
    return 0
