"""Shadow scoring: a candidate model beside the live one, on the records the stream holds.

:func:`shadow_run` reads the namespace's ``embedded`` topic (the records the classify stage
read), scores each record of the candidate's kind with the candidate exactly as the classify
stage would (:class:`conveyor.processors.classify.ClassifyProcessor`, the candidate's own
thresholds and out-of-scope score; no near-duplicate search), writes the candidate's
predictions to ``<ns>.shadow-predictions`` (same schema as ``predictions``; nothing reads that
topic to route or act on it) and compares them with the live predictions on ``predictions``:
agreement, the review rate the candidate would have had beside the live one, and — where a
reviewer decided the input (``feedback``) — how often each was right.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from conveyor.streams.config.settings import Settings
from conveyor.streams.kafka.clients import DeliveryTracker, make_producer, produce
from conveyor.streams.kafka.io import read_to_end
from conveyor.streams.kafka.serde import AvroSerde, key_bytes
from conveyor.streams.kafka.topics import SHADOW_ROLE, topic
from conveyor.streams.ops.feedback.reader import labelled_decisions, newest_by_key

if TYPE_CHECKING:
    from conveyor.processors.classify.models import OnnxClassifier

KIND_OF_MODEL = {"doctype": "document", "intent-banking77": "text"}
"""The record kind each model classifies."""
BATCH = 64


def shadow_run(settings: Settings, model_name: str, candidate_dir: Path, *,
               max_records: Optional[int] = None) -> dict[str, Any]:
    """Score the stream's ``embedded`` records of ``model_name``'s kind with the candidate in
    ``candidate_dir``, write them to the shadow topic, and return the comparison report.

    Raises:
        KeyError: ``model_name`` is not a known model.
        FileNotFoundError / ModelIntegrityError: the candidate folder is missing or does not
            match its manifest.
        KafkaException: the shadow predictions could not be written.
    """
    from conveyor.processors.classify import ClassifyProcessor

    kind = KIND_OF_MODEL[model_name]
    serde = AvroSerde(settings)
    shadow = ClassifyProcessor(model_dirs={kind: candidate_dir})
    clf = shadow.classifiers[kind]
    live = newest_by_key(settings, "predictions", serde=serde)
    decided = {k: v["label"] for k, v in labelled_decisions(settings, model_name, serde=serde)[0].items()}
    embedded_topic, out_topic = topic(settings, "embedded"), topic(settings, SHADOW_ROLE)
    producer, tracker = make_producer(settings), DeliveryTracker()
    pairs: list[tuple[dict[str, Any], dict[str, Any]]] = []
    batch: list[dict[str, Any]] = []
    scored = 0

    def flush() -> None:
        nonlocal scored
        for record, outcome in zip(batch, shadow.process_batch(batch)):
            if isinstance(outcome, BaseException):  # process_batch returns the Exception it caught
                continue
            prediction = outcome[0]
            produce(producer, out_topic, key=key_bytes(record["doc_id"]),
                    value=serde.encode(out_topic, prediction), on_delivery=tracker.callback)
            scored += 1
            if record["doc_id"] in live:
                pairs.append((live[record["doc_id"]], prediction))
        batch.clear()

    for msg in read_to_end(settings, embedded_topic, timeout=600):
        record = serde.decode(embedded_topic, msg.value())
        if record.get("kind") != kind:
            continue
        batch.append(record)
        if len(batch) >= BATCH:
            flush()
        if max_records is not None and scored + len(batch) >= max_records:
            break
    flush()
    tracker.wait(producer)
    return _report(model_name, clf, scored, pairs, decided)


def _report(model_name: str, clf: OnnxClassifier, scored: int, pairs: list[tuple[dict[str, Any], dict[str, Any]]],
            decided: dict[str, str]) -> dict[str, Any]:
    n = len(pairs)
    agree = sum(1 for lv, sh in pairs if lv["label"] == sh["label"])
    reviewed = [(decided[lv["doc_id"]], lv["label"], sh["label"]) for lv, sh in pairs if lv["doc_id"] in decided]
    changes = Counter(f"{lv['label']} -> {sh['label']}" for lv, sh in pairs if lv["label"] != sh["label"])

    def rate(values: list[bool]) -> Optional[float]:
        return round(sum(values) / len(values), 4) if values else None

    return {
        "model": model_name, "candidate_sha256": clf.sha256, "candidate_version": clf.version,
        "scored": scored, "compared_with_live": n,
        "agreement": rate([lv["label"] == sh["label"] for lv, sh in pairs]), "agreeing": agree,
        "label_changes": dict(changes.most_common()),
        "live_review_rate": rate([lv["routing"] == "review" for lv, _ in pairs]),
        "candidate_review_rate": rate([sh["routing"] == "review" for _, sh in pairs]),
        "reviewed": {"inputs": len(reviewed), "live_right": sum(1 for t, lv, _ in reviewed if lv == t),
                     "candidate_right": sum(1 for t, _, sh in reviewed if sh == t),
                     "note": "a candidate trained on these reviewers' labels has seen them: compare on new inputs"},
        "duplicates_checked": False,
    }
