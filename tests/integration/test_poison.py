"""A record that kills the processor process (not just raises) is found across restarts and
dead-lettered; the partition moves on and every other record gets exactly one result."""
from __future__ import annotations

import os
import subprocess
import sys

from conveyor.dlq import envelope
from conveyor.processors.base import Processor
from conveyor.streams.config.settings import Settings
from conveyor.streams.kafka.admin import create_topics
from conveyor.streams.kafka.io import InputProducer
from conveyor.streams.kafka.topics import topic
from conveyor.streams.runtime.poison import MAX_CRASHES
from conveyor.streams.runtime.runner import Runner, Stage
from tests.integration.helpers import cli_env, read_all


class CrashingLabeller(Processor):
    """Labels texts; the text 'poison' kills the whole process, like a native crash would."""

    name = "classify"
    version = "1.0.0"

    def process_one(self, record):
        if record["text"] == "poison":
            os._exit(137)
        return [{**self.meta(record), "kind": "text", "filename": None, "label": "ok", "confidence": 1.0,
                 "top_labels": [], "model_name": "rule", "model_version": "1", "model_sha256": "-",
                 "routing": "auto", "reasons": [], "duplicates": [], "fields": None}]


def main() -> None:
    """Subprocess entry point: run the crashing labeller until idle."""
    stage = Stage(CrashingLabeller(), ("texts",), "predictions",
                  consumer_overrides={"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000})
    Runner(Settings.from_env(), stage, batch_size=10).run(max_idle_seconds=12.0)  # > session timeout


def test_a_record_that_crashes_the_process_is_dead_lettered_after_repeated_crashes(settings, tmp_path):
    create_topics(settings)
    with InputProducer(settings) as p:
        ids = [p.text(t, doc_id=f"t-{t}")["doc_id"] for t in ("alpha", "beta", "poison", "gamma", "delta")]
    environ = {**os.environ, **cli_env(settings), "CONVEYOR_HOME": str(tmp_path)}
    codes = []
    for _ in range(MAX_CRASHES + 3):
        run = subprocess.run([sys.executable, "-c", "from tests.integration.test_poison import main; main()"],
                             env=environ, capture_output=True, timeout=180)
        codes.append(run.returncode)
        if run.returncode == 0:
            break
    # the first batch crashes (it may hold the poison alone, then it counts), then the poison alone
    # crashes until MAX_CRASHES, then it is dead-lettered without being processed again
    crashes = len(codes) - 1
    assert codes == [137] * crashes + [0] and crashes in (MAX_CRASHES, MAX_CRASHES + 1), \
        (codes, run.stderr.decode()[-2000:])
    [dead] = read_all(settings, topic(settings, "dlq.classify"), expect=1)
    h = envelope.decode_headers(dead.headers())
    assert dead.key() == b"t-poison" and h[envelope.EXCEPTION_CLASS] == "conveyor.streams.runtime.poison.PoisonPillError"
    preds = read_all(settings, topic(settings, "predictions"), expect=4)
    assert sorted(m.key().decode() for m in preds) == sorted(i for i in ids if i != "t-poison")
    assert not any((tmp_path / "run" / "inflight").glob("*.json"))  # nothing left in flight
