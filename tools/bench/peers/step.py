"""The embed step every framework in the peer benchmark runs: the same work as Conveyor's embed
stage, without Conveyor's runner.

A value of ``<ns>.texts`` (Avro, Confluent wire format) is decoded with the project's serde,
embedded by :class:`~conveyor.processors.embed.EmbedProcessor` (the same MiniLM-L6 int8 model,
threads and chunking as the stage) and encoded as an ``<ns>.embedded`` record keyed by its
``doc_id``. Only the framework around it differs: consuming, producing, committing.
"""
from __future__ import annotations

from collections.abc import Sequence

from conveyor.streams.config.settings import Settings
from conveyor.streams.kafka.serde import AvroSerde, key_bytes
from conveyor.streams.kafka.topics import topic


class EmbedStep:
    """Decode → embed → encode for one framework's consumer loop.

    Args:
        settings: the benchmark namespace's settings (topics ``<ns>.texts`` and ``<ns>.embedded``
            must exist and their schemas be registered).
    """

    def __init__(self, settings: Settings):
        from conveyor.processors.embed import EmbedProcessor

        self.serde = AvroSerde(settings)
        self.source = topic(settings, "texts")
        self.sink = topic(settings, "embedded")
        self.processor = EmbedProcessor()

    def batch(self, values: Sequence[bytes]) -> list[tuple[bytes, bytes]]:
        """``values`` (raw Kafka values of ``<ns>.texts``) → ``(key, value)`` pairs for
        ``<ns>.embedded``, one per text, in order.

        Raises:
            conveyor.streams.kafka.serde.DecodeError: a value is not a text record (benchmarks feed
                only valid ones).
            BaseException: the processor's error for a text, re-raised.
        """
        records = [self.serde.decode(self.source, v) for v in values]
        out: list[tuple[bytes, bytes]] = []
        for outcome in self.processor.process_batch(records):
            if isinstance(outcome, BaseException):
                raise outcome
            for rec in outcome:
                out.append((key_bytes(rec["doc_id"]), self.serde.encode(self.sink, rec)))
        return out

    def one(self, value: bytes) -> bytes:
        """One text value → its embedded value (frameworks that process a record at a time)."""
        ((_, encoded),) = self.batch([value])
        return encoded
