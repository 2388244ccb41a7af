"""Fault injection for drills and the fault-injection suite (``CONVEYOR_FAULT_TRANSIENT_RATE``).

With a rate ``r`` > 0, a deterministic fraction ``r`` of records (chosen by a hash of the
processor name and the record key) fail their first :data:`INJECTED_ATTEMPTS` attempts in
that processor with :class:`InjectedTransientError`, so they travel the retry topics and
then succeed. Off by default; never enable it in production.
"""
from __future__ import annotations

import hashlib
from typing import Optional

from conveyor.processors.errors import TransientError

INJECTED_ATTEMPTS = 2
"""Attempts of a chosen record that fail (fewer than the default three retries, so an
injected fault never becomes a dead letter by itself)."""


class InjectedTransientError(TransientError):
    """A transient failure injected on purpose (``CONVEYOR_FAULT_TRANSIENT_RATE``)."""


def _fraction(processor: str, key: Optional[bytes]) -> float:
    digest = hashlib.sha256(processor.encode() + b"\0" + (key or b"")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def injected_failure(processor: str, key: Optional[bytes], attempt: int, rate: float) -> Optional[TransientError]:
    """The error to inject for a record, or ``None``.

    Args:
        processor: processor name (records are chosen independently per processor).
        key: the record key (its doc id).
        attempt: attempts already made for this record (0 on first delivery).
        rate: fraction of records chosen, 0–1.
    """
    if rate <= 0 or attempt >= INJECTED_ATTEMPTS or _fraction(processor, key) >= rate:
        return None
    return InjectedTransientError(f"injected transient failure (attempt {attempt + 1}, rate {rate:g})")
