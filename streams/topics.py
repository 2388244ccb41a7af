"""The topic catalogue: every topic Conveyor uses, its schema and partitions.

Topic names take the namespace prefix (``CONVEYOR_NAMESPACE``), so several
pipelines and test runs share one cluster without seeing each other's records.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from streams.settings import Settings

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"
"""Directory of the ``.avsc`` files, the single source of truth for record shapes."""

PROCESSORS = ("extract", "embed", "index", "classify", "drift")
"""Processor names; each has its own consumer group and dead-letter topic."""
RETRYING_PROCESSORS = ("extract", "embed", "index", "classify")
"""Processors run by :class:`streams.runner.Runner`, each with a retry topic for records that
failed transiently (the drift monitor has no retry path: it only observes)."""
REPLAYS_ROLE = "dlq.replays"
"""Role of the compacted topic recording which dead letters were replayed (replay ledger)."""
INPUT_ROLES = ("documents", "texts")
"""Topics users produce to; every other catalogue topic is written by Conveyor alone."""
WRITE_TIME = (("message.timestamp.type", "LogAppendTime"),)
"""Topic config of every topic Conveyor alone writes: the broker stamps each record with the
time it appends it. Retention (``retention.ms``, checked against a segment's newest record
timestamp) then counts from when Conveyor wrote the record, never from an old input's
timestamp: a dead letter, retry record or output of an input stamped last month would
otherwise be deleted at the next retention check (every 5 min by default), and a retry
record deleted before its retry runs loses its input. Conveyor's producers also write with
the current time (so topics created elsewhere with ``CreateTime`` behave the same) and carry
the input's own timestamp in a header (``conveyor.retry.origin.timestamp``,
``conveyor.dlq.origin.timestamp``, ``conveyor.replay.origin.timestamp``). Input topics keep
``CreateTime``: the user's timestamp is the user's, and dead letters show it."""


@dataclass(frozen=True)
class TopicSpec:
    """One topic: its role in the pipeline, full name, Avro schema file and partitions.

    ``schema`` is ``None`` for dead-letter topics, whose values are the original
    bytes of the failed record, whatever their format.
    """

    role: str
    name: str
    schema: Optional[str]
    partitions: int
    description: str
    config: tuple[tuple[str, str], ...] = ()
    """Extra topic configs, e.g. ``cleanup.policy=compact``."""

    @property
    def schema_path(self) -> Optional[Path]:
        """Path of the ``.avsc`` file, or ``None`` for raw-bytes topics."""
        return SCHEMA_DIR / self.schema if self.schema else None


_ROLES = (
    # role, schema, partitions, description
    ("documents", "document.avsc", 3, "raw documents produced by users (inline bytes or blob reference)"),
    ("texts", "text.avsc", 3, "raw texts produced by users"),
    ("extracted", "extracted.avsc", 3, "text, pages and key fields extracted from documents"),
    ("embedded", "embedded.avsc", 3, "chunk embeddings of documents and texts"),
    ("predictions", "prediction.avsc", 3, "one result per input: label, confidence, routing"),
    ("drift", "drift_report.avsc", 1, "drift reports of the drift monitor"),
)


def dlq_role(processor: str) -> str:
    """Role name of ``processor``'s dead-letter topic, e.g. ``dlq.extract``."""
    return f"dlq.{processor}"


def retry_role(processor: str) -> str:
    """Role name of ``processor``'s retry topic, e.g. ``retry.embed``."""
    return f"retry.{processor}"


def catalogue(settings: Settings) -> dict[str, TopicSpec]:
    """All topics of ``settings.namespace``, keyed by role.

    Returns roles ``documents``, ``texts``, ``extracted``, ``embedded``,
    ``predictions``, ``drift`` and ``dlq.<processor>`` for every processor.
    """
    ns = settings.namespace
    specs = {
        role: TopicSpec(role, f"{ns}.{role}", schema, partitions, desc,
                        config=() if role in INPUT_ROLES else WRITE_TIME)
        for role, schema, partitions, desc in _ROLES
    }
    for proc in PROCESSORS:
        role = dlq_role(proc)
        specs[role] = TopicSpec(
            role, f"{ns}.{role}", None, 3,
            f"dead letters of the {proc} processor (original bytes + error headers)",
            config=WRITE_TIME,
        )
    for proc in RETRYING_PROCESSORS:
        role = retry_role(proc)
        specs[role] = TopicSpec(
            role, f"{ns}.{role}", None, 3,
            f"records the {proc} processor retries after a transient failure (original bytes, due-time header)",
            config=WRITE_TIME,
        )
    specs["drift-reference"] = TopicSpec(
        "drift-reference", f"{ns}.drift-reference", None, 1,
        "the drift monitor's pinned or learned reference (compacted; `conveyor drift reference`)",
        config=(("cleanup.policy", "compact"), *WRITE_TIME),
    )
    specs[REPLAYS_ROLE] = TopicSpec(
        REPLAYS_ROLE, f"{ns}.{REPLAYS_ROLE}", None, 1,
        "compacted ledger of replayed dead letters (key: dead-letter topic/partition/offset)",
        config=(("cleanup.policy", "compact"), *WRITE_TIME),
    )
    return specs


def topic(settings: Settings, role: str) -> str:
    """Full topic name of ``role`` in ``settings.namespace``.

    Raises:
        KeyError: ``role`` is not in the catalogue.
    """
    return catalogue(settings)[role].name


def resolve(settings: Settings, name_or_role: str) -> str:
    """The full topic name of a catalogue role (``predictions``), or ``name_or_role``
    unchanged when it is not a role (already a full name)."""
    specs = catalogue(settings)
    return specs[name_or_role].name if name_or_role in specs else name_or_role


def dlq_topics(settings: Settings) -> list[str]:
    """Names of every dead-letter topic of the namespace."""
    return [topic(settings, dlq_role(p)) for p in PROCESSORS]


def role_of(settings: Settings, topic_name: str) -> Optional[str]:
    """Role of a full topic name, or ``None`` if it is not in the catalogue."""
    for spec in catalogue(settings).values():
        if spec.name == topic_name:
            return spec.role
    return None
