"""Per-window drift state: the signals and their mergeable aggregates.

Pure Python + numpy (no Kafka, no faust). A :class:`WindowAggregate` holds, for one
window, the state of every signal seen in it:

* ``embedding`` (:data:`EMBEDDING`) - :class:`~conveyor.streams.drift.sample.Sample` of unit
  document vectors (tested with MMD);
* ``text_length`` (:data:`TEXT_LENGTH`) - sample of text lengths in characters (KS);
* ``ocr_confidence`` (:data:`OCR_CONFIDENCE`) - sample of the mean OCR confidence of
  documents that were OCR'd, in [0, 1] (KS);
* ``label:<model>`` (:func:`label_signal`) - :class:`Categorical` counts per predicted
  label (chi-squared).

Samples are bottom-k by document id (:mod:`conveyor.streams.drift.sample`), counts are sums, so
aggregates of partitions or of several windows merge (:meth:`WindowAggregate.merge`).
Everything serialises to JSON (:func:`state_to_dict`, :meth:`Reference.to_dict`) for the
stored reference.
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Optional, Union

import numpy as np

from conveyor.streams.drift.sample import Sample, priority

EMBEDDING = "embedding"
"""Signal name of the document embeddings."""
TEXT_LENGTH = "text_length"
"""Signal name of the text lengths (characters)."""
OCR_CONFIDENCE = "ocr_confidence"
"""Signal name of the mean OCR confidence of OCR'd documents."""
LABEL_PREFIX = "label:"
"""Signal name prefix of a model's predicted labels: ``label:<model_name>``."""

WINDOW_SAMPLE = 200
"""Values kept per window and signal (bottom-k): windows with more documents are subsampled."""
REFERENCE_SAMPLE = 500
"""Values kept per signal in a reference (MMD cost grows with (reference + window)^2)."""


def label_signal(model_name: str) -> str:
    """Signal name of ``model_name``'s predicted labels."""
    return f"{LABEL_PREFIX}{model_name}"


@dataclass
class Categorical:
    """Counts per category (predicted labels)."""

    counts: dict[str, int] = field(default_factory=dict)

    def add(self, category: str, n: int = 1) -> None:
        self.counts[category] = self.counts.get(category, 0) + int(n)

    def merge(self, other: Categorical) -> None:
        for k, v in other.counts.items():
            self.add(k, v)

    @property
    def size(self) -> int:
        return sum(v for v in self.counts.values() if v > 0)

    def copy(self, capacity: Optional[int] = None) -> Categorical:
        return Categorical(dict(self.counts))


SignalState = Union[Categorical, Sample]


def state_to_dict(state: SignalState) -> dict[str, Any]:
    """JSON-able form of a signal state."""
    if isinstance(state, Categorical):
        return {"type": "categorical", "counts": dict(state.counts)}
    return {"type": "sample", **state.to_dict()}


def state_from_dict(d: dict[str, Any]) -> SignalState:
    """Inverse of :func:`state_to_dict`.

    Raises:
        ValueError, KeyError: a malformed dict.
    """
    if d.get("type") == "categorical":
        return Categorical({str(k): int(v) for k, v in d["counts"].items()})
    if d.get("type") == "sample":
        return Sample.from_dict(d)
    raise ValueError(f"unknown signal state type {d.get('type')!r}")


@dataclass
class WindowAggregate:
    """Everything observed in one window, per signal. Mergeable.

    ``start_ms``/``end_ms`` bound the window (end exclusive); ``capacity`` is the sample
    size kept per sampled signal.
    """

    start_ms: int
    end_ms: int
    signals: dict[str, SignalState] = field(default_factory=dict)
    capacity: int = WINDOW_SAMPLE

    def categorical(self, signal: str) -> Categorical:
        state = self.signals.setdefault(signal, Categorical())
        if not isinstance(state, Categorical):
            raise TypeError(f"signal {signal} is not categorical")
        return state

    def sample(self, signal: str, dim: int = 0) -> Sample:
        state = self.signals.get(signal)
        if state is None:
            state = self.signals[signal] = Sample(self.capacity, dim)
        if not isinstance(state, Sample):
            raise TypeError(f"signal {signal} is not sampled")
        return state

    def add_embedding(self, doc_vector: Any, text_length: int, ocr_confidence: Optional[float] = None,
                      doc_id: Optional[str] = None, prio: Optional[float] = None) -> bool:
        """Add one embedded record (text length, OCR confidence if not None, unit doc vector).

        ``prio`` (default :func:`priority` of ``doc_id``) decides which documents a full
        sample keeps. Returns False when the vector was unusable (empty, non-finite or zero:
        only the scalars are counted then).

        Raises:
            ValueError: the vector dimension differs from earlier vectors of the window.
        """
        p = priority(doc_id) if prio is None else float(prio)
        self.sample(TEXT_LENGTH).add(max(int(text_length), 0), p)
        if ocr_confidence is not None and math.isfinite(float(ocr_confidence)):
            self.sample(OCR_CONFIDENCE).add(float(ocr_confidence), p)
        v = np.asarray(doc_vector if doc_vector is not None else [], dtype=np.float64).reshape(-1)
        norm = float(np.linalg.norm(v)) if v.size else 0.0
        if v.size == 0 or not math.isfinite(norm) or norm == 0.0:
            return False
        # doc_vector is L2-normalised by contract; re-normalise so every vector is on the sphere.
        self.sample(EMBEDDING, v.size).add(v / norm, p)
        return True

    def add_prediction(self, model_name: str, label: str) -> None:
        """Add one prediction of ``model_name``."""
        self.categorical(label_signal(model_name)).add(label)

    def merge(self, other: WindowAggregate) -> None:
        """Add ``other``'s observations to this aggregate (window bounds unchanged).

        Raises:
            ValueError: a sampled signal's vector dimension differs.
            TypeError: a signal has different kinds of state on the two sides.
        """
        for name, state in other.signals.items():
            mine = self.signals.get(name)
            if mine is None:
                self.signals[name] = state.copy(self.capacity if isinstance(state, Sample) else None)
            elif type(mine) is not type(state):
                raise TypeError(f"signal {name}: cannot merge {type(state).__name__} into {type(mine).__name__}")
            else:
                mine.merge(state)  # type: ignore[arg-type]  # same signal, same state type (checked above)

    def size(self, signal: str) -> int:
        state = self.signals.get(signal)
        return state.size if state is not None else 0

    @property
    def empty(self) -> bool:
        return all(s.size == 0 for s in self.signals.values())


@dataclass
class Reference:
    """A signal's reference: its state merged over ``windows`` windows spanning
    ``[start_ms, end_ms)``; ``source`` says where it came from (``learned`` from the first
    windows, ``pinned`` recent windows, ``set`` explicitly, e.g. from a corpus).
    ``cache`` holds derived objects (the MMD reference kernel), never serialised."""

    state: SignalState
    windows: int
    start_ms: int
    end_ms: int
    source: str = "learned"
    cache: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {"state": state_to_dict(self.state), "windows": self.windows, "start_ms": self.start_ms,
                "end_ms": self.end_ms, "source": self.source}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Reference:
        return cls(state_from_dict(d["state"]), int(d["windows"]), int(d["start_ms"]), int(d["end_ms"]),
                   str(d.get("source", "learned")))


def aggregate_from_observations(window_ms: int, embeddings: Iterable[tuple[Any, ...]] = (),
                                predictions: Iterable[tuple[int, str, str]] = (),
                                capacity: int = WINDOW_SAMPLE) -> dict[int, WindowAggregate]:
    """Group observations into per-window aggregates (helper for tests and offline checks).

    ``embeddings``: ``(ts_ms, vector, text_length[, ocr_confidence[, doc_id]])``;
    ``predictions``: ``(ts_ms, model, label)``.
    """
    out: dict[int, WindowAggregate] = {}

    def win(ts: int) -> WindowAggregate:
        start = (int(ts) // window_ms) * window_ms
        return out.setdefault(start, WindowAggregate(start, start + window_ms, capacity=capacity))

    for row in embeddings:
        ts, vec, length, *rest = row
        win(ts).add_embedding(vec, length, rest[0] if rest else None, rest[1] if len(rest) > 1 else None)
    for ts, model, label in predictions:
        win(ts).add_prediction(model, label)
    return out
