"""Two-sample drift tests of continuous and multivariate signals: pure numpy.

* **text length, OCR confidence** - two-sample Kolmogorov-Smirnov test (:func:`ks_test`)
  with the asymptotic Kolmogorov distribution (Smirnov 1939). Same test as Evidently's
  default for numerical columns with <= 1000 reference rows, NannyML's
  ``kolmogorov_smirnov`` method and alibi-detect's ``KSDrift`` (all p < 0.05 per
  feature by default; we use 0.0027 per signal, see :data:`conveyor.streams.drift.stats.ALPHA`).
* **embeddings** - kernel two-sample test: unbiased squared Maximum Mean Discrepancy with a
  Gaussian RBF kernel and a permutation p-value (:class:`MMDTest`; Gretton, A. et al.
  (2012), *A Kernel Two-Sample Test*, JMLR 13:723-773). Same test as alibi-detect's
  ``MMDDrift`` (``p_val=0.05``, ``n_permutations=100``, RBF bandwidth from the data by
  the median heuristic). Evidently's ``mmd()`` embedding method computes the same MMD^2
  but alarms on a fixed value (0.015) unless ``bootstrap=True``; its default embedding
  method is a domain classifier (ROC AUC > 0.55); NannyML's domain classifier alarms
  outside AUROC [0.45, 0.65].

Every test returns a :class:`TestResult`: ``value`` (the statistic), ``threshold`` (its
critical value at level ``alpha``) and ``p_value``; drift is ``p_value <= alpha``, which is
the same as ``value > threshold``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

MMD_PERMUTATIONS = 499
"""Permutations of :class:`MMDTest` (alibi-detect uses 100; the p-value resolution
1/500 = 0.002 is what the default level 0.0027 needs)."""


@dataclass(frozen=True)
class TestResult:
    """Outcome of one two-sample test.

    Attributes:
        statistic: name of the test statistic (``chi2``, ``ks``, ``mmd2``).
        value: the statistic.
        threshold: its critical value at ``alpha`` (``value > threshold`` iff drift).
        p_value: in (0, 1].
        alpha: significance level.
        details: extra facts as strings (for the report's ``details`` map).
    """

    __test__ = False  # not a pytest test class

    statistic: str
    value: float
    threshold: float
    p_value: float
    alpha: float
    details: dict[str, str] = field(default_factory=dict)

    @property
    def drift(self) -> bool:
        """``p_value <= alpha``."""
        return self.p_value <= self.alpha


def permutation_p_value(observed: float, null: np.ndarray) -> float:
    """``(1 + #{null >= observed}) / (B + 1)``: the permutation p-value (never 0)."""
    null = np.asarray(null, dtype=np.float64)
    return float((1 + int(np.sum(null >= observed))) / (null.size + 1))


def critical_value(null: np.ndarray, alpha: float) -> float:
    """The statistic value above which :func:`permutation_p_value` is ``<= alpha``.

    With ``B`` null draws, ``p <= alpha`` iff at most ``r = floor(alpha (B+1)) - 1`` draws
    are >= the observation, i.e. iff it exceeds the ``(r+1)``-th largest draw.

    Raises:
        ValueError: ``alpha`` not in (0, 1) or too few draws (``(B+1) alpha < 1``).
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    null = np.sort(np.asarray(null, dtype=np.float64))[::-1]
    r = int(math.floor(alpha * (null.size + 1) + 1e-9)) - 1
    if r < 0 or r >= null.size:
        raise ValueError(f"{null.size} permutations cannot reach alpha={alpha}")
    return float(null[r])


# -- Kolmogorov-Smirnov ---------------------------------------------------------------
def kolmogorov_sf(x: float) -> float:
    """Survival function of the Kolmogorov distribution, ``P(K > x)``
    (``K = sup |B(t)|`` of a Brownian bridge; scipy's ``kstwobign.sf``)."""
    if x <= 0.0:
        return 1.0
    if x < 1.0:  # theta-function form converges fast for small x
        s = sum(math.exp(-((2 * k - 1) ** 2) * math.pi ** 2 / (8 * x * x)) for k in range(1, 8))
        return float(min(max(1.0 - math.sqrt(2 * math.pi) / x * s, 0.0), 1.0))
    s = sum((-1) ** (k - 1) * math.exp(-2 * k * k * x * x) for k in range(1, 101))
    return float(min(max(2.0 * s, 0.0), 1.0))


def kolmogorov_isf(p: float) -> float:
    """Inverse of :func:`kolmogorov_sf` (bisection), for ``p`` in (0, 1)."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be in (0, 1), got {p}")
    lo, hi = 0.0, 10.0
    for _ in range(100):
        mid = (lo + hi) / 2
        if kolmogorov_sf(mid) > p:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def ks_test(reference: np.ndarray, current: np.ndarray, *, alpha: float) -> TestResult:
    """Two-sample Kolmogorov-Smirnov test, two-sided, asymptotic p-value.

    ``D = sup_x |F_ref(x) - F_cur(x)|`` (empirical CDFs); ``p = P(K > D sqrt(en))`` with
    ``en = n m / (n + m)`` and ``K`` Kolmogorov-distributed (:func:`kolmogorov_sf`); the
    threshold is ``kolmogorov_isf(alpha) / sqrt(en)`` (e.g. 1.82 / sqrt(en) at 0.0027). With
    ties (integer text lengths) the test is conservative. ``D`` equals
    ``scipy.stats.ks_2samp(...).statistic``; the p-value is scipy's ``kstwobign`` form
    (scipy >= 1.5 uses ``kstwo(round(en))`` for ``method="asymp"``, slightly smaller p).

    Args:
        reference, current: 1-D samples (NaNs dropped).
        alpha: significance level in (0, 1).

    Raises:
        ValueError: a sample is empty after dropping NaNs.
    """
    x = np.asarray(reference, dtype=np.float64).reshape(-1)
    y = np.asarray(current, dtype=np.float64).reshape(-1)
    x, y = np.sort(x[~np.isnan(x)]), np.sort(y[~np.isnan(y)])
    if x.size == 0 or y.size == 0:
        raise ValueError("both samples need at least one value")
    grid = np.concatenate([x, y])
    cdf_x = np.searchsorted(x, grid, side="right") / x.size
    cdf_y = np.searchsorted(y, grid, side="right") / y.size
    d = float(np.max(np.abs(cdf_x - cdf_y)))
    en = x.size * y.size / (x.size + y.size)
    p = kolmogorov_sf(d * math.sqrt(en))
    threshold = kolmogorov_isf(alpha) / math.sqrt(en)
    return TestResult("ks", d, threshold, p, alpha, {
        "reference_median": f"{float(np.median(x)):.6g}", "current_median": f"{float(np.median(y)):.6g}"})


# -- MMD --------------------------------------------------------------------------------
def _sq_dists(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T)
    out: np.ndarray = np.maximum(d, 0.0)
    return out


class MMDTest:
    """Kernel two-sample test against a fixed reference sample (reusable across windows).

    Kernel ``k(a, b) = exp(-|a - b|^2 / s2)`` with ``s2`` the median squared distance
    between distinct reference points (median heuristic; alibi-detect's ``GaussianRBF``
    with ``sigma = sqrt(median/2)`` is the same kernel, Evidently's ``mmd()`` uses the
    median of reference-current distances). The bandwidth depends on the reference only,
    so the reference kernel block is computed once and the permutation test stays valid.

    Statistic: the unbiased ``MMD^2_u`` (Gretton et al. 2012, eq. 3). Null distribution:
    ``n_permutations`` random reassignments of the pooled sample into groups of the
    reference and window sizes, computed for all permutations at once as quadratic forms
    of the pooled kernel matrix (``O(B N^2)`` for ``N = m + n`` points).

    Args:
        reference: ``(m, d)`` reference vectors, ``m >= 2``.

    Raises:
        ValueError: fewer than 2 reference vectors, or all of them identical.
    """

    def __init__(self, reference: np.ndarray) -> None:
        x = np.asarray(reference, dtype=np.float64)
        if x.ndim != 2 or x.shape[0] < 2:
            raise ValueError("the MMD reference needs at least 2 vectors")
        self.x = x
        self.k_xx_d2 = _sq_dists(x, x)
        off = self.k_xx_d2[~np.eye(x.shape[0], dtype=bool)]
        self.s2 = float(np.median(off))
        if not self.s2 > 0.0:
            raise ValueError("reference vectors are all identical: no kernel bandwidth")
        self.k_xx = np.exp(-self.k_xx_d2 / self.s2)
        del self.k_xx_d2

    def test(self, current: np.ndarray, *, alpha: float, n_permutations: int = MMD_PERMUTATIONS,
             rng: Optional[np.random.Generator] = None) -> TestResult:
        """Test ``current`` (``(n, d)``, ``n >= 2``) against the reference.

        Returns:
            :class:`TestResult` with ``statistic="mmd2"`` (unbiased MMD^2, may be < 0),
            details ``kernel_s2`` (bandwidth) and ``mean_cosine_distance`` (of the two means).

        Raises:
            ValueError: fewer than 2 current vectors, a dimension mismatch, or too few
                permutations for ``alpha``.
        """
        y = np.asarray(current, dtype=np.float64)
        if y.ndim != 2 or y.shape[0] < 2:
            raise ValueError("the MMD test needs at least 2 current vectors")
        if y.shape[1] != self.x.shape[1]:
            raise ValueError(f"dimension mismatch: {y.shape[1]} vs {self.x.shape[1]}")
        m, n = self.x.shape[0], y.shape[0]
        k = np.empty((m + n, m + n))
        k[:m, :m] = self.k_xx
        k_xy = np.exp(-_sq_dists(self.x, y) / self.s2)
        k[:m, m:] = k_xy
        k[m:, :m] = k_xy.T
        k[m:, m:] = np.exp(-_sq_dists(y, y) / self.s2)
        total = float(k.sum())
        rng = rng or np.random.default_rng(0)

        def mmd2(s_xx: np.ndarray, s_yy: np.ndarray) -> np.ndarray:
            s_xy = (total - s_xx - s_yy) / 2
            out: np.ndarray = (s_xx - m) / (m * (m - 1)) + (s_yy - n) / (n * (n - 1)) - 2 * s_xy / (m * n)
            return out

        observed = float(mmd2(np.array(self.k_xx.sum()), np.array(k[m:, m:].sum())))
        member = np.zeros((n_permutations, m + n))
        order = np.argsort(rng.random((n_permutations, m + n)), axis=1)[:, :m]
        np.put_along_axis(member, order, 1.0, axis=1)
        pk = member @ k
        s_xx = np.einsum("ij,ij->i", pk, member)
        s_x_all = pk.sum(1)
        s_yy = total - 2 * s_x_all + s_xx
        null = mmd2(s_xx, s_yy)
        p = permutation_p_value(observed, null)
        return TestResult("mmd2", observed, critical_value(null, alpha), p, alpha, {
            "kernel": "rbf", "kernel_s2": f"{self.s2:.6g}", "n_permutations": str(n_permutations),
            "mean_cosine_distance": f"{mean_cosine_distance(self.x.mean(0), y.mean(0)):.6g}"})


def mean_cosine_distance(a: np.ndarray, b: np.ndarray) -> float:
    """``1 - cos(a, b)`` of two mean vectors, in [0, 2] (Evidently's ``distance(dist="cosine")``
    embedding method; reported as an effect size). 0.0 when either vector is zero."""
    a, b = np.asarray(a, dtype=np.float64).reshape(-1), np.asarray(b, dtype=np.float64).reshape(-1)
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if na == 0.0 or nb == 0.0:
        return 0.0
    return float(min(max(1.0 - float(a @ b) / (na * nb), 0.0), 2.0))
