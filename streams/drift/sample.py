"""Bounded, mergeable random samples of a window's values: :class:`Sample` (bottom-k).

The KS and MMD tests need the values themselves, not sums. A window keeps at most
``capacity`` of them: each observation gets a *priority* in [0, 1) from a hash of its
document id (:func:`priority`), and the sample is the ``capacity`` observations with the
smallest priorities ("bottom-k sketch"; Cohen, E. & Kaplan, H. (2007), *Summarizing data
using bottom-k sketches*, PODC). Because the priority is a function of the id:

* it is a uniform random sample without replacement of the window's documents;
* samples of partitions merge exactly (the bottom-k of the union is in the union of the
  bottom-k's), whichever worker or partition saw a document;
* a re-delivered record (at-least-once) has the same priority: it replaces, never doubles.

``count`` is the number of observations seen (the window's population), ``len(sample)``
the number kept.
"""
from __future__ import annotations

import base64
import hashlib
import math
from typing import Any, Optional

import numpy as np


def priority(doc_id: Optional[str], fallback: Optional[float] = None) -> float:
    """Priority in [0, 1) of a document: the first 8 bytes of ``blake2b(doc_id)`` / 2**64.

    Without an id, ``fallback`` (or a random number).
    """
    if doc_id:
        h = hashlib.blake2b(str(doc_id).encode("utf-8"), digest_size=8).digest()
        return int.from_bytes(h, "big") / 2.0 ** 64
    return float(fallback) if fallback is not None else float(np.random.random())


class Sample:
    """The ``capacity`` observations with the smallest priorities (scalars or vectors).

    Args:
        capacity: largest number of values kept (>= 1).
        dim: vector dimension; 0 for scalars.

    Values are float32 internally. ``add`` is O(1) amortised (the buffer is compacted when
    it holds twice ``capacity``).
    """

    def __init__(self, capacity: int, dim: int = 0) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.capacity = int(capacity)
        self.dim = int(dim)
        self.count = 0
        self._keys: list[float] = []
        self._values: list[Any] = []
        self._ids: set[float] = set()
        self._cut = math.inf  # k-th smallest priority at the last compaction

    # -- building --------------------------------------------------------------------------
    def add(self, value: Any, prio: float, count: int = 1) -> bool:
        """Add one observation with priority ``prio``; ``count`` is added to :attr:`count`.

        A priority already present (the same document again) is ignored. Returns whether
        the value is (for now) in the sample.

        Raises:
            ValueError: a vector of the wrong dimension, or a non-finite value.
        """
        v = np.asarray(value, dtype=np.float32).reshape(-1)
        if self.dim == 0:
            if v.size != 1:
                raise ValueError("scalar sample: value must be a number")
        elif v.size != self.dim:
            raise ValueError(f"vector dimension {v.size} != {self.dim}")
        if not np.all(np.isfinite(v)):
            raise ValueError("non-finite value")
        self.count += int(count)
        if prio in self._ids:
            return True
        if prio >= self._cut:
            return False
        self._keys.append(float(prio))
        self._values.append(v if self.dim else float(v[0]))
        self._ids.add(float(prio))
        if len(self._keys) >= 2 * self.capacity:
            self._compact()
        return True

    def _compact(self) -> None:
        if len(self._keys) <= 1:
            return
        order = sorted(range(len(self._keys)), key=self._keys.__getitem__)[: self.capacity]
        self._keys = [self._keys[i] for i in order]
        self._values = [self._values[i] for i in order]
        self._ids = set(self._keys)
        if len(self._keys) >= self.capacity:
            self._cut = self._keys[-1]

    def merge(self, other: Sample) -> None:
        """Add ``other``'s kept values and its count.

        Raises:
            ValueError: the dimensions differ.
        """
        if other.dim != self.dim:
            raise ValueError(f"cannot merge samples of dimension {other.dim} and {self.dim}")
        other._compact()
        for k, v in zip(other._keys, other._values):
            self.add(v, k, count=0)
        self.count += other.count

    def copy(self, capacity: Optional[int] = None) -> Sample:
        """A copy, optionally with another capacity (a smaller one keeps the bottom ones)."""
        out = Sample(capacity or self.capacity, self.dim)
        out.merge(self)
        return out

    # -- reading ---------------------------------------------------------------------------
    @property
    def size(self) -> int:
        """Observations seen (the window's population; what ``sample_size`` reports)."""
        return self.count

    def __len__(self) -> int:
        self._compact()
        return len(self._keys)

    def values(self) -> np.ndarray:
        """The kept values: ``(k,)`` or ``(k, dim)`` float64, in priority order."""
        self._compact()
        if self.dim:
            return np.asarray(self._values, dtype=np.float64).reshape(-1, self.dim)
        return np.asarray(self._values, dtype=np.float64)

    # -- serialisation ----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-able form: keys as floats, values as base64 little-endian float32."""
        self._compact()
        arr = np.asarray(self._values, dtype="<f4").reshape(-1)
        return {"capacity": self.capacity, "dim": self.dim, "count": self.count, "keys": list(self._keys),
                "values": base64.b64encode(arr.tobytes()).decode("ascii")}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Sample:
        """Inverse of :meth:`to_dict`.

        Raises:
            ValueError, KeyError: a malformed dict.
        """
        s = cls(int(d["capacity"]), int(d["dim"]))
        arr = np.frombuffer(base64.b64decode(d["values"]), dtype="<f4")
        keys = [float(k) for k in d["keys"]]
        vals = arr.reshape(len(keys), s.dim) if s.dim else arr
        if len(vals) != len(keys):
            raise ValueError("sample keys and values differ in length")
        for k, v in zip(keys, vals):
            s.add(v, k, count=0)
        s.count = int(d["count"])
        return s
