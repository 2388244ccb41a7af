"""Probability calibration: temperature scaling and expected calibration error.

Pure numpy (plus :func:`scipy.optimize.minimize_scalar`, a scikit-learn
dependency); no I/O.

* Temperature scaling (Guo, Pleiss, Sun, Weinberger: "On Calibration of Modern
  Neural Networks", ICML 2017, §4.2): one scalar ``T > 0`` divides the logits,
  ``q = softmax(z / T)``; ``T`` is fitted by minimising the negative
  log-likelihood on a validation split. It never changes the arg-max, so accuracy
  is unchanged. For a classifier that only outputs probabilities ``p`` (an
  ensemble, an SVM), ``log p`` serves as the logits: ``softmax(log p / T)``;
  for a multinomial logistic regression that is exactly ``softmax(z / T)``.
* Expected calibration error (Guo et al. 2017, §2, eq. 3; Naeini et al. 2015):
  confidences (the top probability) are put into ``M = 15`` equal-width bins over
  ``[0, 1]`` and ``ECE = Σ_m |B_m|/n · |acc(B_m) − conf(B_m)|``.
"""
from __future__ import annotations

from typing import TypedDict

import numpy as np

#: Number of equal-width confidence bins of the ECE (Guo et al. 2017 use 15).
ECE_BINS = 15
#: Smallest probability taken to the log (avoids log(0) = -inf for p == 0).
PROB_EPS = 1e-7
#: Search interval of log(T) when fitting the temperature: T in [e^-3, e^3] ≈ [0.05, 20].
LOG_T_BOUNDS = (-3.0, 3.0)


class ReliabilityBin(TypedDict):
    """One confidence bin of :func:`reliability_bins`; ``accuracy``/``confidence`` are None when empty."""

    lower: float
    upper: float
    count: int
    accuracy: float | None
    confidence: float | None


def _check_proba(proba: np.ndarray) -> np.ndarray:
    p = np.asarray(proba, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] < 2:
        raise ValueError(f"expected probabilities of shape (n, k>=2), got {p.shape}")
    if not np.all(np.isfinite(p)) or (p < 0).any():
        raise ValueError("probabilities must be finite and non-negative")
    return p


def _check_labels(y: np.ndarray, n: int, k: int) -> np.ndarray:
    y = np.asarray(y)
    if y.shape != (n,):
        raise ValueError(f"expected {n} labels, got shape {y.shape}")
    if n and (y.min() < 0 or y.max() >= k):
        raise ValueError(f"labels must be class indices in 0..{k - 1}")
    return y.astype(np.int64)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of ``logits`` ``(n, k)`` → probabilities ``(n, k)`` (float64)."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    probs: np.ndarray = e / e.sum(axis=-1, keepdims=True)
    return probs


def apply_temperature(proba: np.ndarray, temperature: float) -> np.ndarray:
    """Temperature-scaled probabilities ``softmax(log(max(p, eps)) / T)``, shape ``(n, k)``.

    ``T > 1`` softens over-confident probabilities, ``T < 1`` sharpens them;
    ``T = 1`` returns ``p`` renormalised. This is the map baked into the shipped
    ONNX graph (:func:`conveyor.tools.training.onnx_graph.append_temperature`).

    Raises:
        ValueError: ``proba`` is not ``(n, k)`` finite non-negative, or ``T <= 0``.
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    p = _check_proba(proba)
    return softmax(np.log(np.maximum(p, PROB_EPS)) / float(temperature))


def negative_log_likelihood(proba: np.ndarray, y: np.ndarray) -> float:
    """Mean ``-log p[i, y_i]`` (nats); probabilities clipped at :data:`PROB_EPS`."""
    p = _check_proba(proba)
    y = _check_labels(y, p.shape[0], p.shape[1])
    return float(-np.log(np.maximum(p[np.arange(len(y)), y], PROB_EPS)).mean())


def fit_temperature(proba: np.ndarray, y: np.ndarray) -> float:
    """The temperature ``T`` minimising the NLL of ``apply_temperature(proba, T)`` on ``y``.

    Args:
        proba: validation-split probabilities ``(n, k)`` of the *uncalibrated* model.
        y: true class indices ``(n,)``.

    Returns:
        ``T`` in ``[e^-3, e^3]`` (bounded 1-D search over ``log T``).

    Raises:
        ValueError: bad shapes, or ``n == 0``.
    """
    from scipy.optimize import minimize_scalar

    p = _check_proba(proba)
    y = _check_labels(y, p.shape[0], p.shape[1])
    if len(y) == 0:
        raise ValueError("cannot fit a temperature on zero samples")
    log_p = np.log(np.maximum(p, PROB_EPS))
    rows = np.arange(len(y))

    def nll(log_t: float) -> float:
        z = log_p / np.exp(log_t)
        z = z - z.max(axis=1, keepdims=True)
        return float((np.log(np.exp(z).sum(axis=1)) - z[rows, y]).mean())

    res = minimize_scalar(nll, bounds=LOG_T_BOUNDS, method="bounded", options={"xatol": 1e-5})
    return float(np.exp(res.x))


def reliability_bins(proba: np.ndarray, y: np.ndarray, n_bins: int = ECE_BINS) -> list[ReliabilityBin]:
    """Per-bin ``{"lower", "upper", "count", "accuracy", "confidence"}`` of the top-1 confidence.

    Bins are equal-width over ``[0, 1]``: bin ``m`` (1-based) holds confidences in
    ``((m-1)/M, m/M]``, the first one also 0. Empty bins have accuracy and
    confidence ``None``.
    """
    p = _check_proba(proba)
    y = _check_labels(y, p.shape[0], p.shape[1])
    if n_bins < 1:
        raise ValueError("n_bins must be >= 1")
    conf = p.max(axis=1)
    correct = p.argmax(axis=1) == y
    # bin index: ceil(conf * M) - 1, so a confidence of exactly m/M falls in bin m
    idx = np.clip(np.ceil(conf * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    bins: list[ReliabilityBin] = []
    for m in range(n_bins):
        sel = idx == m
        count = int(sel.sum())
        bins.append({
            "lower": m / n_bins,
            "upper": (m + 1) / n_bins,
            "count": count,
            "accuracy": float(correct[sel].mean()) if count else None,
            "confidence": float(conf[sel].mean()) if count else None,
        })
    return bins


def expected_calibration_error(proba: np.ndarray, y: np.ndarray, n_bins: int = ECE_BINS) -> float:
    """ECE of the top-1 confidence with ``n_bins`` equal-width bins (Guo et al. 2017, eq. 3).

    Args:
        proba: probabilities ``(n, k)``; y: true class indices ``(n,)``.

    Returns:
        ECE in ``[0, 1]`` (0 = perfectly calibrated); 0.0 for ``n == 0``.

    Raises:
        ValueError: bad shapes or labels.
    """
    bins = reliability_bins(proba, y, n_bins)
    n = sum(b["count"] for b in bins)
    if n == 0:
        return 0.0
    ece = 0.0
    for b in bins:
        accuracy, confidence = b["accuracy"], b["confidence"]
        if b["count"] and accuracy is not None and confidence is not None:
            ece += b["count"] / n * abs(accuracy - confidence)
    return float(ece)
