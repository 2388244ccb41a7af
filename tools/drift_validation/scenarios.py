"""Offline validation of the drift monitor on real streams (``../shared/corpus``).

Each scenario replays real inputs through :class:`conveyor.streams.drift.DriftMonitor` as a
stream of tumbling windows of ``window`` records (event times one window apart) and
reads its reports:

=============  ======================================  ======================================
scenario       reference                               stream
=============  ======================================  ======================================
no_shift       BANKING77 train (stored reference set)  BANKING77 test, shuffled
domain_shift   BANKING77 train                         BANKING77 test, then CLINC150 test
                                                       queries of the other domains
label_shift    BANKING77 train                         BANKING77 test, then only 10 intents
document_shift receipts (random half)                  the other receipts, then tax forms
scan_shift     receipts (random half)                  the other receipts, then SROIE receipts
lowres_shift   receipts (random half)                  the other receipts, then the receipts
                                                       re-scanned at ~105 dpi, JPEG quality 40
=============  ======================================  ======================================

Measured per scenario: **false-alarm rate** = windows *before* the change with an alarm on
any signal / windows before the change, and **detection delay** = windows after the change
until the first alarm (1 = the first changed window; None = never), overall and per signal.
Texts carry the intent model's predicted label (``label:intent-banking77``), their MiniLM
doc vector and length; documents their doc vector, length and OCR confidence.

Stochastic parts (shuffles, reference halves) are seeded; ``repeats`` replays a scenario
with other seeds and pools the windows (the document scenario has only ~25 receipts and
~20 tax forms, so it is repeated over random splits).
"""
from __future__ import annotations

import random
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from conveyor.streams.drift.aggregate import EMBEDDING, OCR_CONFIDENCE, TEXT_LENGTH, WindowAggregate, label_signal
from conveyor.streams.drift.monitor import DriftMonitor
from conveyor.tools.drift_validation.corpus import DEFAULT_CORPUS, Document, TextSet, load_documents, load_texts

INTENT_MODEL = "intent-banking77"
"""Model name of the shipped intent classifier (``processors/models/intent-banking77``)."""
LABEL = label_signal(INTENT_MODEL)
WINDOW_MS = 60_000
T0 = 1_700_000_040_000  # a multiple of WINDOW_MS


@dataclass
class Item:
    """One record of a simulated stream."""

    doc_id: str
    vector: np.ndarray
    text_length: int
    ocr_confidence: Optional[float] = None
    label: Optional[str] = None


def text_items(ts: TextSet, idx: Iterable[int]) -> list[Item]:
    """Items of ``ts`` at positions ``idx``."""
    return [Item(f"{ts.name}:{i}", ts.vectors[i], len(ts.texts[i]), None, ts.predicted[i]) for i in idx]


def doc_items(docs: Sequence[Document]) -> list[Item]:
    """Items of documents (no predicted label)."""
    return [Item(d.file, d.vector, d.text_length, d.ocr_confidence) for d in docs]


def reference_aggregate(items: Sequence[Item]) -> WindowAggregate:
    """One aggregate of ``items`` (for :meth:`DriftMonitor.set_reference`)."""
    agg = WindowAggregate(0, WINDOW_MS, capacity=max(len(items), 2))
    for it in items:
        agg.add_embedding(it.vector, it.text_length, it.ocr_confidence, it.doc_id)
        if it.label is not None:
            agg.add_prediction(INTENT_MODEL, it.label)
    return agg


def replay(windows: Sequence[Sequence[Item]], reference: Optional[Sequence[Item]] = None,
           **monitor_kwargs: Any) -> list[list[dict]]:
    """Feed ``windows`` (lists of items) to a fresh monitor, one window of event time each;
    returns the reports of every window (index aligned with ``windows``; a window used to
    learn the reference has none). ``reference`` items become a stored reference."""
    monitor = DriftMonitor(WINDOW_MS / 1000, **monitor_kwargs)
    if reference is not None:
        monitor.set_reference(reference_aggregate(reference))
    for w, items in enumerate(windows):
        base = T0 + w * WINDOW_MS
        for i, it in enumerate(items):
            ts = base + i * (WINDOW_MS // max(len(items), 1))
            monitor.observe_embedding(ts, it.vector, it.text_length, it.ocr_confidence, it.doc_id)
            if it.label is not None:
                monitor.observe_prediction(ts, INTENT_MODEL, it.label)
    reports = monitor.close_windows(T0 + len(windows) * WINDOW_MS)
    out: list[list[dict]] = [[] for _ in windows]
    for r in reports:
        out[(r["window_start"] - T0) // WINDOW_MS].append(r)
    return out


@dataclass
class Outcome:
    """Alarms of one replay: ``change`` is the index of the first changed window (None: no change)."""

    per_window: list[list[dict]]
    change: Optional[int]
    first: int = 0  # windows before this index learned the reference

    def alarmed(self, w: int, signal: Optional[str] = None) -> bool:
        return any(r["alarm"] and (signal is None or r["signal"] == signal) for r in self.per_window[w])

    def before(self) -> range:
        return range(self.first, self.change if self.change is not None else len(self.per_window))

    def delay(self, signal: Optional[str] = None) -> Optional[int]:
        if self.change is None:
            return None
        for k, w in enumerate(range(self.change, len(self.per_window)), start=1):
            if self.alarmed(w, signal):
                return k
        return None


def _all_detected(delays: Sequence[Optional[int]]) -> Optional[list[int]]:
    """The delays when there are some and every repeat detected the change, else None."""
    detected = [d for d in delays if d is not None]
    return detected if delays and len(detected) == len(delays) else None


@dataclass
class ScenarioResult:
    """Pooled figures of a scenario (see the module docstring)."""

    name: str
    aim: str
    window: int
    windows_before: int
    false_alarm_windows: int
    windows_after: int
    delays: list[Optional[int]]
    signal_false_alarms: dict[str, int] = field(default_factory=dict)
    signal_delays: dict[str, list[Optional[int]]] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def false_alarm_rate(self) -> float:
        return self.false_alarm_windows / self.windows_before if self.windows_before else 0.0

    @property
    def delay(self) -> Optional[float]:
        """Median detection delay over the repeats (None if any repeat never detected)."""
        delays = _all_detected(self.delays)
        return None if delays is None else float(np.median(delays))

    @property
    def max_delay(self) -> Optional[int]:
        delays = _all_detected(self.delays)
        return None if delays is None else int(max(delays))

    def row(self) -> dict[str, Any]:
        """Flat JSON-able row for reports."""
        def med(ds: list[Optional[int]]) -> Any:
            detected = _all_detected(ds)
            return None if detected is None else float(np.median(detected))
        return {"scenario": self.name, "aim": self.aim, "window_records": self.window,
                "windows_before_change": self.windows_before, "false_alarm_windows": self.false_alarm_windows,
                "false_alarm_rate": round(self.false_alarm_rate, 4), "windows_after_change": self.windows_after,
                "detection_delay_windows": self.delay, "max_detection_delay_windows": self.max_delay,
                "detected_in_repeats": f"{sum(d is not None for d in self.delays)}/{len(self.delays)}",
                "signal_false_alarms": dict(self.signal_false_alarms),
                "signal_delay_windows": {s: med(ds) for s, ds in self.signal_delays.items()},
                "seconds": round(self.seconds, 2)}


def pool(name: str, aim: str, window: int, outcomes: Sequence[Outcome], signals: Sequence[str],
         seconds: float) -> ScenarioResult:
    """Pool the outcomes of the repeats of one scenario."""
    res = ScenarioResult(name, aim, window, 0, 0, 0, [], {s: 0 for s in signals}, {s: [] for s in signals}, seconds)
    for o in outcomes:
        before = list(o.before())
        res.windows_before += len(before)
        res.false_alarm_windows += sum(o.alarmed(w) for w in before)
        for s in signals:
            res.signal_false_alarms[s] += sum(o.alarmed(w, s) for w in before)
        if o.change is not None:
            res.windows_after += len(o.per_window) - o.change
            res.delays.append(o.delay())
            for s in signals:
                res.signal_delays[s].append(o.delay(s))
    return res


REFERENCES = ("train", "balanced", "learned")
"""Reference modes of the text scenarios: a uniform sample of BANKING77 train stored as the
reference, a class-balanced one, or none stored (the first stream window is learned, as
the drift worker does by default)."""


def reference_items(train: TextSet, size: int, rnd: random.Random, mode: str) -> Optional[list[Item]]:
    """``size`` reference texts of ``train`` for reference ``mode`` (:data:`REFERENCES`):
    a uniform sample (``train``), the same number per intent (``balanced``: BANKING77 train
    is imbalanced, 35-187 texts per intent, its test set has 40 each - their intent priors
    differ by PSI 0.075 / JS distance 0.115), or None (``learned``).

    Raises:
        ValueError: an unknown mode.
    """
    if mode not in REFERENCES:
        raise ValueError(f"unknown reference mode {mode!r}")
    if mode == "learned":
        return None
    if mode == "train":
        return text_items(train, rnd.sample(range(len(train)), size))
    by_intent: dict[str, list[int]] = {}
    for i, intent in enumerate(train.intents):
        by_intent.setdefault(intent, []).append(i)
    per = max(size // len(by_intent), 1)
    idx = [i for intent in sorted(by_intent) for i in rnd.sample(by_intent[intent], min(per, len(by_intent[intent])))]
    return text_items(train, idx)


def _name(base: str, reference: str) -> str:
    return base if reference == "train" else f"{base}[{reference} reference]"


def _chunks(items: Sequence[Item], size: int) -> list[list[Item]]:
    return [list(items[i:i + size]) for i in range(0, len(items) - size + 1, size)]


TEXT_SIGNALS = (EMBEDDING, TEXT_LENGTH, LABEL)
DOC_SIGNALS = (EMBEDDING, TEXT_LENGTH, OCR_CONFIDENCE)


def no_shift(sets: dict[str, TextSet], *, window: int = 100, reference: str = "train", ref_size: int = 1000, repeats: int = 1,
             seed: int = 0, **kw: Any) -> ScenarioResult:
    """(a) reference BANKING77 train, stream BANKING77 test: every alarm is a false alarm."""
    t = time.perf_counter()
    outs = []
    for r in range(repeats):
        rnd = random.Random(seed + r)
        ref = reference_items(sets["b77_train"], ref_size, rnd, reference)
        test_idx = list(range(len(sets["b77_test"])))
        rnd.shuffle(test_idx)
        windows = _chunks(text_items(sets["b77_test"], test_idx), window)
        outs.append(Outcome(replay(windows, ref, **kw), None, 0 if ref else 1))
    return pool(_name("no_shift", reference), "false alarms <= 5% of windows", window, outs, TEXT_SIGNALS,
                time.perf_counter() - t)


def domain_shift(sets: dict[str, TextSet], *, window: int = 100, reference: str = "train", before: int = 10,
                 after: int = 5, mix: float = 1.0, ref_size: int = 1000, repeats: int = 1, seed: int = 0,
                 **kw: Any) -> ScenarioResult:
    """(b) BANKING77 test, then CLINC150 queries of other domains (a fraction ``mix`` of
    every later window, the rest BANKING77 test): alarm within 2 windows."""
    t = time.perf_counter()
    outs = []
    for r in range(repeats):
        rnd = random.Random(seed + 100 + r)
        ref = reference_items(sets["b77_train"], ref_size, rnd, reference)
        calm = text_items(sets["b77_test"], rnd.sample(range(len(sets["b77_test"])), before * window))
        n_other = int(round(mix * window))
        other_all = text_items(sets["clinc_other"], rnd.sample(range(len(sets["clinc_other"])), after * n_other))
        same = text_items(sets["b77_test"], rnd.sample(range(len(sets["b77_test"])), after * (window - n_other)))
        other = []
        for w in range(after):
            chunk = other_all[w * n_other:(w + 1) * n_other] + same[w * (window - n_other):(w + 1) * (window - n_other)]
            rnd.shuffle(chunk)
            other.extend(chunk)
        windows = _chunks(calm, window) + _chunks(other, window)
        outs.append(Outcome(replay(windows, ref, **kw), before, 0 if ref else 1))
    name = _name("domain_shift", reference) + ("" if mix == 1.0 else f"_{int(mix * 100)}pct")
    return pool(name, "alarm within 2 windows", window, outs, TEXT_SIGNALS, time.perf_counter() - t)


def label_shift(sets: dict[str, TextSet], *, window: int = 100, reference: str = "train", before: int = 10, intents: int = 10,
                ref_size: int = 1000, repeats: int = 1, seed: int = 0, **kw: Any) -> ScenarioResult:
    """(c) BANKING77 test, then only ``intents`` intents: caught by the predicted-label test."""
    t = time.perf_counter()
    outs = []
    test = sets["b77_test"]
    for r in range(repeats):
        rnd = random.Random(seed + 200 + r)
        ref = reference_items(sets["b77_train"], ref_size, rnd, reference)
        chosen = set(rnd.sample(sorted(set(test.intents)), intents))
        few = [i for i in range(len(test)) if test.intents[i] in chosen]
        rnd.shuffle(few)
        calm = text_items(test, rnd.sample(range(len(test)), before * window))
        windows = _chunks(calm, window) + _chunks(text_items(test, few), window)
        outs.append(Outcome(replay(windows, ref, **kw), before, 0 if ref else 1))
    return pool(_name("label_shift", reference), f"caught by the {LABEL} chi-squared test", window, outs, TEXT_SIGNALS,
                time.perf_counter() - t)


def _doc_shift(name: str, first: Sequence[Document], second: Sequence[Document], *, window: int, repeats: int,
               seed: int, min_samples: int, **kw: Any) -> ScenarioResult:
    """Each repeat: a random half of ``first`` is the stored reference, the other half
    streams in windows of ``window``, then ``second`` (shuffled)."""
    t = time.perf_counter()
    outs = []
    for r in range(repeats):
        rnd = random.Random(seed + 300 + r)
        a, b = list(first), list(second)
        rnd.shuffle(a)
        rnd.shuffle(b)
        half = len(a) // 2
        calm = _chunks(doc_items(a[half:]), window)
        outs.append(Outcome(replay(calm + _chunks(doc_items(b), window), doc_items(a[:half]),
                                   min_samples=min_samples, **kw), len(calm)))
    return pool(name, "alarm within 2 windows", window, outs, DOC_SIGNALS, time.perf_counter() - t)


def document_shift(docs: Sequence[Document], *, window: int = 6, repeats: int = 20, seed: int = 0,
                   min_samples: int = 5, **kw: Any) -> ScenarioResult:
    """(d) receipts, then tax forms (24 receipts, 21 tax forms: windows of 6 documents,
    ``repeats`` random reference/stream splits)."""
    return _doc_shift("document_shift", [d for d in docs if d.label == "receipt"],
                      [d for d in docs if d.label == "tax_form"], window=window, repeats=repeats, seed=seed,
                      min_samples=min_samples, **kw)


def scan_shift(docs: Sequence[Document], sroie: Sequence[Document], *, window: int = 6, repeats: int = 20,
               seed: int = 0, min_samples: int = 5, **kw: Any) -> ScenarioResult:
    """(d') receipts of the shippable folders (German flatbed scans, photos), then SROIE
    receipts (Malaysian thermal-paper scans): same document type, other source - the OCR
    confidence and text length signals see it too."""
    return _doc_shift("scan_shift", [d for d in docs if d.label == "receipt"], sroie, window=window,
                      repeats=repeats, seed=seed, min_samples=min_samples, **kw)


def lowres_shift(docs: Sequence[Document], lowres: Sequence[Document], *, window: int = 6, repeats: int = 20,
                 seed: int = 0, min_samples: int = 5, **kw: Any) -> ScenarioResult:
    """(d'') the image receipts, then the same receipts re-scanned at ~105 dpi with strong
    JPEG compression (:func:`conveyor.tools.drift_validation.corpus.degrade`): same documents, worse scans -
    the OCR confidence and text length signals are the ones meant to see it."""
    return _doc_shift("lowres_shift", [d for d in docs if d.label == "receipt"], lowres, window=window,
                      repeats=repeats, seed=seed, min_samples=min_samples, **kw)


def run_all(corpus: Path = DEFAULT_CORPUS, *, quick: bool = False, extract: bool = False) -> list[ScenarioResult]:
    """Every scenario on the corpus. ``quick`` uses fewer texts and repeats (for tests);
    ``extract`` extracts documents missing from the cache (slow OCR). Document scenarios
    are left out when no document extraction is cached."""
    from conveyor.tools.drift_validation.corpus import load_degraded_receipts, load_sroie

    reps = 1 if quick else 5
    sets = load_texts(corpus, n_train=1500 if quick else None, n_test=None, n_other=600 if quick else None)
    out = [no_shift(sets, repeats=reps)]
    if not quick:
        out += [no_shift(sets, repeats=reps, reference="balanced"), no_shift(sets, repeats=reps, reference="learned")]
    out += [domain_shift(sets, repeats=reps), label_shift(sets, repeats=reps)]
    if not quick:
        out += [domain_shift(sets, repeats=reps, mix=0.3), domain_shift(sets, repeats=reps, reference="learned"),
                label_shift(sets, repeats=reps, reference="learned")]
    docs = load_documents(corpus, extract=extract)
    if docs:
        out.append(document_shift(docs, repeats=10 if quick else 40))
        sroie = load_sroie(corpus, extract=extract)
        if len(sroie) >= 12:
            out.append(scan_shift(docs, sroie, repeats=10 if quick else 40))
        lowres = load_degraded_receipts(corpus, extract=extract)
        if len(lowres) >= 12:
            out.append(lowres_shift(docs, lowres, repeats=10 if quick else 40))
    return out
