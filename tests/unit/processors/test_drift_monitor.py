"""Unit tests of conveyor.streams.drift.monitor (windows, references, report shape, tests per signal)."""
from __future__ import annotations

import json
import uuid
from pathlib import Path

import numpy as np
import pytest

from conveyor.streams.drift.monitor import (
    EMBEDDING,
    OCR_CONFIDENCE,
    TEXT_LENGTH,
    DriftMonitor,
    StreamClock,
    WindowAggregate,
    label_signal,
)

SCHEMA = Path(__file__).resolve().parents[3] / "schemas" / "drift_report.avsc"
BASE = 1_700_000_000_000  # a multiple of 2000 ms
W = 2000
LABELS_A = ["card_arrival", "card_linking", "exchange_rate"]
LABELS_B = ["lost_or_stolen_card", "pin_blocked"]


def _feed(monitor: DriftMonitor, window: int, labels, rng, n=60, centre=0, length=80, ocr=None):
    dim = 16
    for i in range(n):
        ts = BASE + window * W + i * (W // n)
        monitor.observe_prediction(ts, "clf", labels[rng.integers(len(labels))])
        v = rng.normal(size=dim) * 0.3
        v[centre] += 1.0
        conf = None if ocr is None else float(np.clip(rng.normal(ocr, 0.03), 0, 1))
        monitor.observe_embedding(ts, v, length + int(rng.integers(0, 20)), conf, f"doc-{window}-{i}")


def _by_signal(reports, signal):
    return [r for r in reports if r["signal"] == signal]


@pytest.fixture
def rng():
    return np.random.default_rng(42)


def test_no_shift_no_alarm(rng):
    m = DriftMonitor(2, min_samples=20, clock=lambda: 123)
    for w in range(5):
        _feed(m, w, LABELS_A, rng)
    reports = m.close_windows(BASE + 5 * W)
    # window 0 is the reference; windows 1..4 are reported for 3 signals each
    assert len(reports) == 4 * 3
    assert {r["signal"] for r in reports} == {EMBEDDING, TEXT_LENGTH, label_signal("clf")}
    assert not any(r["alarm"] for r in reports), [(r["signal"], r["value"], r["threshold"]) for r in reports]
    assert [r["window_start"] for r in _by_signal(reports, EMBEDDING)] == [BASE + k * W for k in range(1, 5)]


def test_label_shift_alarms(rng):
    m = DriftMonitor(2, min_samples=20)
    _feed(m, 0, LABELS_A, rng)
    _feed(m, 1, LABELS_A, rng)
    _feed(m, 2, LABELS_B, rng)
    reports = m.close_windows(BASE + 3 * W)
    label = _by_signal(reports, label_signal("clf"))
    assert [r["alarm"] for r in label] == [False, True]
    shifted = label[1]
    assert shifted["statistic"] == "chi2"
    assert shifted["value"] > shifted["threshold"] and shifted["p_value"] <= shifted["alpha"] == 0.0027
    assert label[0]["p_value"] > 0.0027
    assert shifted["sample_size"] == 60 and shifted["reference_size"] == 60
    top = json.loads(shifted["details"]["top_shifts"])
    assert top[0]["category"] in LABELS_B and top[0]["p_ref"] == 0
    assert shifted["details"]["psi_severity"] == "significant" and float(shifted["details"]["psi"]) > 0.2
    # embeddings and lengths did not move
    assert not any(r["alarm"] for r in _by_signal(reports, EMBEDDING) + _by_signal(reports, TEXT_LENGTH))


def test_embedding_and_length_shift_alarm(rng):
    m = DriftMonitor(2, min_samples=20)
    _feed(m, 0, LABELS_A, rng)
    _feed(m, 1, LABELS_A, rng, centre=5, length=5000)
    reports = m.close_windows(BASE + 2 * W)
    emb = _by_signal(reports, EMBEDDING)[0]
    assert emb["alarm"] and emb["statistic"] == "mmd2" and emb["value"] > emb["threshold"]
    assert float(emb["details"]["mean_cosine_distance"]) > 0.5
    length = _by_signal(reports, TEXT_LENGTH)[0]
    assert length["alarm"] and length["statistic"] == "ks" and length["value"] == 1.0
    assert not _by_signal(reports, label_signal("clf"))[0]["alarm"]


def test_ocr_confidence_shift_alarms_alone(rng):
    m = DriftMonitor(2, min_samples=20)
    _feed(m, 0, LABELS_A, rng, ocr=0.95)
    _feed(m, 1, LABELS_A, rng, ocr=0.95)
    _feed(m, 2, LABELS_A, rng, ocr=0.70)   # blurrier scans: same texts, lower confidence
    reports = m.close_windows(BASE + 3 * W)
    ocr = _by_signal(reports, OCR_CONFIDENCE)
    assert [r["alarm"] for r in ocr] == [False, True]
    assert ocr[1]["statistic"] == "ks" and float(ocr[1]["details"]["current_median"]) < 0.8
    assert not any(r["alarm"] for r in reports if r["signal"] != OCR_CONFIDENCE)


def test_window_sample_is_bounded_and_reports_population(rng):
    m = DriftMonitor(2, min_samples=20, window_sample=25, reference_sample=40)
    _feed(m, 0, LABELS_A, rng, n=100)
    _feed(m, 1, LABELS_A, rng, n=100)
    reports = m.close_windows(BASE + 2 * W)
    emb = _by_signal(reports, EMBEDDING)[0]
    assert emb["sample_size"] == 100 and emb["details"]["sampled"] == "25"
    assert emb["details"]["reference_sampled"] == "25"  # a reference of one 25-value window


def test_reports_are_reproducible(rng):
    def run():
        m = DriftMonitor(2, min_samples=20, clock=lambda: 0)
        r = np.random.default_rng(3)
        _feed(m, 0, LABELS_A, r)
        _feed(m, 1, LABELS_A + LABELS_B, r)
        return [(x["signal"], x["value"], x["p_value"]) for x in m.close_windows(BASE + 2 * W)]
    assert run() == run()


def test_report_matches_avro_schema(rng):
    fastavro = pytest.importorskip("fastavro")
    schema = fastavro.parse_schema(json.loads(SCHEMA.read_text()))
    m = DriftMonitor(2, min_samples=1)
    _feed(m, 0, LABELS_A, rng, ocr=0.9)
    _feed(m, 1, LABELS_B, rng, ocr=0.9)
    reports = m.close_windows(BASE + 2 * W)
    assert reports
    field_names = [f["name"] for f in json.loads(SCHEMA.read_text())["fields"]]
    for r in reports:
        assert list(r) == field_names
        assert fastavro.validate(r, schema)
        uuid.UUID(r["report_id"])
        assert r["producer"] == "drift"
        assert r["trace_id"] == f"drift:{BASE + W}"
        assert r["window_end"] - r["window_start"] == W
        assert all(isinstance(v, str) for v in r["details"].values())
        assert 0 < r["p_value"] <= 1 and r["alpha"] == 0.0027
    assert {r["signal"] for r in reports} == {EMBEDDING, TEXT_LENGTH, OCR_CONFIDENCE, label_signal("clf")}


def test_pinned_reference(rng):
    m = DriftMonitor(2, min_samples=20)
    _feed(m, 0, LABELS_A, rng)
    _feed(m, 1, LABELS_B, rng)
    first = _by_signal(m.close_windows(BASE + 2 * W), label_signal("clf"))
    assert first[0]["alarm"]
    # The shift is accepted: pin the last closed window (B labels) as the reference.
    rev = m.revision
    assert label_signal("clf") in m.pin_reference()
    assert m.revision == rev + 1
    assert m.references[label_signal("clf")]["start_ms"] == BASE + W
    assert m.references[label_signal("clf")]["source"] == "pinned"
    _feed(m, 2, LABELS_B, rng)
    _feed(m, 3, LABELS_A, rng)
    label = _by_signal(m.close_windows(BASE + 4 * W), label_signal("clf"))
    assert [r["alarm"] for r in label] == [False, True]
    assert label[0]["details"]["reference_start"] == str(BASE + W)


def test_export_and_load_references_roundtrip(rng):
    m = DriftMonitor(2, min_samples=20)
    _feed(m, 0, LABELS_A, rng, ocr=0.9)
    m.close_windows(BASE + W)
    data = json.loads(json.dumps(m.export_references()))  # JSON-able
    assert set(data["signals"]) == {EMBEDDING, TEXT_LENGTH, OCR_CONFIDENCE, label_signal("clf")}
    restarted = DriftMonitor(2, min_samples=20)
    rev = restarted.revision
    assert restarted.load_references(data) == sorted(data["signals"])
    assert restarted.revision > rev and restarted.references == m.references
    _feed(restarted, 1, LABELS_B, np.random.default_rng(42 + 0), ocr=0.9)
    label = _by_signal(restarted.close_windows(BASE + 2 * W), label_signal("clf"))
    assert label[0]["alarm"] and label[0]["details"]["reference_start"] == str(BASE)
    assert restarted.load_references({"version": 1, "signals": {}}) == [] and restarted.references == {}
    with pytest.raises(ValueError):
        restarted.load_references({"version": 9, "signals": {}})


def test_reset_reference_relearns(rng):
    m = DriftMonitor(2, min_samples=20)
    _feed(m, 0, LABELS_A, rng)
    m.close_windows(BASE + W)
    m.reset_reference()
    assert m.references == {}
    _feed(m, 1, LABELS_B, rng)  # becomes the new reference: no report
    _feed(m, 2, LABELS_B, rng)
    reports = m.close_windows(BASE + 3 * W)
    assert all(r["window_start"] == BASE + 2 * W for r in reports)
    assert not any(r["alarm"] for r in reports)


def test_reference_windows_merge(rng):
    m = DriftMonitor(2, reference_windows=2, min_samples=20)
    _feed(m, 0, LABELS_A, rng)
    _feed(m, 1, LABELS_B, rng)
    _feed(m, 2, LABELS_A + LABELS_B, rng)
    reports = m.close_windows(BASE + 3 * W)
    label = _by_signal(reports, label_signal("clf"))
    assert len(label) == 1 and label[0]["reference_size"] == 120
    assert label[0]["details"]["reference_windows"] == "2"


def test_set_reference_explicit(rng):
    m = DriftMonitor(2, min_samples=20)
    ref = WindowAggregate(0, W)
    for lab in LABELS_B * 20:
        ref.add_prediction("clf", lab)
    assert m.set_reference(ref) == [label_signal("clf")]
    assert m.references[label_signal("clf")]["source"] == "set"
    _feed(m, 0, LABELS_A, rng)  # reported against the explicit reference right away
    reports = m.close_windows(BASE + W)
    assert _by_signal(reports, label_signal("clf"))[0]["alarm"]
    # embedding/length had no reference yet: window 0 became theirs
    assert set(m.references) == {label_signal("clf"), EMBEDDING, TEXT_LENGTH}


def test_lateness_and_late_events(rng):
    m = DriftMonitor(2, allowed_lateness_seconds=1, min_samples=1)
    m.observe_prediction(BASE + 100, "clf", "a")
    assert m.close_windows(BASE + W) == []          # end reached, lateness not yet
    assert m.open_windows == [BASE]
    m.observe_prediction(BASE + 200, "clf", "a")    # still accepted
    m.close_windows(BASE + W + 1000)
    assert m.open_windows == [] and m.is_closed(BASE)
    assert m.observe_prediction(BASE + 300, "clf", "a") is False
    assert m.late_events == 1
    late = WindowAggregate(BASE, BASE + W)
    late.add_prediction("clf", "a")
    assert m.add_window(late) is False and m.late_events == 2


def test_add_window_merges_and_validates(rng):
    m = DriftMonitor(2, min_samples=1)
    for w, labels in ((0, LABELS_A), (1, LABELS_B)):
        agg = m.new_window(BASE + w * W + 5)
        for lab in labels * 10:
            agg.add_prediction("clf", lab)
        half = WindowAggregate(agg.start_ms, agg.end_ms)
        half.merge(agg)
        assert m.add_window(agg) and m.add_window(half)  # two partitions' shares
    reports = m.close_windows(BASE + 2 * W)
    assert reports[0]["sample_size"] == 2 * len(LABELS_B) * 10 and reports[0]["alarm"]
    with pytest.raises(ValueError):
        m.add_window(WindowAggregate(BASE + 2 * W + 1, BASE + 3 * W + 1))


def test_small_windows_never_alarm(rng):
    m = DriftMonitor(2, min_samples=30)
    _feed(m, 0, LABELS_A, rng, n=10)
    _feed(m, 1, LABELS_B, rng, n=10)
    reports = m.close_windows(BASE + 2 * W)
    label = _by_signal(reports, label_signal("clf"))[0]
    assert not label["alarm"] and label["details"]["insufficient_samples"] == "true"


def test_bad_vectors_only_count_length(rng):
    m = DriftMonitor(2, min_samples=1)
    m.observe_embedding(BASE, [], 10)
    m.observe_embedding(BASE, [0.0, 0.0], 10)
    m.observe_embedding(BASE, [float("nan"), 1.0], 10)
    m.close_windows(BASE + W)
    assert set(m.references) == {TEXT_LENGTH}


def test_empty_gap_windows_are_skipped(rng):
    m = DriftMonitor(2, min_samples=20)
    _feed(m, 0, LABELS_A, rng)
    _feed(m, 5, LABELS_A, rng)
    reports = m.close_windows(BASE + 6 * W)
    assert {r["window_start"] for r in reports} == {BASE + 5 * W}


@pytest.mark.parametrize("kwargs", [{"window_seconds": 0}, {"window_seconds": 2, "reference_windows": 0},
                                    {"window_seconds": 2, "allowed_lateness_seconds": -1},
                                    {"window_seconds": 2, "alpha": 0}, {"window_seconds": 2, "alpha": 1.5},
                                    {"window_seconds": 2, "mmd_permutations": 99},  # cannot reach 0.0027
                                    {"window_seconds": 2, "window_sample": 1}])
def test_invalid_config(kwargs):
    with pytest.raises(ValueError):
        DriftMonitor(**kwargs)


def test_stream_clock():
    clock = StreamClock(idle_seconds=5, max_future_seconds=10)
    assert clock.now(0) is None
    clock.observe(1_000, wall_ms=50_000)
    clock.observe(900, wall_ms=50_100)               # out of order: max kept
    assert clock.now(wall_ms=50_100) == 1_000
    assert clock.now(wall_ms=55_100) == 1_000        # idle for exactly idle_seconds
    assert clock.now(wall_ms=57_100) == 3_000        # then advances with the wall clock
    clock.observe(10 ** 9, wall_ms=60_000)           # far future: capped at wall + 10 s
    assert clock.now(wall_ms=60_000) == 70_000


def test_stream_clock_waits_for_lagging_partition_and_ignores_idle_ones():
    clock = StreamClock(idle_seconds=5)
    clock.observe(10_000, wall_ms=100_000, source=("t", 0))
    clock.observe(4_000, wall_ms=100_000, source=("t", 1))   # lagging partition
    assert clock.now(wall_ms=100_000) == 4_000
    clock.observe(6_000, wall_ms=103_000, source=("t", 1))
    assert clock.now(wall_ms=103_000) == 6_000
    # partition 0 goes idle (> 5 s without records): only partition 1 counts
    clock.observe(7_000, wall_ms=106_000, source=("t", 1))
    assert clock.now(wall_ms=106_000) == 7_000
    # everything idle: largest event time, advanced with the wall clock
    assert clock.now(wall_ms=112_000) == 10_000 + (112_000 - 106_000 - 5_000)
    # never backwards
    clock.observe(1_000, wall_ms=112_500, source=("t", 2))
    assert clock.now(wall_ms=112_500) >= 10_000
    assert clock.max_event_ms == 10_000


def test_stream_clock_registered_source_holds_until_it_delivers_or_idles():
    clock = StreamClock(idle_seconds=5)
    clock.register(("t", 0), wall_ms=100_000)
    clock.register(("t", 1), wall_ms=100_000)
    clock.observe(10_000, wall_ms=100_500, source=("t", 0))
    assert clock.now(wall_ms=101_000) is None          # ("t", 1) assigned but silent
    clock.observe(8_000, wall_ms=101_500, source=("t", 1))
    assert clock.now(wall_ms=101_500) == 8_000
    clock.register(("t", 2), wall_ms=102_000)
    assert clock.now(wall_ms=102_000) == 8_000         # held, never backwards
    # all idle at 107.1 s: largest event time + (107_100 - last record 101_500 - 5_000)
    assert clock.now(wall_ms=107_100) == 10_600
