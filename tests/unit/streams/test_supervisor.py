"""``run all``'s supervisor with stand-in children (real processes, no broker): a crashed child
is restarted with the same instance id (so its transactional producer fences the dead one), a
child that ignores SIGTERM is killed after the grace period, and the secrets and routing
settings reach the children."""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from pydantic import SecretStr

from conveyor.streams.config import env
from conveyor.streams.config.settings import Settings
from conveyor.streams.runtime.supervisor import Supervisor

SEEN = (env.INSTANCE_ID, env.KAFKA_SASL_PASSWORD, env.AUTO_THRESHOLD, env.NAMESPACE)
RECORD = f"""
import json, os, sys
with open(os.path.join(sys.argv[1], sys.argv[2] + ".runs"), "a") as f:
    f.write(json.dumps({{k: os.environ.get(k) for k in {SEEN!r}}}) + "\\n")
"""
"""A child (``-c RECORD <dir> <stage>``) appending the variables in SEEN to <dir>/<stage>.runs."""


def _wait(until, timeout=15.0):
    deadline = time.monotonic() + timeout
    while not until():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_crashed_child_is_restarted_with_the_same_instance_id(tmp_path: Path):
    crash = RECORD + "sys.exit(3)\n"
    sup = Supervisor(Settings(namespace="sup", kafka_sasl_password=SecretStr("s3cret"), auto_threshold=0.9),
                     [["embed"]], grace=1.0, command=(sys.executable, "-c", crash, str(tmp_path)))
    sup.start()
    runs = tmp_path / "embed.runs"
    _wait(lambda: runs.exists() and sup.children[0].proc.poll() is not None)
    sup.check()  # within the 1 s backoff: not yet
    assert sup.children[0].restarts == 0
    _wait(lambda: (sup.check(), sup.children[0].restarts)[1] == 1)
    _wait(lambda: len(runs.read_text().splitlines()) == 2)
    first, second = (json.loads(line) for line in runs.read_text().splitlines())
    assert first == second and first[env.INSTANCE_ID]
    assert first[env.KAFKA_SASL_PASSWORD] == "s3cret" and first[env.AUTO_THRESHOLD] == "0.9"
    assert first[env.NAMESPACE] == "sup"
    sup.stop()


def test_stop_terms_then_kills_a_child_that_ignores_sigterm(tmp_path: Path):
    stubborn = ("import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                "open(sys.argv[1] + '/up', 'w').close(); time.sleep(60)")
    polite = "import sys, time; time.sleep(60)"
    sup = Supervisor(Settings(namespace="sup"), [["index"]], grace=0.5,
                     command=(sys.executable, "-c", stubborn, str(tmp_path)))
    sup.start()
    _wait(lambda: (tmp_path / "up").exists())
    assert sup.stop() == {"index": -9}
    sup = Supervisor(Settings(namespace="sup"), [["classify"], ["classify"]], grace=5.0,
                     command=(sys.executable, "-c", polite))
    sup.start()
    assert sup.stop() == {"classify.0": -15, "classify.1": -15}  # SIGTERM's default: exit at once
