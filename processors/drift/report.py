"""Drift reports: one window's signal compared to its reference.

Pure Python + numpy (no Kafka, no faust). :func:`drift_report` builds the dict
shaped like ``schemas/drift_report.avsc`` that
:meth:`processors.drift.DriftMonitor.close_windows` returns; the statistics
and their noise floors are :mod:`processors.drift.stats`'.
"""
from __future__ import annotations

import json
import math
import uuid
from typing import Any, Callable, Iterable, Mapping, Optional

import numpy as np

from processors.drift import stats
from processors.drift.aggregate import (
    Categorical,
    Reference,
    SignalState,
    VectorMean,
    WindowAggregate,
)

PRODUCER = "drift"
"""``producer`` field of the drift reports."""
PRODUCER_VERSION = "0.1.0"
"""``producer_version`` field of the drift reports."""


def drift_report(signal: str, ref: Reference, cur: SignalState, agg: WindowAggregate, *,
                 configured_threshold: float, noise_factor: float, min_samples: int,
                 producer_version: str = PRODUCER_VERSION,
                 clock: Callable[[], int]) -> Optional[dict[str, Any]]:
    """The drift report of ``signal`` in window ``agg`` (state ``cur``) against ``ref``.

    ``mean_cosine_distance`` for a :class:`VectorMean` signal, ``psi`` for a
    :class:`Categorical` one. The alarm threshold is
    :func:`stats.effective_threshold` of ``configured_threshold`` and the noise
    floor at the two sample sizes; windows with fewer than ``min_samples``
    observations never alarm (``details["insufficient_samples"] = "true"``).
    ``clock()`` (ms) gives the report's ``event_time``.

    Returns:
        A dict shaped like ``schemas/drift_report.avsc``, or None when nothing is
        comparable (zero mean vector, vector dimension change).
    """
    details: dict[str, str] = {
        "reference_windows": str(ref.windows),
        "reference_start": str(ref.start_ms),
        "reference_end": str(ref.end_ms),
        "noise_factor": _fmt(noise_factor),
        "min_samples": str(min_samples),
    }
    n_ref, n_cur = ref.state.size, cur.size
    try:
        if isinstance(cur, VectorMean):
            assert isinstance(ref.state, VectorMean)
            statistic = "mean_cosine_distance"
            value = stats.mean_cosine_distance(ref.state.total, n_ref, cur.total, n_cur)
            floor = stats.mean_cosine_noise_floor(ref.state.total, n_ref, n_cur)
            details["reference_mean_norm"] = _fmt(float(np.linalg.norm(ref.state.total)) / n_ref)
            details["current_mean_norm"] = _fmt(float(np.linalg.norm(cur.total)) / n_cur)
        else:
            assert isinstance(ref.state, Categorical)
            statistic = "psi"
            value = stats.psi(ref.state.counts, cur.counts)
            k = len({c for c, v in ref.state.counts.items() if v > 0} | {c for c, v in cur.counts.items() if v > 0})
            floor = stats.psi_noise_floor(k, n_ref, n_cur)
            details["categories"] = str(k)
            details["severity"] = ("significant" if value > stats.PSI_THRESHOLD
                                   else "moderate" if value > stats.PSI_MODERATE else "none")
            details["top_shifts"] = json.dumps([
                {"category": c, "p_ref": round(r, 4), "p_cur": round(q, 4), "contribution": round(x, 4)}
                for c, r, q, x in stats.psi_contributions(ref.state.counts, cur.counts)
            ], separators=(",", ":"))
    except ValueError:  # zero mean vector, dimension change: nothing comparable
        return None
    threshold = stats.effective_threshold(configured_threshold, floor, noise_factor)
    details["configured_threshold"] = _fmt(configured_threshold)
    details["noise_floor"] = _fmt(floor)
    enough = n_cur >= min_samples
    if not enough:
        details["insufficient_samples"] = "true"
    alarm = bool(enough and value > threshold)
    return {
        "report_id": str(uuid.uuid4()),
        "trace_id": f"drift:{agg.start_ms}",
        "event_time": int(clock()),
        "producer": PRODUCER,
        "producer_version": producer_version,
        "signal": signal,
        "statistic": statistic,
        "value": float(value),
        "threshold": float(threshold) if math.isfinite(threshold) else float(configured_threshold),
        "alarm": alarm,
        "window_start": int(agg.start_ms),
        "window_end": int(agg.end_ms),
        "sample_size": int(n_cur),
        "reference_size": int(n_ref),
        "details": details,
    }


def _fmt(x: float) -> str:
    return f"{x:.6g}"


def summarize(reports: Iterable[Mapping[str, Any]]) -> list[str]:
    """One line per report, for logs."""
    return [f"{r['signal']} {r['statistic']}={r['value']:.4f} thr={r['threshold']:.4f} "
            f"alarm={r['alarm']} n={r['sample_size']}/{r['reference_size']} "
            f"[{r['window_start']},{r['window_end']})" for r in reports]
