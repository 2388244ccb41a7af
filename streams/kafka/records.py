"""What a consumed record always carries, typed as such.

confluent-kafka's ``Message`` serves consumed records, delivery reports and errors alike, so its
stubs make ``topic()``, ``partition()``, ``offset()`` optional and ``headers()`` a dict or a list
of ``str``/``bytes`` values (what ``produce`` accepts). A record a consumer returned without an
error always has a topic, a partition and an offset, and its headers are ``None`` or a list of
``(name, bytes or None)``: these helpers say so in one place.
"""
from __future__ import annotations

from typing import Optional, cast

from confluent_kafka import Message

ConsumedHeaders = Optional[list[tuple[str, Optional[bytes]]]]
"""The headers of a consumed record: ``None`` when it has none."""


def position(msg: Message) -> tuple[str, int, int]:
    """``(topic, partition, offset)`` of a consumed record (one without an error)."""
    topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
    assert topic is not None and partition is not None and offset is not None, "a consumed record has a position"
    return topic, partition, offset


def consumed_topic(msg: Message) -> str:
    """The topic of a consumed record (one without an error)."""
    topic = msg.topic()
    assert topic is not None, "a consumed record has a topic"
    return topic


def consumed_headers(msg: Message) -> ConsumedHeaders:
    """The headers of a consumed record as librdkafka hands them back: ``None``, or a list of
    ``(name, value)`` with ``bytes`` (or ``None``) values, never a dict or ``str`` values."""
    return cast(ConsumedHeaders, msg.headers())
