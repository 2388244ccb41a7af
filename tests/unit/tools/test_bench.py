"""The benchmark's own arithmetic: CPU readings, commit cost, soak growth, targets; and the
supervisor running one group several times (scale-out)."""
from __future__ import annotations

import os
import time

import pytest

from conveyor.streams.config import env
from conveyor.streams.config.settings import Settings
from conveyor.tools.bench import cpu
from conveyor.tools.bench.__main__ import _targets
from conveyor.tools.bench.soak import _summary


def test_cpu_seconds_grows_with_work_and_is_none_for_a_gone_process():
    before = cpu.cpu_seconds(os.getpid())
    deadline = time.process_time() + 0.3
    while time.process_time() < deadline:
        pass
    assert cpu.cpu_seconds(os.getpid()) - before >= 0.25
    assert cpu.cpu_seconds(2**22 + 12345) is None
    assert cpu.rss_mib(os.getpid()) > 10


def test_cpu_meter_reports_milliseconds_per_item():
    meter = cpu.CpuMeter({})
    meter.start()
    deadline = time.process_time() + 0.2
    while time.process_time() < deadline:
        pass
    out = meter.stop(items=100)
    assert 1.8 <= out["bench (producer + watcher)"] <= 4.0  # ≈ 200 ms / 100 items
    assert out["total"] == out["bench (producer + watcher)"]
    with pytest.raises(ValueError):
        meter.stop(0)


def test_commit_cost_is_the_difference_between_two_scrapes():
    before = {"embed": (1.0, 100.0), "classify": (0.0, 0.0)}
    after = {"embed": (1.5, 150.0), "classify": (0.0, 0.0)}
    assert cpu.commit_cost(before, after, 10.0) == {"embed": {"mean_ms": 10.0, "per_s": 5.0},
                                                    "classify": {"mean_ms": None, "per_s": 0.0}}


def test_soak_summary_tells_growth_from_a_flat_line():
    flat = [(t, 600.0 + (t % 60) / 30) for t in range(0, 1200, 30)]
    leak = [(t, 300.0 + t / 10) for t in range(0, 1200, 30)]
    assert _summary("embed", flat)["grew"] is False
    out = _summary("extract", leak)
    assert out["grew"] is True
    assert out["slope_mib_per_10_min"] == pytest.approx(60.0, abs=0.1)  # 0.1 MiB/s


def test_targets_compare_the_embed_step_with_quix_at_least_once():
    peers = [{"framework": "conveyor", "latency_ms": {"p95": 60.0}},
             {"framework": "quix-at-least-once", "latency_ms": {"p95": 70.0}},
             {"framework": "faust", "error": "RuntimeError: did not start"}]
    raw = {"texts_per_s": 300.0}
    rows = _targets(raw, {"texts_per_s": 290.0}, {"capacity": {"texts_per_s": 120.0}}, peers, [],
                    {"speed_up": 1.5, "cer_before": 0.106, "cer_after": 0.105, "fields_worse": ["sroie_address"]})
    by = {r["target"]: r for r in rows}
    assert by["text capacity >= 0.8 x raw embedding"]["met"] is False
    assert by["embed stage >= 0.95 x raw embedding"]["met"] is True
    assert by["embed step at 10 texts/s, exactly-once: p95 below Quix Streams at-least-once"]["met"] is True
    assert by["OCR >= 2x faster per page than RapidOCR's defaults"]["met"] is False
    assert by["OCR quality unchanged: SROIE line CER and key fields no worse"]["met"] is False


def test_supervisor_gives_each_copy_of_a_group_its_own_instance_id_and_log(monkeypatch, tmp_path):
    from conveyor.streams.runtime import supervisor

    started = []

    class Recorder:
        pid = 0

        def __init__(self, cmd, env, stdout, stderr):
            started.append(env[env_name])

        def poll(self):
            return None

    env_name = env.INSTANCE_ID
    monkeypatch.setattr(supervisor.subprocess, "Popen", Recorder)
    sup = supervisor.Supervisor(Settings(), [["embed"], ["embed"], ["extract"]], log_dir=tmp_path)
    sup.start()
    assert len(set(started)) == 3
    assert len({c.log_path for c in sup.children}) == 3


@pytest.mark.slow
def test_ocr_variants_score_speed_and_quality_on_real_receipts(corpus_dir):
    from conveyor.processors.extract import ocr
    from conveyor.processors.extract.ocr import OcrOptions
    from conveyor.tools.bench import ocr_variants

    before, capped = ocr_variants.run(corpus_dir, 1, {"before": OcrOptions(),
                                                      "capped": OcrOptions(det_max_side=1600, intra_op_threads=1)})
    assert before["pages"] == capped["pages"] == 2  # one SROIE and one softmatic scan
    assert before["speedup"] == 1.0 and capped["speedup"] == round(before["cpu_s_per_page"]
                                                                    / capped["cpu_s_per_page"], 2)
    assert 0.0 <= capped["sroie_line_cer"] < 0.5
    assert capped["sroie_total"] in ("0/1", "1/1") and capped["softmatic_total"] in ("0/1", "1/1")
    assert ocr.current_options() == ocr.DEFAULT_OPTIONS  # the process engine is put back
