"""The dead-letter envelope: the original record plus error headers.

A dead-letter record keeps the original key, value and headers byte for byte
(the Kafka Connect and confluent-kafka habit) and adds headers whose names all
start with :data:`PREFIX`. Its Kafka timestamp is the time it was written, so it
lives for the dead-letter topic's retention whatever the input's age (Kafka
Connect's dead-letter reporter does the same); the input's own timestamp is
``conveyor.dlq.origin.timestamp``:

=============================  ==============================================
header                         value (UTF-8)
=============================  ==============================================
conveyor.dlq.origin.topic      topic the failed record was read from
conveyor.dlq.origin.partition  its partition (decimal)
conveyor.dlq.origin.offset     its offset (decimal)
conveyor.dlq.origin.timestamp  the input's original timestamp, epoch ms (decimal):
                               of the record as first produced, also after
                               retries and replays
conveyor.dlq.group             consumer group of the failing processor
conveyor.dlq.processor         processor name
conveyor.dlq.processor.version processor version
conveyor.dlq.error.class       ``permanent`` or ``transient``
conveyor.dlq.exception.class   exception class name (module-qualified)
conveyor.dlq.exception.message exception message (truncated to 4 KiB)
conveyor.dlq.stacktrace        formatted traceback (truncated to 16 KiB)
conveyor.dlq.first.failed.at   time of the first failure, epoch ms
conveyor.dlq.failed.at         time of the last failure, epoch ms
conveyor.dlq.attempt           attempts made (1 for a permanent failure on first
                               delivery; 1 + retries for a transient one)
=============================  ==============================================
"""
from __future__ import annotations

import time
import traceback
from dataclasses import dataclass
from typing import Optional

PREFIX = "conveyor.dlq."
ORIGIN_TOPIC = PREFIX + "origin.topic"
ORIGIN_PARTITION = PREFIX + "origin.partition"
ORIGIN_OFFSET = PREFIX + "origin.offset"
ORIGIN_TIMESTAMP = PREFIX + "origin.timestamp"
GROUP = PREFIX + "group"
PROCESSOR = PREFIX + "processor"
PROCESSOR_VERSION = PREFIX + "processor.version"
ERROR_CLASS = PREFIX + "error.class"
EXCEPTION_CLASS = PREFIX + "exception.class"
EXCEPTION_MESSAGE = PREFIX + "exception.message"
STACKTRACE = PREFIX + "stacktrace"
FAILED_AT = PREFIX + "failed.at"
FIRST_FAILED_AT = PREFIX + "first.failed.at"
ATTEMPT = PREFIX + "attempt"

REPLAY_ORIGIN_TIMESTAMP = "conveyor.replay.origin.timestamp"
"""Header of a replayed record: the original timestamp of the input it replays (epoch ms);
a replayed record is itself stamped with the replay time (see :mod:`dlq.replay`)."""

MAX_MESSAGE_CHARS = 4096
MAX_STACKTRACE_CHARS = 16384


@dataclass(frozen=True)
class Origin:
    """Where a failed record was read: topic, partition, offset, timestamp (epoch ms)."""

    topic: str
    partition: int
    offset: int
    timestamp: int


def _header_int(headers: Optional[list[tuple[str, Optional[bytes]]]], name: str) -> Optional[int]:
    value = None
    for k, v in headers or []:
        if k == name and v:
            try:
                value = int(v)
            except ValueError:
                pass
    return value


def original_timestamp(headers: Optional[list[tuple[str, Optional[bytes]]]], timestamp: Optional[int],
                       *, retried_at: Optional[int] = None) -> int:
    """The input's original timestamp (epoch ms) of a consumed record: ``retried_at`` (the
    retry record's ``conveyor.retry.origin.timestamp``) if given, else a replayed record's
    :data:`REPLAY_ORIGIN_TIMESTAMP` header, else the record's own ``timestamp`` (0 if none)."""
    for ts in (retried_at, _header_int(headers, REPLAY_ORIGIN_TIMESTAMP), timestamp):
        if ts is not None and ts > 0:
            return ts
    return 0


def error_class(exc: BaseException) -> str:
    """``permanent`` unless the exception says it is transient (``permanent = False``)."""
    return "permanent" if getattr(exc, "permanent", True) else "transient"


def exception_name(exc: BaseException) -> str:
    """Module-qualified class name, e.g. ``processors.errors.CorruptDocumentError``."""
    cls = type(exc)
    return f"{cls.__module__}.{cls.__qualname__}"


def error_headers(exc: BaseException, origin: Origin, *, processor: str, version: str,
                  group: str, attempt: int = 1, failed_at: Optional[int] = None,
                  first_failed_at: Optional[int] = None) -> list[tuple[str, bytes]]:
    """The ``conveyor.dlq.*`` headers describing ``exc`` for a record read at ``origin``.

    ``failed_at`` (default now) and ``first_failed_at`` (default ``failed_at``) are epoch ms.
    """
    failed_at = failed_at if failed_at is not None else int(time.time() * 1000)
    stack = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    values = {
        ORIGIN_TOPIC: origin.topic,
        ORIGIN_PARTITION: str(origin.partition),
        ORIGIN_OFFSET: str(origin.offset),
        ORIGIN_TIMESTAMP: str(origin.timestamp),
        GROUP: group,
        PROCESSOR: processor,
        PROCESSOR_VERSION: version,
        ERROR_CLASS: error_class(exc),
        EXCEPTION_CLASS: exception_name(exc),
        EXCEPTION_MESSAGE: (str(exc) or type(exc).__name__)[:MAX_MESSAGE_CHARS],
        STACKTRACE: stack[-MAX_STACKTRACE_CHARS:],
        FIRST_FAILED_AT: str(first_failed_at if first_failed_at is not None else failed_at),
        FAILED_AT: str(failed_at),
        ATTEMPT: str(attempt),
    }
    return [(k, v.encode("utf-8")) for k, v in values.items()]


def dead_letter_headers(original: Optional[list[tuple[str, bytes]]], exc: BaseException,
                        origin: Origin, **kw) -> list[tuple[str, bytes]]:
    """Original headers unchanged, followed by :func:`error_headers`.

    Earlier ``conveyor.dlq.*`` headers (from a replayed record) are dropped so
    each dead letter describes its latest failure once.
    """
    kept = [(k, v) for k, v in (original or []) if not k.startswith(PREFIX)]
    return kept + error_headers(exc, origin, **kw)


def decode_headers(headers: Optional[list[tuple[str, Optional[bytes]]]]) -> dict[str, str]:
    """Headers as ``{name: text}`` (last value wins; bytes decoded as UTF-8 with replacement)."""
    out: dict[str, str] = {}
    for k, v in headers or []:
        out[k] = v.decode("utf-8", "replace") if isinstance(v, (bytes, bytearray)) else (v or "")
    return out
