"""Which stages may share a process: runner stages together; the faust drift monitor alone."""
from __future__ import annotations

import pytest

from conveyor.streams.topology.engines import ENGINES, engine_for
from conveyor.streams.topology.pipeline import builtin_pipeline


def test_runner_stages_share_one_process():
    p = builtin_pipeline()
    assert engine_for([p.stage("index"), p.stage("classify")]) is ENGINES["runner"]
    assert engine_for([p.stage("drift")]) is ENGINES["faust"]


def test_the_drift_monitor_runs_alone():
    p = builtin_pipeline()
    with pytest.raises(ValueError, match="^drift runs on its own"):
        engine_for([p.stage("embed"), p.stage("drift")])
