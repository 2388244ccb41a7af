"""Poison pills that crash the process: found across restarts and dead-lettered.

A record that makes a processor raise is dead-lettered by the runner. A record that kills the
process (a native crash in a decoder, the OOM killer) cannot be caught there: the restarted
process would read it again and die again, stalling its partition forever. :class:`CrashGuard`
remembers, in a small file, which records the current batch holds; the file is removed when
the batch is committed. If a process starts and finds the file, the previous one died mid-batch:
the records of that batch are then processed one at a time, and a single record that was being
processed during :data:`MAX_CRASHES` crashes is dead-lettered with :class:`PoisonPillError`
without being processed again. (Kafka Streams and Flink leave this to users; this is the
"crash-loop breaker" many operators add by hand.)

Caveat: a SIGKILL from outside (an operator, an eviction) also counts as a crash; a record
must be in flight during :data:`MAX_CRASHES` consecutive ones to be dead-lettered.
"""
from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

from confluent_kafka import Message

from conveyor.processors.errors import ConveyorError
from conveyor.streams.kafka.records import position

log = logging.getLogger(__name__)

MAX_CRASHES = 3
"""Crashes of the process while one record was being processed alone before it is dead-lettered."""


class PoisonPillError(ConveyorError):
    """The record crashed the processor process repeatedly; it is dead-lettered unprocessed."""


def _key(msg: Message) -> list[str | int]:
    return list(position(msg))


class CrashGuard:
    """Per-runner crash-loop breaker backed by the JSON file ``path``.

    The file holds ``{"records": [[topic, partition, offset], ...], "attempts": n,
    "isolate": {"topic:partition": last offset}}`` while a batch is in flight.
    """

    def __init__(self, path: Path):
        self.path = path
        self.isolate: dict[str, int] = {}
        prev = self._load()
        self.prev: Optional[dict[str, Any]] = prev
        if prev and prev.get("records"):
            log.warning("a previous process died while processing %d record(s) (%d attempt(s)); "
                        "processing them one at a time", len(prev.get("records", [])), prev.get("attempts", 1))
            for t, p, o in prev.get("records", []):
                k = f"{t}:{p}"
                self.isolate[k] = max(self.isolate.get(k, -1), o)
            self.isolate.update({k: max(v, self.isolate.get(k, -1)) for k, v in prev.get("isolate", {}).items()})

    def _load(self) -> Optional[dict[str, Any]]:
        try:
            state: dict[str, Any] = json.loads(self.path.read_text())
            return state
        except (OSError, ValueError):
            return None

    def _save(self, records: list[list[str | int]], attempts: int) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"records": records, "attempts": attempts, "isolate": self.isolate}))
        os.replace(tmp, self.path)

    def _isolating(self, msg: Message) -> bool:
        topic, partition, offset = position(msg)
        return self.isolate.get(f"{topic}:{partition}", -1) >= offset

    def admit(self, msgs: Sequence[Message]) -> tuple[list[Message], Optional[Message], list[Message]]:
        """Plan a batch: ``(process, poison, put_back)``.

        ``process`` are the records to process now (recorded as in flight), ``poison`` a
        record to dead-letter unprocessed (or ``None``), ``put_back`` records to rewind and
        read again later (while isolating, one record is processed per batch, and a batch
        stops before the first record of a partition being isolated).
        """
        if not msgs:
            return [], None, []
        first = msgs[0]
        if not self._isolating(first):
            # Records before the first isolated one are processed together; the isolated one
            # (and what follows it) is read again, so a crash on it is counted against it alone.
            cut = next((i for i, m in enumerate(msgs) if self._isolating(m)), len(msgs))
            self._save([_key(m) for m in msgs[:cut]], 1)
            return list(msgs[:cut]), None, list(msgs[cut:])
        # The crashed record's count is kept until that record comes back: the restarted
        # process may first read other isolated records (fetch order across partitions varies).
        attempts = 1
        if self.prev and self.prev.get("records") == [_key(first)]:
            attempts = int(self.prev.get("attempts", 1)) + 1
            self.prev = None
        if attempts > MAX_CRASHES:
            self.clear()
            return [], first, list(msgs[1:])
        self._save([_key(first)], attempts)
        return [first], None, list(msgs[1:])

    def committed(self, msgs: Sequence[Message]) -> None:
        """The batch is committed: forget it, and stop isolating partitions past the crash point."""
        for m in msgs:
            topic, partition, offset = position(m)
            k = f"{topic}:{partition}"
            if self.isolate.get(k, -1) <= offset:
                self.isolate.pop(k, None)
        self.clear()

    def clear(self) -> None:
        """Remove the in-flight record file (nothing in flight)."""
        if self.isolate:
            self._save([], 0)
            return
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
