"""Reviewers' decisions: validation and the Feedback record; written exactly once by
:class:`conveyor.streams.ops.feedback.writer.FeedbackProducer`.

A decision answers one item version (``<partition>:<offset>`` of the prediction). Its id is
the sha256 of namespace, doc id and version, so the same item can be decided once: the
same decision submitted again is recognised and not written again; a different one is
refused (:class:`ConflictError`). :class:`FeedbackWriter` writes each record in its own Kafka
transaction with one transactional id per namespace (``<ns>.review``): a second app instance
fences the first, and a record is either committed (read_committed consumers and the queue
see it) or not at all.
"""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from typing import Any, Literal, Optional

from conveyor.processors.extract.fields.evidence import EXTRA_FIELDS
from conveyor.processors.models import MODELS_DIR
from conveyor.review.queue import ReviewItem, ReviewState
from conveyor.streams.config.settings import Settings
from conveyor.streams.kafka.serde import AvroSerde
from conveyor.streams.ops.feedback.writer import FeedbackProducer, decision_id, same_decision

EDITABLE_FIELDS = (("document_number", "dates", "total_amount", "currency", "vendor", "vendor_address") + EXTRA_FIELDS
                   + ("parties", "effective_date"))
"""KeyFields a reviewer may set (``schemas/key_fields.avsc``); ``dates`` is a comma-separated list,
``parties`` a semicolon-separated one."""
MAX_VALUE_CHARS = 200
"""Longest field value, label, or duplicate id a decision may carry."""
MAX_COMMENT_CHARS = 2000


class DecisionError(ValueError):
    """A decision that cannot be accepted; ``status`` is the HTTP status it maps to."""

    status = 422


class UnknownItemError(DecisionError):
    """No prediction routed to review has this doc id."""

    status = 404


class ConflictError(DecisionError):
    """The item was decided already (differently), or the decision names an older version."""

    status = 409


@dataclass(frozen=True)
class Decision:
    """What a reviewer submitted for one item.

    Attributes:
        action: ``accept``, ``correct`` (label and/or fields) or ``duplicate``.
        version: the item version the reviewer saw.
        label: the corrected label (``correct``); ``None`` keeps the predicted one.
        fields: corrected key fields, name -> value (``''`` clears one).
        duplicate_of: the other doc id (``duplicate``).
        comment: free text.
    """

    action: Literal["accept", "correct", "duplicate"]
    version: str
    label: Optional[str] = None
    fields: tuple[tuple[str, str], ...] = ()
    duplicate_of: Optional[str] = None
    comment: Optional[str] = None


def model_labels(model_name: str) -> tuple[str, ...]:
    """Labels of the installed model ``model_name`` (its ``manifest.json``), or ``()`` when unknown."""
    path = MODELS_DIR / model_name / "manifest.json"
    if not path.is_file():
        return ()
    return tuple(json.loads(path.read_text()).get("labels", ()))


def validate(item: ReviewItem, decision: Decision, labels: tuple[str, ...]) -> None:
    """Check ``decision`` against ``item`` before anything is written.

    Raises:
        ConflictError: the decision names another version than the item's current one.
        DecisionError: unknown action or label, a field not in the schema, a value over
            :data:`MAX_VALUE_CHARS`, a correction that changes nothing, a duplicate without the other id.
    """
    if decision.version != item.version:
        raise ConflictError(f"stale version {decision.version!r}: {item.doc_id} now holds prediction {item.version}")
    if decision.action not in ("accept", "correct", "duplicate"):
        raise DecisionError(f"unknown action {decision.action!r}: accept, correct or duplicate")
    for name, value in decision.fields:
        if name not in EDITABLE_FIELDS:
            raise DecisionError(f"unknown field {name!r}: one of {', '.join(EDITABLE_FIELDS)}")
        if len(value) > MAX_VALUE_CHARS:
            raise DecisionError(f"field {name} is {len(value)} characters long (at most {MAX_VALUE_CHARS})")
    for what, given in (("label", decision.label), ("duplicate_of", decision.duplicate_of)):
        if given is not None and len(given) > MAX_VALUE_CHARS:
            raise DecisionError(f"{what} is {len(given)} characters long (at most {MAX_VALUE_CHARS})")
    if decision.comment is not None and len(decision.comment) > MAX_COMMENT_CHARS:
        raise DecisionError(f"comment is {len(decision.comment)} characters long (at most {MAX_COMMENT_CHARS})")
    if decision.label is not None and labels and decision.label not in labels:
        raise DecisionError(f"unknown label {decision.label!r} for model {item.prediction['model_name']}")
    if decision.action == "correct" and not decision.fields and decision.label in (None, item.prediction["label"]):
        raise DecisionError("a correction must change the label or at least one field")
    if decision.action == "duplicate" and not decision.duplicate_of:
        raise DecisionError("a duplicate decision needs duplicate_of (the other document's id)")
    if decision.action == "duplicate" and decision.duplicate_of == item.doc_id:
        raise DecisionError("a document cannot be a duplicate of itself")


def feedback_record(namespace: str, item: ReviewItem, decision: Decision, reviewer: str,
                    now_ms: Optional[int] = None) -> dict[str, Any]:
    """The Feedback record (``schemas/feedback.avsc``) of ``decision`` on ``item``."""
    p = item.prediction
    label = decision.label if decision.action == "correct" and decision.label else p["label"]
    return {
        "decision_id": decision_id(namespace, item.doc_id, item.version), "doc_id": item.doc_id,
        "trace_id": p["trace_id"], "item_version": item.version, "reviewer": reviewer,
        "decided_at": now_ms if now_ms is not None else int(time.time() * 1000), "action": decision.action,
        "model_name": p["model_name"], "model_version": p["model_version"], "model_sha256": p["model_sha256"],
        "predicted_label": p["label"], "label": label,
        "corrected_fields": dict(decision.fields) if decision.action == "correct" else {},
        "duplicate_of": decision.duplicate_of if decision.action == "duplicate" else None,
        "comment": decision.comment or None,
    }


class FeedbackWriter:
    """Writes decisions to ``<ns>.feedback`` exactly once and marks them in the state.

    One decision at a time (a lock): check the item is still undecided, write the record in
    a transaction, commit, then mark the item decided. Transactional id ``<ns>.review``.

    Raises (from :meth:`submit`):
        UnknownItemError, ConflictError, DecisionError: see :func:`validate`.
        KafkaException: the transaction could not be committed (nothing was written; the
            decision may be submitted again).
    """

    def __init__(self, settings: Settings, state: ReviewState, *, serde: Optional[AvroSerde] = None):
        self.settings, self.state = settings, state
        self.producer = FeedbackProducer(settings, serde=serde)
        self._lock = threading.Lock()

    def submit(self, doc_id: str, decision: Decision, reviewer: str) -> tuple[dict[str, Any], bool]:
        """Decide ``doc_id``; returns ``(feedback record, written)`` — ``written`` is ``False``
        when the very same decision was already recorded (nothing is written again)."""
        with self._lock:
            item = self.state.item(doc_id)
            if item is None:
                raise UnknownItemError(f"no prediction routed to review has doc id {doc_id!r}")
            labels = model_labels(item.prediction["model_name"])
            validate(item, decision, labels)
            record = feedback_record(self.settings.namespace, item, decision, reviewer)
            if item.decision is not None:
                if same_decision(item.decision, record):
                    return item.decision, False
                raise ConflictError(f"{doc_id} was decided already by {item.decision['reviewer']} "
                                    f"({item.decision['action']})")
            self.producer.write(record)
            self.state.record_decision(record)
            return record, True

    def close(self) -> None:
        """Flush and drop the producer."""
        self.producer.close()
