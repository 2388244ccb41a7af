"""Temperature scaling and expected calibration error on small synthetic arrays."""
from __future__ import annotations

import numpy as np
import pytest

from conveyor.processors.classify.calibration import (
    apply_temperature,
    expected_calibration_error,
    fit_temperature,
    negative_log_likelihood,
    reliability_bins,
    softmax,
)


def test_ece_by_hand():
    # 4 predictions: two at confidence 0.9 (one right), two at 0.6 (both right)
    proba = np.array([[0.9, 0.1], [0.9, 0.1], [0.4, 0.6], [0.4, 0.6]])
    y = np.array([0, 1, 1, 1])
    # bins of width 1/15: 0.9 -> bin (0.8667, 0.9333], 0.6 -> bin (0.5333, 0.6]
    # ECE = 2/4 * |0.5 - 0.9| + 2/4 * |1.0 - 0.6| = 0.2 + 0.2
    assert expected_calibration_error(proba, y) == pytest.approx(0.4)
    bins = reliability_bins(proba, y)
    assert len(bins) == 15 and sum(b["count"] for b in bins) == 4
    filled = [b for b in bins if b["count"]]
    assert [(b["count"], b["accuracy"]) for b in filled] == [(2, 1.0), (2, 0.5)]
    assert filled[0]["upper"] == pytest.approx(9 / 15)  # 0.6 lies on a bin edge: (0.5333, 0.6]


def test_perfectly_calibrated_and_empty():
    proba = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert expected_calibration_error(proba, np.array([0, 1])) == 0.0
    assert expected_calibration_error(proba, np.array([1, 0])) == pytest.approx(1.0)
    assert expected_calibration_error(np.zeros((0, 3)), np.zeros(0, dtype=int)) == 0.0


def test_temperature_keeps_argmax_and_softens():
    proba = softmax(np.array([[4.0, 1.0, 0.0], [0.0, 0.5, 3.0]]))
    soft = apply_temperature(proba, 2.0)
    np.testing.assert_array_equal(soft.argmax(1), proba.argmax(1))
    assert (soft.max(1) < proba.max(1)).all()
    np.testing.assert_allclose(soft.sum(1), 1.0)
    # on log-probabilities of a softmax, T divides the logits exactly
    np.testing.assert_allclose(soft, softmax(np.array([[4.0, 1.0, 0.0], [0.0, 0.5, 3.0]]) / 2.0), atol=1e-12)
    np.testing.assert_allclose(apply_temperature(proba, 1.0), proba, atol=1e-12)


def _synthetic(n: int = 4000, k: int = 5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Calibrated probabilities and labels drawn from them."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, k))
    logits[np.arange(n), rng.integers(0, k, n)] += 2.0
    p = softmax(logits)
    y = (p.cumsum(1) > rng.random(n)[:, None]).argmax(1)
    return p, y


def test_fit_temperature_undoes_overconfidence():
    p, y = _synthetic()
    over = apply_temperature(p, 1 / 3)  # logits x3: over-confident
    assert expected_calibration_error(over, y) > 0.15
    t = fit_temperature(over, y)
    assert t == pytest.approx(3.0, rel=0.1)
    fixed = apply_temperature(over, t)
    assert expected_calibration_error(fixed, y) < 0.03
    assert negative_log_likelihood(fixed, y) < negative_log_likelihood(over, y)


def test_fit_temperature_sharpens_underconfidence():
    p, y = _synthetic(seed=1)
    under = apply_temperature(p, 2.5)
    assert fit_temperature(under, y) == pytest.approx(0.4, rel=0.1)


@pytest.mark.parametrize("proba, y", [
    (np.array([0.5, 0.5]), np.array([0])),              # not 2-D
    (np.array([[0.5, np.nan]]), np.array([0])),          # not finite
    (np.array([[0.5, 0.5]]), np.array([2])),             # label out of range
    (np.array([[0.5, 0.5]]), np.array([0, 1])),          # length mismatch
])
def test_bad_inputs_raise(proba, y):
    with pytest.raises(ValueError):
        expected_calibration_error(proba, y)


def test_bad_temperature_raises():
    with pytest.raises(ValueError):
        apply_temperature(np.array([[0.5, 0.5]]), 0.0)
    with pytest.raises(ValueError):
        fit_temperature(np.zeros((0, 2)), np.zeros(0, dtype=int))
