"""Offsets of a batch: the range read per partition, and the next offsets to commit."""
from __future__ import annotations

from collections.abc import Sequence

from confluent_kafka import Message, TopicPartition

from conveyor.streams.kafka.records import position


def offset_ranges(msgs: Sequence[Message]) -> dict[tuple[str, int], tuple[int, int]]:
    """``{(topic, partition): (first offset, last offset)}`` of a batch."""
    ranges: dict[tuple[str, int], tuple[int, int]] = {}
    for m in msgs:
        t, p, o = position(m)
        key = (t, p)
        lo, hi = ranges.get(key, (o, o))
        ranges[key] = (min(lo, o), max(hi, o))
    return ranges


def next_offsets(msgs: Sequence[Message]) -> list[TopicPartition]:
    """The offsets to commit after ``msgs``: one past the last per partition (Kafka commits the
    next offset to read)."""
    return [TopicPartition(t, p, hi + 1) for (t, p), (_, hi) in offset_ranges(msgs).items()]
