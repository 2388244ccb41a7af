"""Unit tests of conveyor.streams.drift.sample (bottom-k samples) and the stored-reference
summary (conveyor.streams.drift.reference.summary)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from conveyor.streams.drift.aggregate import EMBEDDING, TEXT_LENGTH, WindowAggregate, state_from_dict, state_to_dict
from conveyor.streams.drift.sample import Sample, priority


def test_priority_is_deterministic_and_uniform():
    assert priority("doc-1") == priority("doc-1") != priority("doc-2")
    p = np.array([priority(f"d{i}") for i in range(5000)])
    assert 0.0 <= p.min() and p.max() < 1.0
    assert abs(p.mean() - 0.5) < 0.02 and abs(np.mean(p < 0.1) - 0.1) < 0.02
    assert priority(None, fallback=0.3) == 0.3


def test_bottom_k_keeps_smallest_priorities_and_counts_all():
    s = Sample(10)
    for i in range(1000):
        s.add(float(i), priority(f"d{i}"))
    expected = sorted(range(1000), key=lambda i: priority(f"d{i}"))[:10]
    assert s.size == 1000 and len(s) == 10
    assert sorted(s.values().tolist()) == sorted(float(i) for i in expected)


def test_merge_of_partitions_equals_one_sample():
    whole, parts = Sample(25, dim=2), [Sample(25, dim=2) for _ in range(3)]
    rng = np.random.default_rng(0)
    for i in range(600):
        v, p = rng.normal(size=2), priority(f"doc{i}")
        whole.add(v, p)
        parts[i % 3].add(v, p)
    merged = Sample(25, dim=2)
    for part in parts:
        merged.merge(part)
    assert merged.size == whole.size == 600
    assert np.allclose(merged.values(), whole.values())


def test_redelivered_document_is_not_sampled_twice():
    s = Sample(5)
    s.add(1.0, 0.1)
    assert s.add(1.0, 0.1)
    assert len(s) == 1 and s.size == 2  # counted (a record), kept once


def test_roundtrip_and_errors():
    s = Sample(4, dim=3)
    for i in range(6):
        s.add([i, 0, 1], priority(f"x{i}"))
    back = Sample.from_dict(json.loads(json.dumps(s.to_dict())))
    assert back.size == 6 and np.allclose(back.values(), s.values())
    assert state_from_dict(state_to_dict(s)).size == 6
    with pytest.raises(ValueError):
        s.add([1, 2], 0.5)
    with pytest.raises(ValueError):
        s.add([np.nan, 0, 0], 0.5)
    with pytest.raises(ValueError):
        Sample(4).merge(s)
    with pytest.raises(ValueError):
        Sample(0)
    with pytest.raises(ValueError):
        state_from_dict({"type": "histogram"})


def test_window_aggregate_merge_rejects_mixed_kinds():
    a, b = WindowAggregate(0, 10), WindowAggregate(0, 10)
    a.add_embedding([1.0, 0.0], 5, None, "d1")
    b.categorical(EMBEDDING).add("x")
    with pytest.raises(TypeError):
        a.merge(b)
    c = WindowAggregate(0, 10)
    c.merge(a)
    assert c.size(TEXT_LENGTH) == 1 and c.size(EMBEDDING) == 1


def test_reference_summary():
    pytest.importorskip("confluent_kafka")
    from conveyor.streams.drift.monitor import DriftMonitor
    from conveyor.streams.drift.reference import summary

    m = DriftMonitor(1)
    agg = m.new_window(0)
    for i in range(40):
        agg.add_embedding([1.0, float(i % 3), 0.0], 50 + i, 0.9, f"d{i}")
        agg.add_prediction("clf", "a" if i % 2 else "b")
    m.set_reference(agg)
    out = summary({**m.export_references(), "reason": "test", "updated_ms": 1})["reference"]
    assert out["reason"] == "test"
    assert out["signals"]["label:clf"] == {"source": "set", "windows": 1, "start_ms": 0, "end_ms": 1000,
                                           "size": 40, "categories": 2}
    assert out["signals"][EMBEDDING]["dim"] == 3 and out["signals"][EMBEDDING]["sampled"] == 40
    assert summary(None) == {"reference": None}
