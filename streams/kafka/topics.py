"""The topic catalogue: every topic Conveyor uses, its schema, partitions and configs —
derived from the pipeline definition (:mod:`conveyor.streams.topology.pipeline`).

Per namespace: the sources (``documents``, ``texts``), each stage's output topic, a
dead-letter topic ``dlq.<stage>`` for every stage, a retry topic ``retry.<stage>`` for every
stage that retries, the stages' extra topics (``drift-reference``), the replay ledger
``dlq.replays``, the reviewers' decisions ``feedback`` and a candidate model's
``shadow-predictions``. Topic names take the namespace prefix (``CONVEYOR_NAMESPACE``), so several
pipelines and test runs share one cluster without seeing each other's records.
"""
from __future__ import annotations

from dataclasses import dataclass
from importlib.resources.abc import Traversable
from typing import Optional

from conveyor.streams.config.settings import Settings
from conveyor.streams.topology.pipeline import (
    Pipeline,
    SchemaRef,
    pipeline,
    schema_file,
)

REPLAYS_ROLE = "dlq.replays"
"""Role of the compacted topic recording which dead letters were replayed (replay ledger)."""
WRITE_TIME = (("message.timestamp.type", "LogAppendTime"),)
"""Topic config of every topic Conveyor alone writes: the broker stamps each record with the
time it appends it. Retention (``retention.ms``, checked against a segment's newest record
timestamp) then counts from when Conveyor wrote the record, never from an old input's
timestamp: a dead letter, retry record or output of an input stamped last month would
otherwise be deleted at the next retention check (every 5 min by default), and a retry
record deleted before its retry runs loses its input. Conveyor's producers also write with
the current time (so topics created elsewhere with ``CreateTime`` behave the same) and carry
the input's own timestamp in a header (``conveyor.retry.origin.timestamp``,
``conveyor.dlq.origin.timestamp``, ``conveyor.replay.origin.timestamp``). Source topics keep
``CreateTime``: the user's timestamp is the user's, and dead letters show it."""
COMPACT = (("cleanup.policy", "compact"),)
FEEDBACK_ROLE = "feedback"
"""Role of the topic holding reviewers' decisions (``schemas/feedback.avsc``, key: doc id),
written by the review app (:mod:`conveyor.review`). Kept forever: the decisions are training
labels, and the review queue is rebuilt from this topic and the predictions."""
KEEP_FOREVER = (("retention.ms", "-1"),)
SHADOW_ROLE = "shadow-predictions"
"""Role of the topic holding a candidate model's predictions beside the live ones
(``conveyor models shadow``; schema ``prediction.avsc``); nothing routes on it."""


@dataclass(frozen=True)
class TopicSpec:
    """One topic: its role in the pipeline, full name, Avro schema and partitions.

    ``schema`` is ``None`` for raw-bytes topics (dead letters and retry records keep the
    original bytes of the failed record, whatever their format).
    """

    role: str
    name: str
    schema: Optional[SchemaRef]
    partitions: int
    description: str
    config: tuple[tuple[str, str], ...] = ()
    """Topic configs, e.g. ``cleanup.policy=compact``."""

    @property
    def schema_path(self) -> Optional[Traversable]:
        """The ``.avsc`` file, or ``None`` for raw-bytes topics."""
        return schema_file(self.schema) if self.schema is not None else None


def topic_name(settings: Settings, role: str) -> str:
    """``<namespace>.<role>``: the full name of any role's topic."""
    return f"{settings.namespace}.{role}"


def dlq_role(processor: str) -> str:
    """Role name of ``processor``'s dead-letter topic, e.g. ``dlq.extract``."""
    return f"dlq.{processor}"


def retry_role(processor: str) -> str:
    """Role name of ``processor``'s retry topic, e.g. ``retry.embed``."""
    return f"retry.{processor}"


def catalogue(settings: Settings, of: Optional[Pipeline] = None) -> dict[str, TopicSpec]:
    """All topics of ``settings.namespace`` for the pipeline ``of`` (default: the installed
    pipeline, plugins included), keyed by role, in pipeline order."""
    p = of or pipeline()
    ns = settings.namespace

    def spec(role: str, schema: Optional[SchemaRef], partitions: int, description: str,
             config: tuple[tuple[str, str], ...] = WRITE_TIME) -> TopicSpec:
        return TopicSpec(role, f"{ns}.{role}", schema, partitions, description, config)

    specs = {s.role: spec(s.role, s.schema, s.partitions, s.description, ()) for s in p.sources}
    for st in p.stages:
        if st.output is not None:
            specs[st.output.role] = spec(st.output.role, st.output.schema, st.output.partitions,
                                         st.output.description)
    for st in p.stages:
        specs[dlq_role(st.name)] = spec(dlq_role(st.name), None, 3,
                                        f"dead letters of the {st.name} processor (original bytes + error headers)")
    for st in p.stages:
        if st.retry:
            specs[retry_role(st.name)] = spec(
                retry_role(st.name), None, 3,
                f"records the {st.name} processor retries after a transient failure (original bytes, due-time header)")
    for st in p.stages:
        for extra in st.extra_topics:
            specs[extra.role] = spec(extra.role, None, extra.partitions, extra.description,
                                     (*extra.config, *WRITE_TIME))
    specs[REPLAYS_ROLE] = spec(REPLAYS_ROLE, None, 1,
                               "compacted ledger of replayed dead letters (key: dead-letter topic/partition/offset)",
                               (*COMPACT, *WRITE_TIME))
    specs[FEEDBACK_ROLE] = spec(FEEDBACK_ROLE, "feedback.avsc", 3,
                                "reviewers' decisions on predictions routed to review (key: doc id)",
                                (*KEEP_FOREVER, *WRITE_TIME))
    specs[SHADOW_ROLE] = spec(SHADOW_ROLE, "prediction.avsc", 3,
                              "a candidate model's predictions beside the live ones (conveyor models shadow; never routed)")
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
    """Names of the dead-letter topics of every stage of the namespace's pipeline."""
    return [topic_name(settings, dlq_role(s.name)) for s in pipeline().stages]


def role_of(settings: Settings, name: str) -> Optional[str]:
    """Role of a full topic name, or ``None`` if it is not in the catalogue."""
    for spec in catalogue(settings).values():
        if spec.name == name:
            return spec.role
    return None
