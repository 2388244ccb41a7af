"""SIGTERM: a processor drains its batch, commits, leaves the group within a bounded time, and a
restarted one carries on without loss or duplicates (exactly-once outputs, read_committed)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from confluent_kafka import ConsumerGroupState

from conveyor.streams.kafka.admin import create_topics
from conveyor.streams.kafka.clients import make_admin
from conveyor.streams.kafka.io import InputProducer
from conveyor.streams.kafka.topics import topic
from tests.integration.helpers import cli_env, read_all

STOP_BOUND_S = 30.0


def _start(settings, tmp_path, name: str) -> subprocess.Popen:
    environ = {**os.environ, **cli_env(settings), "CONVEYOR_BATCH_SIZE": "16"}
    log = open(tmp_path / f"{name}.log", "ab")
    return subprocess.Popen([sys.executable, "-m", "conveyor.streams.cli.main", "run", "embed"], env=environ,
                            stdout=log, stderr=subprocess.STDOUT)


def test_sigterm_drains_commits_and_leaves_then_restart_finishes_exactly_once(settings, tmp_path):
    create_topics(settings)
    with InputProducer(settings) as p:
        # enough work (several seconds) that SIGTERM, sent once the first result is read, lands mid-stream
        ids = [p.text(f"please help with my card number {i}")["doc_id"] for i in range(2000)]
    embedded = topic(settings, "embedded")
    proc = _start(settings, tmp_path, "first")
    try:
        deadline = time.monotonic() + 120
        while not read_all(settings, embedded, expect=1, timeout=2):
            assert time.monotonic() < deadline and proc.poll() is None, (tmp_path / "first.log").read_text()
        proc.send_signal(signal.SIGTERM)
        t0 = time.monotonic()
        code = proc.wait(STOP_BOUND_S + 10)
        stopped_in = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == 0 and stopped_in < STOP_BOUND_S, (tmp_path / "first.log").read_text()[-2000:]
    admin = make_admin(settings)
    [desc] = admin.describe_consumer_groups([settings.group_id("embed")]).values()
    group = desc.result(10)
    assert group.state == ConsumerGroupState.EMPTY and not group.members  # it left the group

    done_first = {m.key().decode() for m in read_all(settings, embedded, timeout=5)}
    assert 0 < len(done_first) < len(ids)  # stopped mid-stream

    proc = _start(settings, tmp_path, "second")
    try:
        out = read_all(settings, embedded, expect=len(ids), timeout=240)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(STOP_BOUND_S + 10)
    keys = [m.key().decode() for m in out]
    assert len(keys) == len(ids) and set(keys) == set(ids)  # nothing lost, nothing doubled
