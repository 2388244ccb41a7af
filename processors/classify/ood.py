"""Out-of-scope detection: Mahalanobis distance to the nearest class mean.

Method (Lee, Lee, Lee, Shin: "A Simple Unified Framework for Detecting
Out-of-Distribution Samples and Adversarial Attacks", NeurIPS 2018): fit one
Gaussian per class with class means ``μ_k`` and a covariance ``Σ`` shared by
all classes (estimated from the within-class residuals); the out-of-scope score
of ``x`` is ``min_k (x − μ_k)ᵀ Σ⁻¹ (x − μ_k)`` (a squared distance, unitless;
higher = further from every known intent). Here it is applied to the 384-d
sentence embeddings the classifier reads, not to a network's hidden layers.
``Σ`` is the Ledoit–Wolf shrinkage estimate (Ledoit & Wolf, "A well-conditioned
estimator for large-dimensional covariance matrices", 2004), so it is always
invertible.

Why not the classifier's own maximum softmax probability (Hendrycks & Gimpel,
ICLR 2017) or energy score (Liu et al., NeurIPS 2020)? Both only see how the
classifier's scores are spread over the *known* intents; a query from another
domain that happens to sit on one side of a decision boundary gets a confident
score. The distance in embedding space sees that it is far from all of them.
Measured with intent-banking77 2.0.0, CLINC150 ``oos_test`` vs banking77 test:
AUROC 0.997 for this distance, 0.976 for the calibrated MSP (``make eval``
reports both).

The scorer is baked into the shipped ONNX graph as the ``ood_score`` output
(:func:`conveyor.tools.training.onnx_graph.append_mahalanobis`); this module holds
the fitting, the numpy reference implementation and the threshold rule.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class MahalanobisScorer:
    """Tied-covariance Gaussian class model in whitened coordinates.

    Attributes:
        center: ``(d,)`` mean of the training embeddings (subtracted first, so
            float32 evaluation in ONNX keeps its precision).
        whitening: ``(d, d)`` ``W`` with ``W Wᵀ = Σ⁻¹``.
        means: ``(k, d)`` whitened class means ``(μ_k − center) W``.
    """

    center: np.ndarray
    whitening: np.ndarray
    means: np.ndarray

    @classmethod
    def fit(cls, X: np.ndarray, y: np.ndarray, n_classes: int | None = None) -> MahalanobisScorer:
        """Fit class means and the shared Ledoit–Wolf covariance.

        Args:
            X: embeddings ``(n, d)``; y: class indices ``(n,)`` in ``0..k-1``.
            n_classes: ``k`` (default ``y.max() + 1``); every class needs a sample.

        Raises:
            ValueError: bad shapes, or a class without samples.
        """
        from sklearn.covariance import LedoitWolf

        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y, dtype=np.int64)
        if X.ndim != 2 or y.shape != (X.shape[0],):
            raise ValueError(f"expected X (n, d) and y (n,), got {X.shape} and {y.shape}")
        k = int(n_classes if n_classes is not None else y.max() + 1)
        counts = np.bincount(y, minlength=k)
        if (counts == 0).any():
            raise ValueError(f"classes without samples: {np.flatnonzero(counts == 0).tolist()}")
        center = X.mean(axis=0)
        mu = np.stack([X[y == c].mean(axis=0) for c in range(k)])
        cov = LedoitWolf(assume_centered=True).fit(X - mu[y]).covariance_
        # Σ = V diag(λ) Vᵀ  ⇒  Σ⁻¹ = W Wᵀ with W = V diag(λ^-1/2)
        eigval, eigvec = np.linalg.eigh(cov)
        whitening = eigvec / np.sqrt(eigval)[None, :]
        return cls(center=center, whitening=whitening, means=(mu - center) @ whitening)

    def score(self, X: np.ndarray) -> np.ndarray:
        """Squared Mahalanobis distance to the nearest class mean, ``(n,)`` float64.

        Raises:
            ValueError: ``X`` is not ``(n, d)``.
        """
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.center.shape[0]:
            raise ValueError(f"expected X of shape (n, {self.center.shape[0]}), got {X.shape}")
        z = (X - self.center) @ self.whitening
        d: np.ndarray = (z * z).sum(axis=1, keepdims=True) - 2.0 * z @ self.means.T + (self.means ** 2).sum(axis=1)[None, :]
        nearest: np.ndarray = np.maximum(d.min(axis=1), 0.0)
        return nearest


def choose_ood_threshold(
    in_scope_scores: np.ndarray,
    oos_scores: np.ndarray | None = None,
    *,
    max_in_scope_rate: float = 0.01,
    min_oos_recall: float = 0.95,
) -> tuple[float, dict[str, str | float | int]]:
    """Out-of-scope score threshold (flag when ``score > threshold``).

    Rule: the ``1 − max_in_scope_rate`` quantile of held-out in-scope scores (at
    most that share of in-scope texts is flagged); if labelled out-of-scope
    validation scores are given and fewer than ``min_oos_recall`` of them would
    be flagged, the threshold is lowered until they are (recall before cost).

    Args:
        in_scope_scores: ``(n,)`` scores of in-scope validation texts (held out
            from the data the scorer was fitted on).
        oos_scores: ``(m,)`` scores of out-of-scope *validation* texts (e.g.
            CLINC150 ``oos_train`` + ``oos_val``), or None.
        max_in_scope_rate, min_oos_recall: shares in ``[0, 1]``.

    Returns:
        ``(threshold, info)``; ``info`` has the rule's inputs and the resulting
        in-scope flag rate and out-of-scope recall on these validation scores.

    Raises:
        ValueError: empty ``in_scope_scores`` or shares outside ``[0, 1]``.
    """
    s_in = np.asarray(in_scope_scores, dtype=np.float64)
    if s_in.size == 0:
        raise ValueError("need in-scope validation scores")
    if not (0.0 <= max_in_scope_rate <= 1.0 and 0.0 <= min_oos_recall <= 1.0):
        raise ValueError("rates must be in [0, 1]")
    threshold = float(np.quantile(s_in, 1.0 - max_in_scope_rate, method="higher"))
    rule = f"{1 - max_in_scope_rate:.3f} quantile of held-out in-scope scores"
    s_out = None if oos_scores is None else np.asarray(oos_scores, dtype=np.float64)
    if s_out is not None and s_out.size:
        # flagged share of out-of-scope must be >= min_oos_recall: threshold below their q-quantile
        q_thr = float(np.quantile(s_out, 1.0 - min_oos_recall, method="lower"))
        if (s_out > threshold).mean() < min_oos_recall:
            threshold = float(np.nextafter(q_thr, -np.inf))
            rule = f"lowered so that >= {min_oos_recall:.2f} of out-of-scope validation texts are flagged"
    info: dict[str, str | float | int] = {
        "rule": rule,
        "max_in_scope_rate": max_in_scope_rate,
        "min_oos_recall": min_oos_recall,
        "validation_in_scope_flag_rate": float((s_in > threshold).mean()),
        "validation_in_scope_count": int(s_in.size),
    }
    if s_out is not None and s_out.size:
        info["validation_oos_recall"] = float((s_out > threshold).mean())
        info["validation_oos_count"] = int(s_out.size)
    return threshold, info
