"""Unit tests of the drift app's glue (conveyor.streams.drift) without Kafka: reading the
faust windowed tables' raw state, closing windows, publishing and the gauges."""
from __future__ import annotations

import dataclasses
import json

import pytest

pytest.importorskip("faust")

import numpy as np
from prometheus_client import REGISTRY

from conveyor.streams.config.settings import Settings
from conveyor.streams.drift import tables
from conveyor.streams.drift.config import DriftConfig
from conveyor.streams.drift.monitor import EMBEDDING, OCR_CONFIDENCE, TEXT_LENGTH, label_signal
from conveyor.streams.drift.runtime import DriftRuntime
from conveyor.streams.drift.sample import priority
from conveyor.streams.kafka.serde import AvroSerde

W = 2000
BASE = 1_700_000_000_000


class FakeTable:
    """What the runtime reads: ``.data`` keyed ``(key, (start_s, end_s))`` like faust's store."""

    def __init__(self):
        self.data = {}

    def add(self, key, ts_ms, value):
        start = (ts_ms // W) * W / 1000.0
        self.data[(key, (start, start + W / 1000.0 - 0.1))] = value


class FakeSerde:
    def encode(self, topic, value):
        return json.dumps(value).encode()


class FakeProducer:
    def __init__(self):
        self.sent = []

    def produce(self, topic, key, value, on_delivery=None):
        self.sent.append((topic, key, json.loads(value)))
        if on_delivery:
            on_delivery(None, None)

    def poll(self, _t):
        return 0

    def flush(self, _t=None):
        return 0


@pytest.fixture
def runtime():
    settings = dataclasses.replace(Settings(), namespace="unit", drift_window_seconds=2)
    rt = DriftRuntime(settings, DriftConfig(window_seconds=2, min_samples=5,
                                            allowed_lateness_seconds=0))
    rt.serde = FakeSerde()
    rt.labels_table, rt.counts_table, rt.samples_table = FakeTable(), FakeTable(), FakeTable()
    return rt


def _fill(rt, window, labels, partitions=(0, 1, 2), per_label=4, admit=True):
    """Like the agents: per partition, ``per_label`` predictions of each label and as many
    embedded records (counted; written to the samples table when admitted)."""
    ts = BASE + window * W + 10
    rng = np.random.default_rng(window)
    for p in partitions:
        for lab in labels:
            rt.labels_table.add(json.dumps([p, "clf", lab]), ts, per_label)
        n = per_label * len(labels)
        rt.counts_table.add(json.dumps([p, TEXT_LENGTH]), ts, n)
        rt.counts_table.add(json.dumps([p, EMBEDDING]), ts, n)
        for i in range(n):
            doc = f"w{window}-p{p}-{i}"
            prio = priority(doc)
            if admit and not rt.admission.admit(p, rt.monitor.window_start(ts), prio):
                continue
            v = np.array([1.0, 0.0, 0.0]) + rng.normal(size=3) * 0.2
            rt.samples_table.add(json.dumps([p, doc]), ts,
                                 tables.sample_entry(prio, 100 + i, None, tables.unit_vector(list(v))))
        rt.clock.observe(ts + W - 20, source=("t", p))


def test_config_validation_and_defaults():
    with pytest.raises(ValueError):
        DriftConfig(window_seconds=1.5)
    with pytest.raises(ValueError):
        DriftConfig(window_seconds=0)
    with pytest.raises(ValueError):
        DriftConfig(alpha=2.0)
    c = DriftConfig.from_settings(dataclasses.replace(Settings(), drift_window_seconds=60.0), environ={})
    assert (c.window_seconds, c.lateness, c.idle, c.tick, c.expires) == (60, 10.0, 60.0, 1.0, 600.0)
    assert (c.alpha, c.reference_windows, c.min_samples, c.store_reference) == (0.0027, 1, 30, True)
    assert DriftConfig.from_settings(dataclasses.replace(Settings(), drift_window_seconds=0.2),
                                     environ={}).window_seconds == 1


def test_config_from_environment():
    env = {"CONVEYOR_DRIFT_ALPHA": "0.01", "CONVEYOR_DRIFT_REFERENCE_WINDOWS": "3",
           "CONVEYOR_DRIFT_MIN_SAMPLES": "50", "CONVEYOR_DRIFT_WINDOW_SAMPLE": "100",
           "CONVEYOR_DRIFT_STORE_REFERENCE": "0"}
    c = DriftConfig.from_settings(Settings(), environ=env, min_samples=None, reference_windows=4)
    assert (c.alpha, c.reference_windows, c.min_samples, c.window_sample, c.store_reference) == \
        (0.01, 4, 50, 100, False)
    assert c.monitor().alpha == 0.01
    with pytest.raises(ValueError, match="CONVEYOR_DRIFT_ALPHA"):
        DriftConfig.from_settings(Settings(), environ={"CONVEYOR_DRIFT_ALPHA": "often"})


def test_harvest_sums_partitions_and_skips_open_windows(runtime):
    _fill(runtime, 0, ["a", "b"])
    _fill(runtime, 1, ["a", "b"])
    aggs = runtime.harvest(limit_ms=BASE + W)  # only window 0 is complete
    assert [a.start_ms for a in aggs] == [BASE]
    agg = aggs[0]
    assert agg.signals[label_signal("clf")].counts == {"a": 12, "b": 12}
    assert agg.signals[TEXT_LENGTH].size == 24 and len(agg.signals[TEXT_LENGTH]) == 24
    assert agg.signals[EMBEDDING].size == 24 and agg.signals[EMBEDDING].dim == 3
    assert OCR_CONFIDENCE not in agg.signals


def test_admission_and_harvest_keep_the_global_bottom_k(runtime):
    """Windows larger than the sample: each partition writes only its running bottom-k, and
    the harvest keeps the bottom-k of all partitions - the same documents a single
    in-memory sample would keep."""
    rt = DriftRuntime(runtime.settings, DriftConfig(window_seconds=2, min_samples=5, allowed_lateness_seconds=0,
                                                    window_sample=20))
    rt.labels_table, rt.counts_table, rt.samples_table = FakeTable(), FakeTable(), FakeTable()
    k = rt.config.window_sample
    _fill(rt, 0, [f"l{i}" for i in range(100)], per_label=2)  # 200 documents per partition
    written = len(rt.samples_table.data)
    assert k * 3 <= written < 3 * 200
    agg = rt.harvest(limit_ms=BASE + W)[0]
    emb = agg.signals[EMBEDDING]
    assert emb.size == 600 and len(emb) == k
    expected = sorted(priority(f"w0-p{p}-{i}") for p in range(3) for i in range(200))[:k]
    assert sorted(emb._keys) == expected
    rt.admission.forget_before(BASE + W)
    assert rt.admission.admit(0, BASE, 0.999)  # forgotten: admitted again


def test_tick_reports_label_shift_and_publishes(runtime):
    _fill(runtime, 0, ["a", "b"])
    _fill(runtime, 1, ["a", "b"])
    _fill(runtime, 2, ["c", "d"])
    _fill(runtime, 3, ["c"])  # keeps windows 0-2 closable (watermark inside window 3)
    reports = runtime.tick()
    assert runtime.store is None  # no reference store in unit tests
    assert {(r["signal"], r["window_start"]) for r in reports} == {
        (sig, BASE + k * W) for sig in (label_signal("clf"), TEXT_LENGTH, EMBEDDING) for k in (1, 2)}
    assert runtime.tick() == []  # nothing new to close
    alarms = {(r["signal"], r["window_start"]): r["alarm"] for r in reports}
    assert alarms[(label_signal("clf"), BASE + W)] is False
    assert alarms[(label_signal("clf"), BASE + 2 * W)] is True

    producer = FakeProducer()
    runtime._producer = producer
    runtime.publish(reports)
    assert [(t, k) for t, k, _ in producer.sent][:1] == [("unit.drift", b"embedding")]
    assert REGISTRY.get_sample_value("conveyor_drift_alarm", {"signal": label_signal("clf")}) == 1.0
    last_label = [r for r in reports if r["signal"] == label_signal("clf")][-1]
    value = REGISTRY.get_sample_value("conveyor_drift_value", {"signal": label_signal("clf"), "statistic": "chi2"})
    assert value == pytest.approx(last_label["value"])
    p_value = REGISTRY.get_sample_value("conveyor_drift_p_value", {"signal": label_signal("clf"), "statistic": "chi2"})
    assert p_value == pytest.approx(last_label["p_value"])
    assert runtime.reports_published == len(reports)


def test_late_records_are_counted(runtime):
    _fill(runtime, 0, ["a"])
    _fill(runtime, 1, ["a"])
    runtime.tick()
    before = REGISTRY.get_sample_value("conveyor_drift_late_records_total", {"topic": "x"}) or 0
    assert runtime.is_late("x", BASE + 5) is True
    assert runtime.is_late("x", BASE + 5 * W) is False
    assert REGISTRY.get_sample_value("conveyor_drift_late_records_total", {"topic": "x"}) == before + 1


def test_undecodable_record_is_counted_not_raised(runtime):
    runtime.serde = AvroSerde(runtime.settings)  # never reaches the registry: bad magic byte
    before = REGISTRY.get_sample_value("conveyor_drift_decode_errors_total", {"topic": "unit.embedded"}) or 0
    assert runtime.decode("unit.embedded", b"garbage") is None
    assert runtime.decode("unit.embedded", None) is None
    assert REGISTRY.get_sample_value("conveyor_drift_decode_errors_total", {"topic": "unit.embedded"}) == before + 2


def test_check_dimension(runtime):
    runtime.check_dimension(384)
    runtime.check_dimension(384)
    with pytest.raises(ValueError, match="dimension"):
        runtime.check_dimension(3)


def test_sample_entry_window_key_and_unit_vector():
    e = json.loads(json.dumps(tables.sample_entry(0.25, 42, 0.9, [0.6, 0.8])))
    assert (e["p"], e["len"], e["ocr"]) == (0.25, 42, 0.9)
    assert tables.entry_vector(e) == pytest.approx([0.6, 0.8])
    assert tables.entry_vector(tables.sample_entry(0.1, 1, float("nan"), None)) is None
    assert tables.sample_entry(0.1, 1, float("nan"), None)["ocr"] is None
    assert tables.window_key(("k", (4.0, 5.9))) == ("k", 4.0)
    assert tables.window_key(["k", [4.0, 5.9]]) == ("k", 4.0)  # after changelog recovery
    assert tables.window_key("k") is None
    assert tables.unit_vector([3.0, 4.0]) == [0.6, 0.8]
    assert tables.unit_vector([0.0, 0.0]) is None and tables.unit_vector([]) is None


class FakeStore:
    """What the runtime uses of conveyor.streams.drift.reference.ReferenceStore."""

    def __init__(self):
        self.incoming, self.published, self.by = [], [], []

    def poll(self):
        out, self.incoming = self.incoming, []
        return out

    def publish_reference(self, references, reason, by=None):
        self.published.append((reason, json.loads(json.dumps(references))))
        self.by.append(by)


def test_reference_is_stored_and_follows_commands(runtime):
    from conveyor.streams.drift.reference import COMMAND_KEY, REFERENCE_KEY

    store = runtime.store = FakeStore()
    _fill(runtime, 0, ["a", "b"])
    _fill(runtime, 1, ["a", "b"])
    runtime.tick()  # window 0 learned: stored once
    assert [r for r, _ in store.published] == ["learned"]
    assert set(store.published[0][1]["signals"]) == {label_signal("clf"), TEXT_LENGTH, EMBEDDING}
    runtime.tick()
    assert len(store.published) == 1  # unchanged: not stored again

    _fill(runtime, 2, ["c", "d"])
    _fill(runtime, 3, ["c", "d"])
    reports = runtime.tick()  # windows 1 (a, b) and 2 (c, d) against window 0 (a, b)
    assert [r["alarm"] for r in reports if r["signal"] == label_signal("clf")] == [False, True]
    _fill(runtime, 4, ["c", "d"])
    store.incoming = [(COMMAND_KEY, {"action": "pin", "windows": 1, "id": "cmd-1", "by": "User:ops"})]
    reports = runtime.tick()  # pins window 2 (the last closed one), then closes window 3 against it
    assert store.published[-1][0] == "pin cmd-1" and store.by[-1] == "User:ops"  # who asked is recorded
    assert runtime.monitor.references[label_signal("clf")]["source"] == "pinned"
    assert runtime.monitor.references[label_signal("clf")]["start_ms"] == BASE + 2 * W
    assert [r["alarm"] for r in reports if r["signal"] == label_signal("clf")] == [False]

    store.incoming = [(REFERENCE_KEY, {"version": 1, "signals": {}, "reason": "reset (cli)"}),
                      (COMMAND_KEY, {"action": "pin", "windows": 0, "id": "bad"})]  # bad: logged, ignored
    runtime.tick()
    assert runtime.monitor.references == {} and store.published[-1][0] == "pin cmd-1"
