"""Evaluation report, section "Drift monitoring": the drift tests and their measured
behaviour on real streams.

``run(corpus_dir) -> dict`` replays the scenarios of :mod:`conveyor.tools.drift_validation.scenarios`
(no shift, domain shift, label shift, document shift, scan shift) through the drift
monitor and returns ``{"section", "tests", "rows", "seconds"}``: ``tests`` is one row per
signal (test, threshold, source, how Evidently / NannyML / alibi-detect do it), ``rows``
one row per scenario (aim, false-alarm rate, detection delay in windows, per signal).
:func:`markdown` renders both as the README tables.

``python -m conveyor.tools.evaluation.drift [CORPUS] [--quick] [--extract] [--markdown]``.
Texts need ~1 minute on 2 cores the first time (MiniLM embeddings, then cached under
``CONVEYOR_TRAIN_CACHE``); documents need a cached extraction (``--extract`` runs the OCR
once: ~15 minutes for the ~75 receipts and forms on 2 busy cores).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any, Optional

from conveyor.streams.drift import stats, twosample
from conveyor.streams.drift.aggregate import REFERENCE_SAMPLE, WINDOW_SAMPLE

SECTION = "Drift monitoring"

TESTS: list[dict[str, str]] = [
    {"signal": "embedding (384-d MiniLM doc vectors)",
     "test": f"kernel two-sample test: unbiased MMD^2, Gaussian RBF kernel (median heuristic on the reference), "
             f"{twosample.MMD_PERMUTATIONS} permutations",
     "threshold": f"p <= {stats.ALPHA} (value > critical MMD^2 of the permutations)",
     "source": "Gretton et al. (2012), A Kernel Two-Sample Test, JMLR 13",
     "others": "alibi-detect MMDDrift: same test, p_val 0.05, 100 permutations; Evidently: default is a domain "
               "classifier (ROC AUC > 0.55), its mmd() alarms at MMD^2 > 0.015; NannyML: domain classifier, "
               "AUROC outside [0.45, 0.65]"},
    {"signal": "label:<model> (predicted labels)",
     "test": f"chi-squared test of homogeneity, Monte-Carlo permutation p-value ({stats.CHI2_PERMUTATIONS} draws); "
             "PSI and JS distance reported as effect sizes",
     "threshold": f"p <= {stats.ALPHA}",
     "source": "Pearson chi-squared; Hope (1968) Monte Carlo test; PSI bands 0.1/0.2 (Yurdakul 2018)",
     "others": "Evidently: chi-squared p < 0.05 (<= 1000 rows) else JS distance > 0.1, psi stattest 0.1; "
               "NannyML: chi2 p < 0.05, JS/L-inf thresholds; alibi-detect ChiSquareDrift p_val 0.05"},
    {"signal": "text_length (characters)",
     "test": "two-sample Kolmogorov-Smirnov, asymptotic Kolmogorov p-value",
     "threshold": f"p <= {stats.ALPHA} (D > 1.82 / sqrt(n m / (n + m)))",
     "source": "Smirnov (1939); scipy.stats.ks_2samp statistic",
     "others": "Evidently: KS p < 0.05 (<= 1000 rows) else Wasserstein > 0.1; NannyML: KS D with mean +- 3 sd "
               "of reference chunks; alibi-detect KSDrift p_val 0.05 (Bonferroni over features)"},
    {"signal": "ocr_confidence (mean OCR line score of OCR'd documents)",
     "test": "two-sample Kolmogorov-Smirnov, as text_length",
     "threshold": f"p <= {stats.ALPHA}",
     "source": "as text_length",
     "others": "as text_length"},
]
"""One row per monitored signal; every test returns value, threshold (critical value) and p-value."""

SETTINGS = {"alpha": stats.ALPHA, "window_sample": WINDOW_SAMPLE, "reference_sample": REFERENCE_SAMPLE,
            "min_samples": 30}


def run(corpus_dir: Optional[Path] = None, *, quick: bool = False, extract: bool = False) -> dict[str, Any]:
    """The drift section of the evaluation report.

    Args:
        corpus_dir: ``../shared/corpus`` by default.
        quick: fewer texts and repeats (the unit test uses it; ~20 s).
        extract: extract documents missing from the cache (slow OCR).

    Returns:
        ``{"section", "available", "settings", "tests", "rows", "seconds"}``; ``available``
        is False (and ``rows`` empty) when the corpus is missing.
    """
    from conveyor.tools.drift_validation import corpus, scenarios

    t = time.perf_counter()
    corpus_dir = Path(corpus_dir) if corpus_dir is not None else corpus.DEFAULT_CORPUS
    out: dict[str, Any] = {"section": SECTION, "available": corpus.corpus_available(corpus_dir),
                           "settings": SETTINGS, "tests": TESTS, "rows": []}
    if out["available"]:
        out["rows"] = [r.row() for r in scenarios.run_all(corpus_dir, quick=quick, extract=extract)]
    out["seconds"] = round(time.perf_counter() - t, 1)
    return out


def _fmt(x: Any) -> str:
    if x is None:
        return "never"
    if isinstance(x, float):
        return f"{x:g}"
    return str(x)


def markdown(result: dict[str, Any]) -> str:
    """The tests table and the scenario table as GitHub markdown."""
    lines = ["| signal | test | alarm threshold | source | Evidently / NannyML / alibi-detect |", "|---|---|---|---|---|"]
    lines += [f"| {r['signal']} | {r['test']} | {r['threshold']} | {r['source']} | {r['others']} |"
              for r in result["tests"]]
    lines += ["", "| scenario | aim | records / window | windows before / after change | false alarms "
              "(rate) | detection delay, windows (median / max) | delay per signal | false alarms per signal |",
              "|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        delay = "-" if r["windows_after_change"] == 0 else \
            f"{_fmt(r['detection_delay_windows'])} / {_fmt(r['max_detection_delay_windows'])} " \
            f"(detected {r['detected_in_repeats']})"
        per_signal = "-" if r["windows_after_change"] == 0 else \
            ", ".join(f"{s}: {_fmt(d)}" for s, d in r["signal_delay_windows"].items())
        fa_signal = ", ".join(f"{s}: {n}" for s, n in r["signal_false_alarms"].items())
        lines.append(f"| {r['scenario']} | {r['aim']} | {r['window_records']} | {r['windows_before_change']} / "
                     f"{r['windows_after_change']} | {r['false_alarm_windows']} ({r['false_alarm_rate']:.1%}) | "
                     f"{delay} | {per_signal} | {fa_signal} |")
    return "\n".join(lines)


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", nargs="?", type=Path, default=None)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--extract", action="store_true", help="OCR documents missing from the cache (slow)")
    parser.add_argument("--markdown", action="store_true", help="print the README tables instead of JSON")
    args = parser.parse_args(argv)
    result = run(args.corpus, quick=args.quick, extract=args.extract)
    print(markdown(result) if args.markdown else json.dumps(result, indent=2))


if __name__ == "__main__":
    main()


def _aim_rows(rows: list[dict[str, Any]]) -> list[tuple[str, Any, Optional[tuple[str, float]], str]]:
    """``(metric, value, aim, note)`` per scenario row: false-alarm rate (aim <= 5 %) and,
    for a scenario with a change, the share of repeats detected within 2 windows (aim 100 %)
    and the largest delay."""
    out: list[tuple[str, Any, Optional[tuple[str, float]], str]] = []
    for r in rows:
        name = r["scenario"].replace("[", "_").replace(" reference]", "_ref").replace("]", "")
        if r["windows_before_change"]:
            out.append((f"{name}_false_alarm_rate", r["false_alarm_rate"], ("<=", 0.05),
                        f"{r['false_alarm_windows']} of {r['windows_before_change']} windows of "
                        f"{r['window_records']} records"))
        if r["windows_after_change"]:
            delays = r.get("delays") or []
            within = sum(d is not None and d <= 2 for d in delays) / len(delays) if delays else 0.0
            signal = " (label signal)" if r["scenario"].startswith("label_shift") else ""
            if signal:
                ds = r.get("label_delays") or []
                within = sum(d is not None and d <= 2 for d in ds) / len(ds) if ds else 0.0
            out.append((f"{name}_detected_within_2_windows", round(within, 4), (">=", 1.0),
                        f"share of {r['detected_in_repeats'].split('/')[1]} repeats{signal}"))
            out.append((f"{name}_max_detection_delay_windows", r["max_detection_delay_windows"], None,
                        "1 = the first changed window"))
    return out


def drift_section(ctx: Any) -> Any:
    """The drift section for :func:`conveyor.tools.evaluation.run_evaluation` (``ctx``: its
    ``EvalContext``): one :class:`~conveyor.tools.evaluation.report.Row` per aim, the tests
    table and the scenario rows in ``details``.

    Raises:
        SkipSection: the corpus is absent.
    """
    from conveyor.tools.drift_validation import corpus, scenarios
    from conveyor.tools.evaluation.report import Row, SectionResult, SkipSection

    if not corpus.corpus_available(Path(ctx.corpus)):
        raise SkipSection(f"{ctx.corpus}: text_banking77 / text_clinc150 absent")
    results = scenarios.run_all(Path(ctx.corpus), extract=True)  # OCR what is not cached yet (slow once)
    rows = []
    for res in results:
        row = res.row()
        row["delays"] = res.delays
        row["label_delays"] = res.signal_delays.get(scenarios.LABEL, [])
        rows.append(row)
    out = SectionResult("drift", details={"settings": SETTINGS, "tests": TESTS,
                                          "scenarios": [{k: v for k, v in r.items() if k not in ("delays", "label_delays")}
                                                        for r in rows]})
    out.details["markdown"] = markdown({"tests": TESTS, "rows": out.details["scenarios"]})
    out.rows = [Row("drift", metric, value, aim, note) for metric, value, aim, note in _aim_rows(rows)]
    return out
