"""A batch's outcomes turned into what the transaction writes: encoded output records (each
checked against the message size limit, so one oversized output fails one record), or a sink
stage's rows."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Optional

from confluent_kafka import Message

from conveyor.processors.errors import DocumentLimitError
from conveyor.streams.kafka.serde import AvroSerde


def encode_outcomes(serde: AvroSerde, output_topic: Optional[str], msgs: Sequence[Message], outcomes: Sequence[Any],
                    failures: list[tuple[Message, BaseException]], max_message_bytes: int
                    ) -> tuple[list[tuple[Message, list[tuple[str, bytes]]]], list[dict[str, Any]], list[Message]]:
    """Split the outcomes of ``msgs`` (one per message: output records, or an exception) into
    encoded outputs for ``output_topic``, sink rows (no output topic) and failures (appended to
    ``failures``). ``max_message_bytes`` is the broker's limit; 64 KiB of it is left for the key,
    headers and batch overhead.

    Every output is encoded before anything is produced, so one bad output fails one record.
    Returns ``(encoded, rows, sunk)``: ``[(msg, [(doc_id, value bytes)])]``, the sink rows,
    and the messages that produced rows.
    """
    encoded: list[tuple[Message, list[tuple[str, bytes]]]] = []
    rows: list[dict[str, Any]] = []
    sunk: list[Message] = []
    limit = max_message_bytes - 64 * 1024  # room for key, headers, batch overhead
    for msg, outcome in zip(msgs, outcomes):
        if isinstance(outcome, BaseException):
            failures.append((msg, outcome))
            continue
        try:
            if output_topic is None:
                rows.extend(outcome)
                if outcome:
                    sunk.append(msg)
                continue
            values = [(o["doc_id"], serde.encode(output_topic, o)) for o in outcome]
            too_big = [len(v) for _, v in values if len(v) > limit]
            if too_big:
                raise DocumentLimitError(f"output record of {max(too_big)} bytes exceeds the "
                                         f"{limit}-byte message limit")
            encoded.append((msg, values))
        except Exception as exc:  # noqa: BLE001 - this record's dead letter (or a retry)
            failures.append((msg, exc))
    return encoded, rows, sunk
