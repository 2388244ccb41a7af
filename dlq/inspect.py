"""Reading dead letters: every DLQ topic of a namespace, as JSON-able dicts."""
from __future__ import annotations

from typing import Iterator, Optional

from dlq import envelope
from streams.io import message_dict, read_to_end
from streams.settings import Settings
from streams.topics import dlq_role, dlq_topics


def list_dead_letters(settings: Settings, *, timeout: float = 60.0,
                      processor: Optional[str] = None) -> Iterator[dict]:
    """Yield every dead letter of the namespace (all processors, or one), reading each
    dead-letter topic from the beginning to its current end.

    Each dict has ``dlq_topic``, ``partition``, ``offset``, ``key`` (the doc id),
    ``timestamp`` (original, epoch ms), ``value_bytes`` (size of the original value),
    ``error`` (the ``conveyor.dlq.*`` headers without their prefix, stack trace left
    out) and ``headers`` (the original record's own headers).

    Raises:
        TimeoutError: a topic could not be read to its end within ``timeout`` seconds.
    """
    for topic in dlq_topics(settings):
        if processor and topic != f"{settings.namespace}.{dlq_role(processor)}":
            continue
        for msg in read_to_end(settings, topic, timeout=timeout, missing_ok=True):
            rec = message_dict(msg)
            headers = rec.get("headers") or {}
            yield {
                "dlq_topic": rec["topic"], "partition": rec["partition"], "offset": rec["offset"],
                "key": rec["key"], "timestamp": rec["timestamp"],
                "value_bytes": len(rec["value"] or b""),
                "error": {k[len(envelope.PREFIX):]: v for k, v in headers.items()
                          if k.startswith(envelope.PREFIX) and k != envelope.STACKTRACE},
                "headers": {k: v for k, v in headers.items() if not k.startswith(envelope.PREFIX)},
            }
