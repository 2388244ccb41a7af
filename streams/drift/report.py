"""Drift reports: one window's signal tested against its reference.

Pure Python + numpy (no Kafka, no faust). :func:`drift_report` runs the signal's test and
builds the dict shaped like ``schemas/drift_report.avsc`` that
:meth:`conveyor.streams.drift.DriftMonitor.close_windows` returns:

==================  =================  ===========================================
signal              statistic          test
==================  =================  ===========================================
``embedding``       ``mmd2``           :class:`~conveyor.streams.drift.twosample.MMDTest`
``text_length``     ``ks``             :func:`~conveyor.streams.drift.twosample.ks_test`
``ocr_confidence``  ``ks``             :func:`~conveyor.streams.drift.twosample.ks_test`
``label:<model>``   ``chi2``           :func:`~conveyor.streams.drift.stats.chi2_permutation_test`
==================  =================  ===========================================

``value`` is the statistic, ``threshold`` its critical value at ``alpha``, ``p_value``
the test's p-value; ``alarm`` is ``p_value <= alpha`` (equivalently ``value >
threshold``) for windows with at least ``min_samples`` observations.
"""
from __future__ import annotations

import json
import math
import uuid
import zlib
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Optional

import numpy as np

from conveyor.streams.drift import stats, twosample
from conveyor.streams.drift.aggregate import (
    Categorical,
    Reference,
    SignalState,
    WindowAggregate,
)
from conveyor.streams.drift.sample import Sample

PRODUCER = "drift"
"""``producer`` field of the drift reports."""
PRODUCER_VERSION = "0.2.0"
"""``producer_version`` field of the drift reports."""


def run_test(signal: str, ref: Reference, cur: SignalState, *, alpha: float, mmd_permutations: int,
             chi2_permutations: int, rng: np.random.Generator) -> Optional[twosample.TestResult]:
    """The drift test of ``signal``'s window state ``cur`` against ``ref`` (see the module table).

    Returns None when the two sides cannot be compared (too few sampled values, a vector
    dimension change, a degenerate reference).
    """
    try:
        if isinstance(cur, Categorical):
            if not isinstance(ref.state, Categorical):
                return None
            result = stats.chi2_permutation_test(ref.state.counts, cur.counts, alpha=alpha,
                                                 n_permutations=chi2_permutations, rng=rng)
            value = stats.psi(ref.state.counts, cur.counts)
            result.details.update({
                "psi": _fmt(value),
                "psi_severity": ("significant" if value > stats.PSI_THRESHOLD
                                 else "moderate" if value > stats.PSI_MODERATE else "none"),
                "js_distance": _fmt(stats.js_distance(ref.state.counts, cur.counts)),
                "top_shifts": json.dumps([
                    {"category": c, "p_ref": round(r, 4), "p_cur": round(q, 4), "contribution": round(x, 4)}
                    for c, r, q, x in stats.psi_contributions(ref.state.counts, cur.counts)
                ], separators=(",", ":")),
            })
            return result
        if not isinstance(ref.state, Sample) or ref.state.dim != cur.dim:
            return None
        if cur.dim:
            mmd = ref.cache.get("mmd")
            if mmd is None:
                mmd = ref.cache["mmd"] = twosample.MMDTest(ref.state.values())
            return mmd.test(cur.values(), alpha=alpha, n_permutations=mmd_permutations, rng=rng)
        return twosample.ks_test(ref.state.values(), cur.values(), alpha=alpha)
    except ValueError:
        return None


def drift_report(signal: str, ref: Reference, cur: SignalState, agg: WindowAggregate, *,
                 alpha: float = stats.ALPHA, min_samples: int = 30,
                 mmd_permutations: int = twosample.MMD_PERMUTATIONS,
                 chi2_permutations: int = stats.CHI2_PERMUTATIONS, seed: int = 0,
                 producer_version: str = PRODUCER_VERSION,
                 clock: Callable[[], int]) -> Optional[dict[str, Any]]:
    """The drift report of ``signal`` in window ``agg`` (state ``cur``) against ``ref``.

    The permutations are seeded from ``(seed, window start, signal)``, so a window re-closed
    after a restart gets the same p-value. Windows with fewer than ``min_samples``
    observations never alarm (``details["insufficient_samples"] = "true"``). ``clock()``
    (ms) gives the report's ``event_time``.

    Returns:
        A dict shaped like ``schemas/drift_report.avsc`` (field order included), or None
        when nothing is comparable (see :func:`run_test`).
    """
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, int(agg.start_ms) & 0xFFFFFFFFFFFF,
                                 zlib.crc32(signal.encode("utf-8"))])
    result = run_test(signal, ref, cur, alpha=alpha, mmd_permutations=mmd_permutations,
                      chi2_permutations=chi2_permutations, rng=rng)
    if result is None:
        return None
    n_ref, n_cur = ref.state.size, cur.size
    details: dict[str, str] = {
        "test": result.statistic,
        "reference_source": ref.source,
        "reference_windows": str(ref.windows),
        "reference_start": str(ref.start_ms),
        "reference_end": str(ref.end_ms),
        "min_samples": str(min_samples),
        **result.details,
    }
    if isinstance(cur, Sample):
        details["sampled"] = str(len(cur))
        details["reference_sampled"] = str(len(ref.state))  # type: ignore[arg-type]  # a Sample signal's reference is a Sample
    enough = n_cur >= min_samples
    if not enough:
        details["insufficient_samples"] = "true"
    threshold = result.threshold if math.isfinite(result.threshold) else float("inf")
    return {
        "report_id": str(uuid.uuid4()),
        "trace_id": f"drift:{agg.start_ms}",
        "event_time": int(clock()),
        "producer": PRODUCER,
        "producer_version": producer_version,
        "signal": signal,
        "statistic": result.statistic,
        "value": float(result.value),
        "threshold": float(threshold) if math.isfinite(threshold) else 1e308,
        "alarm": bool(enough and result.drift),
        "window_start": int(agg.start_ms),
        "window_end": int(agg.end_ms),
        "sample_size": int(n_cur),
        "reference_size": int(n_ref),
        "details": details,
        "p_value": float(result.p_value),
        "alpha": float(result.alpha),
    }


def _fmt(x: float) -> str:
    return f"{x:.6g}"


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def summarize(reports: Iterable[Mapping[str, Any]]) -> list[str]:
    """One line per report, for logs. An alarm line starts with ``DRIFT ALARM`` and names
    the signal, the statistic, its value and threshold, the p-value and the window."""
    out = []
    for r in reports:
        head = "DRIFT ALARM" if r["alarm"] else "no drift"
        p = r.get("p_value")
        out.append(f"{head}: signal={r['signal']} statistic={r['statistic']} value={r['value']:.4g} "
                   f"threshold={r['threshold']:.4g} p={'-' if p is None else f'{p:.4g}'} "
                   f"alpha={r.get('alpha') if r.get('alpha') is not None else '-'} "
                   f"n={r['sample_size']}/{r['reference_size']} "
                   f"window=[{_iso(r['window_start'])}, {_iso(r['window_end'])})")
    return out
