"""Unit tests of processors.drift.stats (pure statistics)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from processors.drift import stats


def test_psi_identical_distributions_is_zero():
    counts = {"a": 10, "b": 30, "c": 60}
    assert stats.psi(counts, dict(counts)) == pytest.approx(0.0, abs=1e-12)
    # proportions matter, not totals
    assert stats.psi(counts, {k: 3 * v for k, v in counts.items()}) == pytest.approx(0.0, abs=1e-12)


def test_psi_matches_hand_computation():
    ref = {"a": 50, "b": 50}
    cur = {"a": 80, "b": 20}
    expected = (0.8 - 0.5) * math.log(0.8 / 0.5) + (0.2 - 0.5) * math.log(0.2 / 0.5)
    assert stats.psi(ref, cur) == pytest.approx(expected)
    assert stats.psi(ref, cur) == pytest.approx(stats.psi(cur, ref))  # symmetric


def test_psi_smooths_missing_categories():
    ref = {"a": 100}
    cur = {"a": 90, "new": 10}
    value = stats.psi(ref, cur)
    expected = (0.9 - 1.0) * math.log(0.9) + (0.1 - 1e-4) * math.log(0.1 / 1e-4)
    assert math.isfinite(value)
    assert value == pytest.approx(expected)
    assert stats.psi(ref, cur, epsilon=1e-2) < value  # larger epsilon, smaller penalty


def test_psi_rule_of_thumb_bands():
    ref = {"a": 500, "b": 500}
    assert stats.psi(ref, {"a": 520, "b": 480}) < stats.PSI_MODERATE
    assert stats.psi(ref, {"a": 900, "b": 100}) > stats.PSI_THRESHOLD


@pytest.mark.parametrize("ref,cur", [({}, {"a": 1}), ({"a": 1}, {}), ({"a": 0}, {"a": 1})])
def test_psi_rejects_empty(ref, cur):
    with pytest.raises(ValueError):
        stats.psi(ref, cur)


def test_psi_rejects_bad_epsilon():
    with pytest.raises(ValueError):
        stats.psi({"a": 1}, {"a": 1}, epsilon=0)


def test_psi_contributions_orders_by_contribution():
    rows = stats.psi_contributions({"a": 50, "b": 50}, {"a": 10, "b": 40, "c": 50}, top=2)
    assert [r[0] for r in rows][0] == "c"
    assert rows[0][1] == 0 and rows[0][2] == pytest.approx(0.5)


def test_psi_noise_floor_predicts_same_distribution_value():
    rng = np.random.default_rng(7)
    p = np.array([0.5, 0.3, 0.2])
    vals = []
    for _ in range(400):
        a = rng.multinomial(500, p)
        b = rng.multinomial(500, p)
        vals.append(stats.psi(dict(zip("xyz", a)), dict(zip("xyz", b))))
    floor = stats.psi_noise_floor(3, 500, 500)
    assert floor == pytest.approx(2 * (2 / 500))
    assert np.mean(vals) == pytest.approx(floor, rel=0.25)


def test_mean_cosine_distance_basics():
    a = np.array([1.0, 0.0, 0.0])
    assert stats.mean_cosine_distance(a * 10, 10, a * 3, 3) == pytest.approx(0.0, abs=1e-12)
    assert stats.mean_cosine_distance(a, 1, np.array([0.0, 1.0, 0.0]), 1) == pytest.approx(1.0)
    assert stats.mean_cosine_distance(a, 1, -a, 1) == pytest.approx(2.0)
    # counts do not change the direction of the mean
    assert stats.mean_cosine_distance(a + [0, 1, 0], 2, a, 7) == pytest.approx(1 - 1 / math.sqrt(2))


@pytest.mark.parametrize("args", [
    (np.ones(3), 0, np.ones(3), 1),
    (np.ones(3), 1, np.ones(3), 0),
    (np.ones(3), 1, np.ones(4), 1),
    (np.zeros(3), 1, np.ones(3), 1),
])
def test_mean_cosine_distance_rejects_degenerate(args):
    with pytest.raises(ValueError):
        stats.mean_cosine_distance(*args)


def _unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_mean_cosine_noise_floor_matches_simulation():
    rng = np.random.default_rng(3)
    centre = np.zeros(64)
    centre[0] = 1.0
    pool = _unit(rng.normal(size=(6000, 64)) * 0.15 + centre)
    vals, floors = [], []
    for _ in range(200):
        idx = rng.permutation(len(pool))
        ref, cur = pool[idx[:300]], pool[idx[300:400]]
        vals.append(stats.mean_cosine_distance(ref.sum(0), 300, cur.sum(0), 100))
        floors.append(stats.mean_cosine_noise_floor(ref.sum(0), 300, 100))
    assert np.mean(vals) == pytest.approx(np.mean(floors), rel=0.3)
    assert max(vals) < stats.NOISE_FACTOR * np.mean(floors)


def test_effective_threshold():
    assert stats.effective_threshold(0.2, 0.01) == 0.2
    assert stats.effective_threshold(0.2, 0.5, 3.0) == pytest.approx(1.5)
    assert stats.effective_threshold(0.2, math.inf) == math.inf


@pytest.mark.parametrize("length,bucket", [
    (-5, "[0,8)"), (0, "[0,8)"), (7, "[0,8)"), (8, "[8,16)"), (100, "[64,128)"),
    (2 ** 20 - 1, "[524288,1048576)"), (2 ** 20, "[1048576,inf)"), (10 ** 9, "[1048576,inf)"),
])
def test_length_bucket(length, bucket):
    assert stats.length_bucket(length) == bucket


def test_length_psi_detects_length_shift():
    short = {stats.length_bucket(n): 1 for n in range(20, 200)}
    short_counts: dict[str, int] = {}
    for n in range(20, 200):
        b = stats.length_bucket(n)
        short_counts[b] = short_counts.get(b, 0) + 1
    long_counts: dict[str, int] = {}
    for n in range(2000, 20000, 100):
        b = stats.length_bucket(n)
        long_counts[b] = long_counts.get(b, 0) + 1
    assert stats.length_psi(short_counts, dict(short_counts)) == pytest.approx(0.0)
    assert stats.length_psi(short_counts, long_counts) > stats.PSI_THRESHOLD
    assert short  # buckets exist
