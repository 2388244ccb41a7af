"""The ``classify`` stage: Embedded records → Prediction records.

Texts (``kind == "text"``) are classified by the intent model, documents by the
document-type model (both shipped in ``processors/models``; see
:mod:`conveyor.processors.classify.models`). The routing rules of
:mod:`conveyor.processors.classify.routing` decide ``auto`` or ``review``; for documents
an optional duplicate finder (e.g. a Milvus similarity search) is consulted.
A model with an out-of-scope score (the intent model) sends inputs far from
every known class to review with an ``out_of_scope`` reason.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from conveyor.processors.base import Outcome, Processor, Record
from conveyor.processors.classify.doc_cues import CUE_NAMES, cue_vector, reads_cues, record_text
from conveyor.processors.classify.models import OnnxClassifier
from conveyor.processors.classify.routing import (
    DEFAULT_DUPLICATE_THRESHOLD,
    auto_thresholds_from,
    decide,
    fields_for_type,
    select_duplicates,
)
from conveyor.processors.errors import ModelInputError, ModelIntegrityError

__all__ = ["ClassifyProcessor", "OnnxClassifier", "DEFAULT_MODELS", "DuplicateFinder"]

#: Record kind → model folder name under ``models_dir``.
DEFAULT_MODELS: dict[str, str] = {"text": "intent-banking77", "document": "doctype"}

#: ``(doc_id, vector) -> [(other_doc_id, cosine_similarity), ...]``
DuplicateFinder = Callable[[str, list[float]], list[tuple[str, float]]]

TOP_K = 3


def _joint_thresholds(models_dir: Path | None) -> dict[str, float]:
    """Per document type, the joint confidence its required fields need (the key-field model's
    manifest, ``routing.joint_confidence_threshold``); ``{}`` without that model."""
    import json

    from conveyor.processors.models import MODELS_DIR

    path = (models_dir or MODELS_DIR) / "keyfields" / "manifest.json"
    try:
        routing = json.loads(path.read_text(encoding="utf-8")).get("routing") or {}
    except FileNotFoundError:
        return {}
    return {label: float(v) for label, v in (routing.get("joint_confidence_threshold") or {}).items()}


def _default_models_dir() -> Path:
    from conveyor.processors.models import MODELS_DIR

    return MODELS_DIR


class ClassifyProcessor(Processor):
    """Classify embedded texts and documents and route them.

    Args:
        models_dir: folder holding the model folders (default: the shipped
            ``processors/models``).
        find_duplicates: called for documents with ``(doc_id, doc_vector)``;
            returns candidate ``(doc_id, similarity)`` pairs. None: no check.
        duplicate_threshold: similarity at or above which a candidate counts as
            a possible duplicate.
        auto_threshold: confidence below which a prediction goes to review;
            overrides every manifest's ``auto_threshold`` and the thresholds of the
            document types the manifest enables (never enables a disabled one;
            default: manifest values, else 0.7).
        model_names: kind → model folder (default :data:`DEFAULT_MODELS`).
        check_embedding_model: refuse records whose embedding model sha256
            differs from the one the classifier was trained on.
        model_dirs: kind → model folder path, overriding ``models_dir``/``model_names``
            (the model registry's live models, :mod:`conveyor.streams.ops.model_registry`).

    Raises:
        FileNotFoundError: a model folder is missing.
        ModelIntegrityError: a model file does not match its manifest.
    """

    name = "classify"
    version = "0.1.0"

    def __init__(
        self,
        models_dir: str | Path | None = None,
        find_duplicates: DuplicateFinder | None = None,
        duplicate_threshold: float = DEFAULT_DUPLICATE_THRESHOLD,
        auto_threshold: float | None = None,
        *,
        model_names: Mapping[str, str] | None = None,
        check_embedding_model: bool = True,
        model_dirs: Mapping[str, str | Path] | None = None,
    ) -> None:
        base = Path(models_dir) if models_dir is not None else _default_models_dir()
        dirs = model_dirs or {kind: base / folder for kind, folder in (model_names or DEFAULT_MODELS).items()}
        self.classifiers: dict[str, OnnxClassifier] = {kind: OnnxClassifier.load(d) for kind, d in dirs.items()}
        self.thresholds = {k: auto_thresholds_from(c.manifest, c.labels, auto_threshold)
                           for k, c in self.classifiers.items()}
        self._reads_cues = {k: self._check_cues(c) for k, c in self.classifiers.items()}
        self.joint_thresholds = _joint_thresholds(base if model_dirs is None else None)
        self.find_duplicates = find_duplicates
        self.duplicate_threshold = float(duplicate_threshold)
        self.check_embedding_model = check_embedding_model

    # ---------------------------------------------------------------- checks
    def _vector(self, record: Record) -> tuple[OnnxClassifier, np.ndarray, np.ndarray]:
        """``(classifier, model features, doc_vector)``; raises ModelInputError for a bad record."""
        kind = record.get("kind")
        if not isinstance(kind, str) or kind not in self.classifiers:
            raise ModelInputError(f"no classifier for kind {kind!r}")
        clf = self.classifiers[kind]
        vec = record.get("doc_vector")
        if vec is None:
            raise ModelInputError("record has no doc_vector")
        arr = np.asarray(vec, dtype=np.float32)
        cues = self._reads_cues[kind]
        expected = clf.input_dim - (len(CUE_NAMES) if cues else 0)
        if arr.ndim != 1 or arr.shape[0] != expected:
            raise ModelInputError(f"doc_vector has size {arr.size}, {clf.name} expects {expected}")
        if not np.all(np.isfinite(arr)):
            raise ModelInputError("doc_vector contains NaN or infinity")
        if self.check_embedding_model:
            expected_sha = (clf.manifest.get("embedding_model") or {}).get("sha256")
            got = record.get("model_sha256")
            if expected_sha and got and expected_sha != got:
                raise ModelInputError(
                    f"embedding model {record.get('model_name')} ({got[:12]}…) differs from the one "
                    f"{clf.name} was trained on ({expected_sha[:12]}…)"
                )
        features = np.concatenate([arr, cue_vector(record_text(record))]) if cues else arr
        return clf, features, arr

    @staticmethod
    def _check_cues(clf: OnnxClassifier) -> bool:
        """Does ``clf`` read the document cues after the embedding? Raises ModelIntegrityError
        when its manifest names other cues than :data:`CUE_NAMES` (trained with other patterns)."""
        spec = clf.manifest.get("input") or {}
        if not reads_cues(clf.manifest):
            return False
        if list(spec.get("cues") or []) != list(CUE_NAMES):
            raise ModelIntegrityError(f"{clf.name} was trained on cues {spec.get('cues')}, this version computes "
                                      f"{list(CUE_NAMES)}: retrain it (make models)")
        return True

    # ----------------------------------------------------------------- batch
    def process_batch(self, records: Sequence[Record]) -> list[Outcome]:
        """One Prediction per input; a bad input yields its exception only."""
        outcomes: list[Outcome | None] = [None] * len(records)
        by_kind: dict[str, list[tuple[int, np.ndarray, np.ndarray]]] = {}
        for i, record in enumerate(records):
            try:
                clf, features, vec = self._vector(record)
            except Exception as exc:  # noqa: BLE001 - this record's dead letter
                outcomes[i] = exc
                continue
            by_kind.setdefault(record["kind"], []).append((i, features, vec))

        for kind, items in by_kind.items():
            clf = self.classifiers[kind]
            try:
                proba, ood = clf.predict_scores(np.stack([f for _, f, _ in items]))
            except Exception as exc:  # noqa: BLE001 - model failure: every record of this kind
                for i, _, _ in items:
                    outcomes[i] = exc
                continue
            vectors = [(i, vec) for i, _, vec in items]
            in_batch = self._batch_matches(records, vectors) if kind == "document" else {}
            for n, ((i, vec), p) in enumerate(zip(vectors, proba)):
                try:
                    score = None if ood is None else float(ood[n])
                    outcomes[i] = [self._prediction(records[i], clf, kind, vec, p, in_batch.get(i, []), score)]
                except Exception as exc:  # noqa: BLE001 - this record's failure, the others go on
                    outcomes[i] = exc
        return outcomes  # type: ignore[return-value]  # every slot was set in the loops above

    @staticmethod
    def _batch_matches(records: Sequence[Record], items: list[tuple[int, np.ndarray]]) -> dict[int, list[tuple[str, float]]]:
        """Cosine similarity of each document to the documents before it in the same batch.

        Near-duplicates that arrive together are not in Milvus yet when the
        batch is classified, so the later one is compared with the earlier ones
        here. Vectors are L2-normalised, so the dot product is the cosine.
        Returns ``{batch position: [(earlier doc_id, cosine), ...]}``.
        """
        matches: dict[int, list[tuple[str, float]]] = {}
        for n, (i, vec) in enumerate(items):
            matches[i] = [(records[j]["doc_id"], float(vec @ other)) for j, other in items[:n]]
        return matches

    def _prediction(self, record: Record, clf: OnnxClassifier, kind: str, vec: np.ndarray, p: np.ndarray,
                    batch_matches: Sequence[tuple[str, float]] = (), ood_score: float | None = None) -> Record:
        order = np.argsort(-p, kind="stable")
        label = clf.labels[int(order[0])]
        confidence = float(p[order[0]])
        if not math.isfinite(confidence):
            raise ModelInputError("model returned a non-finite probability")
        if ood_score is not None and not math.isfinite(ood_score):
            raise ModelInputError("model returned a non-finite out-of-scope score")
        top = [{"label": clf.labels[int(j)], "score": float(p[j])} for j in order[:TOP_K]]
        duplicates: list[tuple[str, float]] = []
        if kind == "document":
            matches = list(batch_matches)
            if self.find_duplicates is not None:
                matches += self.find_duplicates(record["doc_id"], [float(x) for x in vec])
            duplicates = select_duplicates(matches, doc_id=record["doc_id"], threshold=self.duplicate_threshold)
        fields = fields_for_type(label, record.get("fields"))
        routing, reasons = decide(
            kind=kind,
            label=label,
            confidence=confidence,
            threshold=self.thresholds[kind][label],
            fields=fields,
            duplicates=duplicates,
            ood_score=ood_score,
            ood_threshold=clf.ood_threshold,
            joint_threshold=self.joint_thresholds.get(label) if kind == "document" else None,
        )
        return {
            **self.meta(record),
            "kind": kind,
            "filename": record.get("filename"),
            "label": label,
            "confidence": confidence,
            "top_labels": top,
            "model_name": clf.name,
            "model_version": clf.version,
            "model_sha256": clf.sha256,
            "routing": routing,
            "reasons": reasons,
            "duplicates": [{"doc_id": d, "score": s} for d, s in duplicates],
            "fields": fields,
        }
