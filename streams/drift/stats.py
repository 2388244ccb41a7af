"""Drift tests of categorical signals (predicted labels): pure numpy.

The alarm test of a ``label:<model>`` signal is the **chi-squared test of homogeneity**
of the 2 x K table (reference counts, window counts) with a **Monte-Carlo
permutation p-value** (:func:`chi2_permutation_test`): under "no drift" the window's
counts are a draw without replacement from the pooled counts (multivariate
hypergeometric), so the p-value is exact up to simulation error however sparse the
table is. The asymptotic chi-square p-value (what Evidently's ``chisquare`` stattest
and alibi-detect's ``ChiSquareDrift`` use) is unreliable when expected counts are
below 5, which is the rule here: 77 BANKING77 intents in windows of 100 predictions.

The effect sizes practitioners know are reported next to it, in the details:
:func:`psi` (Population Stability Index, rule of thumb < 0.1 none, 0.1-0.2 moderate,
> 0.2 significant) and :func:`js_distance` (Jensen-Shannon distance, Evidently's
default for categorical columns above 1000 rows, threshold 0.1). They are *not* the
alarm criterion: both are biased upwards on small samples (the expected PSI of two
samples of one distribution is ~ ``(K-1)(1/n_ref + 1/n_cur)``, :func:`psi_noise_floor`:
1.8 for 77 labels and windows of 100, far above 0.2), whereas the permutation test
accounts for the sample sizes.

Continuous and multivariate tests (KS, MMD) are in :mod:`conveyor.streams.drift.twosample`.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Optional

import numpy as np

from conveyor.streams.drift.twosample import (
    TestResult,
    critical_value,
    permutation_p_value,
)

ALPHA = 0.0027
"""Per-signal significance level of every drift test: the false-alarm probability of one
signal in one window without drift (0.27 %, the two-sided tail beyond 3 standard
deviations of a normal statistic).

Why not the usual 0.05: a monitor tests every window, forever, on several signals
(embedding, text length, OCR confidence, one label signal per model), so the per-test
level is the false-alarm *rate*. 0.0027 is the classic 3-sigma control limit of
Shewhart charts (Montgomery, D. C., *Introduction to Statistical Quality Control*, ch. 6)
and what NannyML's default thresholds amount to (mean +- 3 standard deviations of the
statistic over reference chunks, ``StandardDeviationThreshold``). With 3-4 signals a
window without drift raises any alarm with probability ~1 %. Evidently, NannyML (chi2)
and alibi-detect default to p < 0.05 per test (alibi-detect's ``KSDrift``
Bonferroni-corrects across features); configure ``alpha`` to trade sensitivity for alarms.

Measured on real streams (:mod:`conveyor.tools.drift_validation.scenarios`, windows of 100): with 0.01,
BANKING77 test windows against a BANKING77 train reference alarmed in 12 % of windows,
mostly on predicted labels - train is class-imbalanced (35-187 texts per intent), test is
balanced (PSI 0.075, JS distance 0.115 between the full sets, above Evidently's 0.1), a
real if mild prior shift; with 0.0027, 2.7 %. Every injected shift was still caught in its
first window."""

CHI2_PERMUTATIONS = 999
"""Monte-Carlo draws of :func:`chi2_permutation_test` (p-value resolution 0.001)."""

PSI_THRESHOLD = 0.2
"""PSI above which a shift is called "significant" in the details (no alarm by itself).
The industry rule of thumb (< 0.1 none, 0.1-0.2 moderate, > 0.2 significant) is reviewed
in Yurdakul, B. (2018), *Statistical Properties of Population Stability Index*, PhD
dissertation, Western Michigan University; Siddiqi, N. (2006), *Credit Risk Scorecards*,
Wiley, uses 0.1/0.25. Evidently's ``psi`` stattest alarms at 0.1."""

PSI_MODERATE = 0.1
"""PSI above which a shift is called "moderate" in the details."""

PSI_EPSILON = 1e-4
"""Proportion substituted for an empty category so ``ln(p_cur/p_ref)`` stays finite (the
value Evidently uses in ``get_binned_data``)."""

JS_THRESHOLD = 0.1
"""Jensen-Shannon distance called "drift" by Evidently (categorical columns, > 1000 rows)
and NannyML (``ConstantThreshold(upper=0.1)`` in some versions); reported in the details."""


def _counts_vector(counts: Mapping[str, int], keys: list[str]) -> np.ndarray:
    return np.array([max(int(counts.get(k, 0)), 0) for k in keys], dtype=np.int64)


def _check_nonempty(ref: np.ndarray, cur: np.ndarray) -> None:
    if ref.sum() <= 0:
        raise ValueError("reference distribution is empty")
    if cur.sum() <= 0:
        raise ValueError("current distribution is empty")


def psi(reference_counts: Mapping[str, int], current_counts: Mapping[str, int],
        epsilon: float = PSI_EPSILON) -> float:
    """Population Stability Index ``sum_i (p_cur_i - p_ref_i) ln(p_cur_i / p_ref_i)``.

    Over the union of the categories; an empty category gets proportion ``epsilon``
    (Evidently's convention). PSI is the symmetrised Kullback-Leibler divergence: 0 for
    identical distributions, >= 0 otherwise.

    Args:
        reference_counts: category -> count (negative counts count as 0).
        current_counts: category -> count.
        epsilon: proportion used in place of 0, in (0, 1).

    Raises:
        ValueError: a side has no observation, or ``epsilon`` is out of range.
    """
    if not 0.0 < epsilon < 1.0:
        raise ValueError(f"epsilon must be in (0, 1), got {epsilon}")
    keys = sorted(set(reference_counts) | set(current_counts))
    ref, cur = _counts_vector(reference_counts, keys), _counts_vector(current_counts, keys)
    _check_nonempty(ref, cur)
    p_ref, p_cur = ref / ref.sum(), cur / cur.sum()
    p_ref = np.where(p_ref == 0.0, epsilon, p_ref)
    p_cur = np.where(p_cur == 0.0, epsilon, p_cur)
    return float(np.sum((p_cur - p_ref) * np.log(p_cur / p_ref)))


def psi_contributions(reference_counts: Mapping[str, int], current_counts: Mapping[str, int],
                      epsilon: float = PSI_EPSILON, top: int = 3) -> list[tuple[str, float, float, float]]:
    """The ``top`` categories contributing most to :func:`psi`:
    ``(category, p_ref, p_cur, contribution)``, largest first (``p_*`` unsmoothed)."""
    keys = sorted(set(reference_counts) | set(current_counts))
    n_ref = float(sum(max(int(v), 0) for v in reference_counts.values())) or 1.0
    n_cur = float(sum(max(int(v), 0) for v in current_counts.values())) or 1.0
    rows = []
    for k in keys:
        r = max(int(reference_counts.get(k, 0)), 0) / n_ref
        c = max(int(current_counts.get(k, 0)), 0) / n_cur
        rs, cs = (r or epsilon), (c or epsilon)
        rows.append((k, r, c, (cs - rs) * math.log(cs / rs)))
    rows.sort(key=lambda row: row[3], reverse=True)
    return rows[:top]


def psi_noise_floor(categories: int, n_ref: int, n_cur: int) -> float:
    """Expected PSI of two samples of one distribution, ``(K-1)(1/n_ref + 1/n_cur)``
    (``PSI/(1/n_ref+1/n_cur)`` is approximately chi-square with K-1 degrees of freedom).

    Raises:
        ValueError: a sample size is not positive.
    """
    if n_ref <= 0 or n_cur <= 0:
        raise ValueError("sample sizes must be positive")
    return max(categories - 1, 0) * (1.0 / n_ref + 1.0 / n_cur)


def js_distance(reference_counts: Mapping[str, int], current_counts: Mapping[str, int]) -> float:
    """Jensen-Shannon distance (base 2, in [0, 1]): the square root of the JS divergence
    ``(KL(P||M) + KL(Q||M)) / 2``, ``M = (P+Q)/2``.

    Raises:
        ValueError: a side has no observation.
    """
    keys = sorted(set(reference_counts) | set(current_counts))
    ref, cur = _counts_vector(reference_counts, keys), _counts_vector(current_counts, keys)
    _check_nonempty(ref, cur)
    p, q = ref / ref.sum(), cur / cur.sum()
    m = (p + q) / 2

    def kl(a: np.ndarray) -> float:
        nz = a > 0
        return float(np.sum(a[nz] * np.log2(a[nz] / m[nz])))

    return float(math.sqrt(max((kl(p) + kl(q)) / 2, 0.0)))


def _chi2_rows(cur: np.ndarray, pooled: np.ndarray, n_ref: int, n_cur: int) -> np.ndarray:
    """Chi-square statistics of 2 x K tables given the window's counts ``cur`` (B x K or K)
    and the pooled counts; the reference row is ``pooled - cur``."""
    n = n_ref + n_cur
    exp_cur = pooled * (n_cur / n)
    exp_ref = pooled * (n_ref / n)
    ref = pooled - cur
    out: np.ndarray = np.sum((cur - exp_cur) ** 2 / exp_cur + (ref - exp_ref) ** 2 / exp_ref, axis=-1)
    return out


def chi2_permutation_test(reference_counts: Mapping[str, int], current_counts: Mapping[str, int], *,
                          alpha: float = ALPHA, n_permutations: int = CHI2_PERMUTATIONS,
                          rng: Optional[np.random.Generator] = None) -> TestResult:
    """Chi-squared test of homogeneity of two count tables with a Monte-Carlo p-value.

    Statistic: Pearson's ``X^2 = sum (O - E)^2 / E`` over the 2 x K table of the
    categories seen on either side, ``E`` from the margins. Null distribution: ``B``
    tables with the same margins, the window's row drawn from the pooled counts
    without replacement (``Generator.multivariate_hypergeometric``) - a permutation test
    of the labels between reference and window (as R's ``chisq.test(simulate.p.value=TRUE)``,
    Hope, A. C. A. (1968), *A simplified Monte Carlo significance test procedure*, JRSS B 30).
    ``p = (1 + #{X^2_b >= X^2}) / (B + 1)``; drift when ``p <= alpha``, i.e. when
    ``X^2`` exceeds the returned ``threshold`` (:func:`critical_value`).

    Args:
        reference_counts, current_counts: category -> count (negative counts count as 0).
        alpha: significance level in (0, 1).
        n_permutations: Monte-Carlo draws ``B`` (needs ``(B + 1) * alpha >= 1``).
        rng: random generator (default: seeded from the counts, so results are reproducible).

    Returns:
        :class:`TestResult` with ``statistic="chi2"`` and ``df = K - 1`` in the details.

    Raises:
        ValueError: a side is empty, or ``alpha``/``n_permutations`` are inconsistent.
    """
    keys = sorted(k for k in set(reference_counts) | set(current_counts)
                  if max(int(reference_counts.get(k, 0)), 0) + max(int(current_counts.get(k, 0)), 0) > 0)
    ref, cur = _counts_vector(reference_counts, keys), _counts_vector(current_counts, keys)
    _check_nonempty(ref, cur)
    pooled = ref + cur
    n_ref, n_cur = int(ref.sum()), int(cur.sum())
    observed = float(_chi2_rows(cur.astype(np.float64), pooled.astype(np.float64), n_ref, n_cur))
    if rng is None:
        rng = np.random.default_rng([n_ref, n_cur, len(keys), int(cur @ np.arange(len(keys)))])
    if len(keys) < 2:
        null = np.zeros(n_permutations)
    else:
        draws = rng.multivariate_hypergeometric(pooled, n_cur, size=n_permutations)
        null = _chi2_rows(draws.astype(np.float64), pooled.astype(np.float64), n_ref, n_cur)
    p = permutation_p_value(observed, null)
    return TestResult("chi2", observed, critical_value(null, alpha), p, alpha,
                      {"df": str(max(len(keys) - 1, 0)), "n_permutations": str(n_permutations)})
