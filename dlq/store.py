"""What inspection and replay need from Kafka, as a small interface.

:mod:`conveyor.dlq` sits below the Kafka plumbing (``conveyor.streams`` uses its envelope and
failure policy), so it does not import it: :func:`~conveyor.dlq.inspect.iter_dead_letters`
and :func:`~conveyor.dlq.replay.replay` take a :class:`DeadLetterStore`, which
:class:`conveyor.streams.kafka.deadletters.KafkaDeadLetterStore` implements for a namespace.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Optional, Protocol


class Record(Protocol):
    """The slice of ``confluent_kafka.Message`` read here."""

    def topic(self) -> str: ...
    def partition(self) -> int: ...
    def offset(self) -> int: ...
    def key(self) -> Optional[bytes]: ...
    def value(self) -> Optional[bytes]: ...
    def headers(self) -> Optional[list[tuple[str, Optional[bytes]]]]: ...
    def timestamp(self) -> tuple[int, int]: ...


class Transaction(Protocol):
    """A transactional producer (``confluent_kafka.Producer`` after ``init_transactions``)."""

    def begin_transaction(self) -> None: ...
    def commit_transaction(self, timeout: float) -> None: ...
    def abort_transaction(self, timeout: float) -> None: ...


class DeadLetterStore(Protocol):
    """Kafka access of one namespace for dead-letter inspection and replay."""

    def dead_letter_topics(self) -> dict[str, str]:
        """``{stage name: dead-letter topic}`` of every stage."""
        ...

    def ledger_topic(self) -> str:
        """The compacted replay ledger (``<ns>.dlq.replays``)."""
        ...

    def resolve(self, name_or_role: str) -> str:
        """A role's full topic name, or the argument unchanged (already a full name)."""
        ...

    def read(self, topic: str, *, timeout: float) -> Iterable[Record]:
        """Every committed record of ``topic`` up to its end as of the call (nothing when it
        does not exist).

        Raises:
            TimeoutError: the end was not reached within ``timeout`` seconds.
        """
        ...

    def existing_topics(self, timeout: float) -> set[str]:
        """Names of the topics that exist on the cluster."""
        ...

    def transactional_producer(self, transactional_id: str) -> Transaction:
        """A producer with transactions initialised under ``transactional_id``."""
        ...

    def send(self, producer: Transaction, topic: str, *, key: Optional[bytes], value: Optional[bytes],
             headers: Sequence[tuple[str, bytes]] = ()) -> None:
        """Produce one record (stamped now), waiting while the producer's queue is full."""
        ...

    def decode(self, topic: str, value: Optional[bytes]) -> dict[str, Any]:
        """The Avro record ``value`` written for ``topic``.

        Raises:
            Exception: the value does not decode (the caller reports why).
        """
        ...
