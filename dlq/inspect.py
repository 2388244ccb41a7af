"""Reading dead letters: every DLQ topic of a namespace, as JSON-able dicts."""
from __future__ import annotations

from typing import Iterator, Optional

from dlq import envelope
from streams.io import consume
from streams.settings import Settings
from streams.topics import dlq_topics


def list_dead_letters(settings: Settings, *, timeout: float = 5.0,
                      processor: Optional[str] = None) -> Iterator[dict]:
    """Yield every dead letter of the namespace (all processors, or one).

    Each dict has ``dlq_topic``, ``partition``, ``offset``, ``key`` (the doc id),
    ``value_bytes`` (size of the original value), ``error`` (the
    ``conveyor.dlq.*`` headers without their prefix) and ``headers`` (the
    original record's other headers).
    """
    for topic in dlq_topics(settings):
        if processor and not topic.endswith(f".dlq.{processor}"):
            continue
        for rec in consume(settings, topic, from_beginning=True, timeout=timeout, decode=False):
            headers = rec.get("headers") or {}
            yield {
                "dlq_topic": rec["topic"], "partition": rec["partition"], "offset": rec["offset"],
                "key": rec["key"], "timestamp": rec["timestamp"],
                "value_bytes": len(rec["value"] or b""),
                "error": {k[len(envelope.PREFIX):]: v for k, v in headers.items()
                          if k.startswith(envelope.PREFIX) and k != envelope.STACKTRACE},
                "headers": {k: v for k, v in headers.items() if not k.startswith(envelope.PREFIX)},
            }
