"""Unit tests of the drift app's glue (streams.drift) without Kafka: reading the
faust windowed tables' raw state, closing windows, publishing and the gauges."""
from __future__ import annotations

import dataclasses
import json

import pytest

pytest.importorskip("faust")

from prometheus_client import REGISTRY  # noqa: E402

from processors.drift.monitor import EMBEDDING, TEXT_LENGTH, label_signal  # noqa: E402
from streams.drift import tables  # noqa: E402
from streams.drift.config import DriftConfig  # noqa: E402
from streams.drift.runtime import DriftRuntime  # noqa: E402
from streams.serde import AvroSerde  # noqa: E402
from streams.settings import Settings  # noqa: E402

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
    rt.labels_table, rt.lengths_table, rt.embeddings_table = FakeTable(), FakeTable(), FakeTable()
    return rt


def _fill(rt, window, labels, partitions=(0, 1, 2)):
    ts = BASE + window * W + 10
    for p in partitions:
        for lab in labels:
            rt.labels_table.add(json.dumps([p, "clf", lab]), ts, 4)
        rt.lengths_table.add(json.dumps([p, "[64,128)"]), ts, 4 * len(labels))
        rt.embeddings_table.add(json.dumps([p]), ts, {"n": 4 * len(labels), "sum": [4.0 * len(labels), 0.0]})
        rt.clock.observe(ts + W - 20, source=("t", p))


def test_config_validation_and_defaults():
    with pytest.raises(ValueError):
        DriftConfig(window_seconds=1.5)
    with pytest.raises(ValueError):
        DriftConfig(window_seconds=0)
    c = DriftConfig.from_settings(dataclasses.replace(Settings(), drift_window_seconds=60.0))
    assert (c.window_seconds, c.lateness, c.idle, c.tick, c.expires) == (60, 10.0, 60.0, 1.0, 600.0)
    assert DriftConfig.from_settings(dataclasses.replace(Settings(), drift_window_seconds=0.2)).window_seconds == 1


def test_harvest_sums_partitions_and_skips_open_windows(runtime):
    _fill(runtime, 0, ["a", "b"])
    _fill(runtime, 1, ["a", "b"])
    aggs = runtime.harvest(limit_ms=BASE + W)  # only window 0 is complete
    assert [a.start_ms for a in aggs] == [BASE]
    agg = aggs[0]
    assert agg.signals[label_signal("clf")].counts == {"a": 12, "b": 12}
    assert agg.signals[TEXT_LENGTH].counts == {"[64,128)": 24}
    assert agg.signals[EMBEDDING].n == 24


def test_tick_reports_label_shift_and_publishes(runtime):
    _fill(runtime, 0, ["a", "b"])
    _fill(runtime, 1, ["a", "b"])
    _fill(runtime, 2, ["c", "d"])
    _fill(runtime, 3, ["c"])  # keeps windows 0-2 closable (watermark inside window 3)
    reports = runtime.tick()
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
    value = REGISTRY.get_sample_value("conveyor_drift_value", {"signal": label_signal("clf"), "statistic": "psi"})
    assert value == pytest.approx(last_label["value"])
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


def test_vec_add_and_window_key():
    acc = tables.vec_add({}, {"n": 1, "sum": [1.0, 2.0]})
    acc = tables.vec_add(acc, {"n": 2, "sum": [0.5, 0.5]})
    assert acc == {"n": 3, "sum": [1.5, 2.5]}
    with pytest.raises(ValueError):
        tables.vec_add(acc, {"n": 1, "sum": [1.0]})
    assert tables.window_key(("k", (4.0, 5.9))) == ("k", 4.0)
    assert tables.window_key(["k", [4.0, 5.9]]) == ("k", 4.0)  # after changelog recovery
    assert tables.window_key("k") is None
    assert tables.unit_vector([3.0, 4.0]) == [0.6, 0.8]
    assert tables.unit_vector([0.0, 0.0]) is None and tables.unit_vector([]) is None
