"""Reading reviewers' decisions back: the newest decision per input, and the inputs' texts.

The ``feedback`` topic (written by the review app, ``schemas/feedback.avsc``) is read by the
drift reference (``pin --feedback``), shadow scoring and the gated retrain; they share these
readers so that "which decisions count" is decided in one place.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Optional

from conveyor.streams.config.settings import Settings
from conveyor.streams.kafka.io import read_to_end
from conveyor.streams.kafka.serde import AvroSerde
from conveyor.streams.kafka.topics import FEEDBACK_ROLE, topic

LABELLING_ACTIONS = ("accept", "correct")
"""Decisions that settle an input's label (a ``duplicate`` decision does not)."""


def newest_by_key(settings: Settings, role: str, *, keys: Optional[Iterable[str]] = None,
                  serde: Optional[AvroSerde] = None, timeout: float = 300.0) -> dict[str, dict[str, Any]]:
    """The newest decoded record per key of ``role``'s topic (read_committed, from the earliest
    offset to the end as of the call); only the keys in ``keys`` when given. A missing topic
    yields ``{}``.

    Raises:
        TimeoutError: the topic was not read to its end within ``timeout`` seconds.
    """
    serde = serde or AvroSerde(settings)
    name, wanted = topic(settings, role), (set(keys) if keys is not None else None)
    out: dict[str, dict[str, Any]] = {}
    for msg in read_to_end(settings, name, timeout=timeout, missing_ok=True):
        raw_key = msg.key()
        key = raw_key.decode("utf-8", "replace") if raw_key else None
        if key is not None and (wanted is None or key in wanted):
            out[key] = serde.decode(name, msg.value())
    return out


def labelled_decisions(settings: Settings, model_name: str, *,
                       serde: Optional[AvroSerde] = None) -> tuple[dict[str, dict[str, Any]], dict[str, int]]:
    """``({doc_id: the newest accept or correct decision answering model_name}, {reason: decisions
    left out})`` — reasons ``other model`` and ``duplicate``."""
    serde = serde or AvroSerde(settings)
    name = topic(settings, FEEDBACK_ROLE)
    newest: dict[str, dict[str, Any]] = {}
    skipped = {"other model": 0, "duplicate": 0}
    for msg in read_to_end(settings, name, timeout=120, missing_ok=True):
        fb = serde.decode(name, msg.value())
        if fb["model_name"] != model_name:
            skipped["other model"] += 1
        elif fb["action"] not in LABELLING_ACTIONS:
            skipped["duplicate"] += 1
        else:
            newest[fb["doc_id"]] = fb
    return newest, skipped


def input_texts(settings: Settings, doc_ids: Iterable[str], roles: tuple[str, ...] = ("texts", "extracted"), *,
                serde: Optional[AvroSerde] = None) -> dict[str, dict[str, Any]]:
    """``{doc_id: the newest record holding its text}`` — the ``texts`` record of a text, the
    ``extracted`` record of a document; inputs no longer in the topics are absent."""
    serde = serde or AvroSerde(settings)
    ids = set(doc_ids)
    out: dict[str, dict[str, Any]] = {}
    for role in roles:
        out.update(newest_by_key(settings, role, keys=ids, serde=serde))
    return out
