"""Unit tests of the drift statistics: conveyor.streams.drift.stats (labels) and
conveyor.streams.drift.twosample (KS, MMD), including their calibration under "no drift"."""
from __future__ import annotations

import math

import numpy as np
import pytest

from conveyor.streams.drift import stats, twosample


def _counts(values) -> dict[str, int]:
    return {str(i): int(v) for i, v in enumerate(values)}


# -- PSI / JS (effect sizes reported in the details) -------------------------------------
def test_psi_identical_distributions_is_zero():
    counts = {"a": 10, "b": 30, "c": 60}
    assert stats.psi(counts, dict(counts)) == pytest.approx(0.0, abs=1e-12)
    assert stats.psi(counts, {k: 3 * v for k, v in counts.items()}) == pytest.approx(0.0, abs=1e-12)


def test_psi_matches_hand_computation_and_smooths_missing():
    expected = (0.8 - 0.5) * math.log(0.8 / 0.5) + (0.2 - 0.5) * math.log(0.2 / 0.5)
    assert stats.psi({"a": 50, "b": 50}, {"a": 80, "b": 20}) == pytest.approx(expected)
    smoothed = (0.9 - 1.0) * math.log(0.9) + (0.1 - 1e-4) * math.log(0.1 / 1e-4)
    assert stats.psi({"a": 100}, {"a": 90, "new": 10}) == pytest.approx(smoothed)


@pytest.mark.parametrize("ref,cur", [({}, {"a": 1}), ({"a": 1}, {}), ({"a": 0}, {"a": 1})])
def test_empty_sides_are_rejected(ref, cur):
    with pytest.raises(ValueError):
        stats.psi(ref, cur)
    with pytest.raises(ValueError):
        stats.js_distance(ref, cur)
    with pytest.raises(ValueError):
        stats.chi2_permutation_test(ref, cur)


def test_js_distance_bounds_and_scipy():
    scipy_spatial = pytest.importorskip("scipy.spatial.distance")
    a, b = {"x": 10, "y": 30, "z": 60}, {"x": 50, "y": 25, "w": 25}
    keys = ["w", "x", "y", "z"]
    p = np.array([a.get(k, 0) for k in keys], float)
    q = np.array([b.get(k, 0) for k in keys], float)
    assert stats.js_distance(a, b) == pytest.approx(scipy_spatial.jensenshannon(p / p.sum(), q / q.sum(), base=2))
    assert stats.js_distance(a, a) == pytest.approx(0.0, abs=1e-7)
    assert stats.js_distance({"x": 1}, {"y": 1}) == pytest.approx(1.0)


def test_psi_contributions_orders_by_contribution():
    rows = stats.psi_contributions({"a": 50, "b": 50}, {"a": 10, "b": 40, "c": 50}, top=2)
    assert rows[0][0] == "c" and rows[0][1] == 0 and rows[0][2] == pytest.approx(0.5)


# -- chi-squared permutation test (the label alarm) ---------------------------------------
def test_chi2_statistic_matches_scipy_and_threshold_matches_p():
    scipy_stats = pytest.importorskip("scipy.stats")
    ref, cur = {"a": 60, "b": 30, "c": 10}, {"a": 20, "b": 20, "c": 20}
    r = stats.chi2_permutation_test(ref, cur, alpha=0.01)
    table = np.array([[60, 30, 10], [20, 20, 20]])
    expected = scipy_stats.chi2_contingency(table, correction=False)
    assert r.value == pytest.approx(expected.statistic)
    assert r.statistic == "chi2" and r.details["df"] == "2"
    assert r.drift and r.value > r.threshold and r.p_value <= 0.01
    assert expected.pvalue < 0.01


def test_chi2_permutation_is_calibrated_on_sparse_tables():
    """77 equiprobable labels, windows of 100 vs a reference of 500: most expected counts
    are below 5 (where the asymptotic test is off), yet the false-alarm rate is alpha."""
    rng = np.random.default_rng(7)
    p = np.full(77, 1 / 77)
    pvals = []
    for i in range(300):
        r = stats.chi2_permutation_test(_counts(rng.multinomial(500, p)), _counts(rng.multinomial(100, p)),
                                        alpha=0.05, n_permutations=199, rng=np.random.default_rng(i))
        assert (r.p_value <= r.alpha) == (r.value > r.threshold)
        pvals.append(r.p_value)
    rate = float(np.mean(np.array(pvals) <= 0.05))
    assert 0.015 <= rate <= 0.09, rate  # binomial(300, 0.05): 99.9 % within these bounds


def test_chi2_detects_a_concentrated_label_shift():
    p_ref = np.full(77, 1 / 77)
    p_cur = np.r_[np.full(10, 0.1), np.zeros(67)]
    rng = np.random.default_rng(1)
    r = stats.chi2_permutation_test(_counts(rng.multinomial(1000, p_ref)), _counts(rng.multinomial(100, p_cur)))
    assert r.drift and r.p_value == pytest.approx(1 / (stats.CHI2_PERMUTATIONS + 1))


def test_chi2_single_category_never_drifts():
    r = stats.chi2_permutation_test({"a": 10}, {"a": 5})
    assert not r.drift and r.value == 0.0


# -- permutation helpers --------------------------------------------------------------------
def test_critical_value_is_consistent_with_the_p_value():
    null = np.arange(1.0, 200.0)  # 199 draws
    thr = twosample.critical_value(null, 0.01)  # r = 1: second largest
    assert thr == 198.0
    assert twosample.permutation_p_value(198.5, null) <= 0.01 < twosample.permutation_p_value(198.0, null)
    with pytest.raises(ValueError):
        twosample.critical_value(np.arange(50.0), 0.01)  # 50 draws cannot reach 0.01


# -- Kolmogorov-Smirnov -----------------------------------------------------------------
def test_kolmogorov_distribution_matches_scipy():
    scipy_stats = pytest.importorskip("scipy.stats")
    for x in (0.2, 0.5, 0.8, 1.0, 1.36, 2.0, 3.0):
        assert twosample.kolmogorov_sf(x) == pytest.approx(scipy_stats.kstwobign.sf(x), abs=1e-9)
    for p in (0.2, 0.05, 0.01, 0.0027):
        assert twosample.kolmogorov_isf(p) == pytest.approx(scipy_stats.kstwobign.isf(p), rel=1e-6)


def test_ks_matches_scipy_statistic_and_asymptotic_p():
    scipy_stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(3)
    x, y = rng.lognormal(4, 1, 400), rng.lognormal(4.4, 1, 90).round()
    r = twosample.ks_test(x, y, alpha=0.0027)
    d = scipy_stats.ks_2samp(x, y).statistic
    en = 400 * 90 / 490
    assert r.value == pytest.approx(d)
    assert r.p_value == pytest.approx(scipy_stats.kstwobign.sf(d * math.sqrt(en)))
    assert r.threshold == pytest.approx(scipy_stats.kstwobign.isf(0.0027) / math.sqrt(en))
    assert r.drift == (r.value > r.threshold)


def test_ks_null_rate_and_power():
    rng = np.random.default_rng(11)
    null = [twosample.ks_test(rng.normal(size=300), rng.normal(size=100), alpha=0.05).drift for _ in range(300)]
    assert np.mean(null) <= 0.09
    assert twosample.ks_test(rng.normal(size=300), rng.normal(1.0, 1, size=50), alpha=0.0027).drift
    with pytest.raises(ValueError):
        twosample.ks_test([float("nan")], [1.0], alpha=0.05)


# -- MMD -----------------------------------------------------------------------------------
def _sphere(rng, n, centre, spread=0.6):
    v = rng.normal(size=(n, centre.size)) * spread + centre
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_mmd_statistic_matches_direct_computation():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(30, 4)), rng.normal(size=(20, 4)) + 0.5
    r = twosample.MMDTest(x).test(y, alpha=0.05, n_permutations=99)
    d_xx = ((x[:, None] - x[None]) ** 2).sum(-1)
    s2 = np.median(d_xx[~np.eye(30, dtype=bool)])
    k = lambda a, b: np.exp(-((a[:, None] - b[None]) ** 2).sum(-1) / s2)  # noqa: E731 - the Gaussian kernel as one line beside the statistic it checks
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    expected = ((kxx.sum() - 30) / (30 * 29) + (kyy.sum() - 20) / (20 * 19) - 2 * kxy.mean())
    assert r.value == pytest.approx(expected)
    assert float(r.details["kernel_s2"]) == pytest.approx(s2, rel=1e-5)


def test_mmd_permutation_null_rate_and_power():
    rng = np.random.default_rng(5)
    centre = np.zeros(32)
    centre[0] = 1.0
    pool = _sphere(rng, 3000, centre)
    test = twosample.MMDTest(pool[:300])
    pvals = [test.test(pool[300 + 60 * i: 360 + 60 * i], alpha=0.05, n_permutations=99,
                       rng=np.random.default_rng(i)).p_value for i in range(40)]
    assert np.mean(np.array(pvals) <= 0.05) <= 0.15  # 40 draws of a 5 % event
    other = np.zeros(32)
    other[1] = 1.0
    shifted = test.test(_sphere(rng, 60, 0.7 * centre + 0.7 * other), alpha=0.0027)
    assert shifted.drift and shifted.value > shifted.threshold
    assert float(shifted.details["mean_cosine_distance"]) > 0.1


def test_mmd_rejects_degenerate_inputs():
    with pytest.raises(ValueError):
        twosample.MMDTest(np.ones((1, 3)))
    with pytest.raises(ValueError):
        twosample.MMDTest(np.ones((5, 3)))  # identical: no bandwidth
    t = twosample.MMDTest(np.eye(3))
    with pytest.raises(ValueError):
        t.test(np.ones((1, 3)), alpha=0.05)
    with pytest.raises(ValueError):
        t.test(np.ones((4, 2)), alpha=0.05)


def test_mean_cosine_distance():
    a = np.array([1.0, 0.0, 0.0])
    assert twosample.mean_cosine_distance(a, 3 * a) == pytest.approx(0.0, abs=1e-12)
    assert twosample.mean_cosine_distance(a, np.array([0.0, 1.0, 0.0])) == pytest.approx(1.0)
    assert twosample.mean_cosine_distance(a, np.zeros(3)) == 0.0
