"""Per-window drift state: the signals and their mergeable aggregates.

Pure Python + numpy (no Kafka, no faust). A :class:`WindowAggregate` holds, for
one tumbling window, the state of every signal seen in it:

* ``embedding`` (:data:`EMBEDDING`) - :class:`VectorMean`, sum and count of unit
  document vectors;
* ``text_length`` (:data:`TEXT_LENGTH`) - :class:`Categorical`, counts per
  :func:`processors.drift.stats.length_bucket`;
* ``label:<model>`` (:func:`label_signal`) - :class:`Categorical`, counts per
  predicted label.

All states are sums, so aggregates of partitions or of several windows merge by
addition (:meth:`WindowAggregate.merge`). :class:`processors.drift.DriftMonitor`
keeps them per window and compares them to a :class:`Reference`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional, Union

import numpy as np

from processors.drift import stats

EMBEDDING = "embedding"
"""Signal name of the mean document embedding."""
TEXT_LENGTH = "text_length"
"""Signal name of the text length histogram."""
LABEL_PREFIX = "label:"
"""Signal name prefix of a model's predicted labels: ``label:<model_name>``."""


def label_signal(model_name: str) -> str:
    """Signal name of ``model_name``'s predicted labels."""
    return f"{LABEL_PREFIX}{model_name}"


@dataclass
class Categorical:
    """Counts per category (labels, length buckets): the state of a PSI signal."""

    counts: dict[str, int] = field(default_factory=dict)

    def add(self, category: str, n: int = 1) -> None:
        self.counts[category] = self.counts.get(category, 0) + int(n)

    def merge(self, other: "Categorical") -> None:
        for k, v in other.counts.items():
            self.add(k, v)

    @property
    def size(self) -> int:
        return sum(v for v in self.counts.values() if v > 0)

    def copy(self) -> "Categorical":
        return Categorical(dict(self.counts))


@dataclass
class VectorMean:
    """Sum and count of vectors: the state of the mean-embedding signal."""

    total: Optional[np.ndarray] = None
    n: int = 0

    def add(self, vector: np.ndarray, n: int = 1) -> None:
        v = np.asarray(vector, dtype=np.float64).reshape(-1)
        if self.total is None:
            self.total = v.copy()
        elif self.total.shape != v.shape:
            raise ValueError(f"vector dimension {v.shape[0]} != {self.total.shape[0]}")
        else:
            self.total = self.total + v
        self.n += int(n)

    def merge(self, other: "VectorMean") -> None:
        if other.total is not None and other.n > 0:
            self.add(other.total, other.n)

    @property
    def size(self) -> int:
        return self.n

    def copy(self) -> "VectorMean":
        return VectorMean(None if self.total is None else self.total.copy(), self.n)


SignalState = Union[Categorical, VectorMean]


@dataclass
class WindowAggregate:
    """Everything observed in one window, per signal. Mergeable.

    ``start_ms``/``end_ms`` bound the window (end exclusive). Build one with
    :meth:`DriftMonitor.new_window` or directly (``streams.drift`` builds
    them from faust tables).
    """

    start_ms: int
    end_ms: int
    signals: dict[str, SignalState] = field(default_factory=dict)

    def categorical(self, signal: str) -> Categorical:
        state = self.signals.setdefault(signal, Categorical())
        if not isinstance(state, Categorical):
            raise TypeError(f"signal {signal} is not categorical")
        return state

    def vector(self, signal: str) -> VectorMean:
        state = self.signals.setdefault(signal, VectorMean())
        if not isinstance(state, VectorMean):
            raise TypeError(f"signal {signal} is not a vector mean")
        return state

    def add_embedding(self, doc_vector: Any, text_length: int) -> bool:
        """Add one embedded record; returns False when the vector was unusable
        (empty, non-finite or zero: only its text length is counted then)."""
        self.categorical(TEXT_LENGTH).add(stats.length_bucket(text_length))
        v = np.asarray(doc_vector if doc_vector is not None else [], dtype=np.float64).reshape(-1)
        norm = float(np.linalg.norm(v)) if v.size else 0.0
        if v.size == 0 or not math.isfinite(norm) or norm == 0.0:
            return False
        # doc_vector is L2-normalised by contract; re-normalise so the noise model holds.
        self.vector(EMBEDDING).add(v / norm)
        return True

    def add_prediction(self, model_name: str, label: str) -> None:
        """Add one prediction of ``model_name``."""
        self.categorical(label_signal(model_name)).add(label)

    def merge(self, other: "WindowAggregate") -> None:
        """Add ``other``'s observations to this aggregate (window bounds unchanged)."""
        for name, state in other.signals.items():
            mine = self.signals.get(name)
            if mine is None:
                self.signals[name] = state.copy()
            else:
                mine.merge(state)  # type: ignore[arg-type]

    def size(self, signal: str) -> int:
        state = self.signals.get(signal)
        return state.size if state is not None else 0

    @property
    def empty(self) -> bool:
        return all(s.size == 0 for s in self.signals.values())


@dataclass
class Reference:
    """A signal's reference: its merged state over ``windows`` closed windows
    spanning ``[start_ms, end_ms)``."""

    state: SignalState
    windows: int
    start_ms: int
    end_ms: int


def aggregate_from_observations(window_ms: int, embeddings: Iterable[tuple[int, Any, int]] = (),
                                predictions: Iterable[tuple[int, str, str]] = ()) -> dict[int, WindowAggregate]:
    """Group ``(ts_ms, vector, text_length)`` / ``(ts_ms, model, label)`` observations
    into per-window aggregates (helper for tests and offline checks)."""
    out: dict[int, WindowAggregate] = {}

    def win(ts: int) -> WindowAggregate:
        start = (int(ts) // window_ms) * window_ms
        return out.setdefault(start, WindowAggregate(start, start + window_ms))

    for ts, vec, length in embeddings:
        win(ts).add_embedding(vec, length)
    for ts, model, label in predictions:
        win(ts).add_prediction(model, label)
    return out
