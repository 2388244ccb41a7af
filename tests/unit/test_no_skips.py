"""``CONVEYOR_NO_SKIPS=1`` (CI) turns a skip into a failure; without it a skip stays a skip."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SAMPLE = '''
import pytest

def test_runs():
    assert True

def test_needs_the_corpus():
    pytest.skip("shared corpus not found")

@pytest.mark.xfail(reason="known")
def test_expected_failure():
    assert False
'''


def _run(tmp_path: Path, no_skips: str) -> subprocess.CompletedProcess:
    (tmp_path / "test_sample.py").write_text(SAMPLE)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "CONVEYOR_NO_SKIPS": no_skips}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "tests.conftest",
                           "--rootdir", str(tmp_path), str(tmp_path)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


def test_a_skip_fails_under_no_skips(tmp_path):
    out = _run(tmp_path, "1")
    assert out.returncode == 1, out.stdout
    assert "1 failed, 1 passed, 1 xfailed" in out.stdout
    assert "does not allow: Skipped: shared corpus not found" in out.stdout


def test_a_skip_is_a_skip_otherwise(tmp_path):
    out = _run(tmp_path, "0")
    assert out.returncode == 0, out.stdout
    assert "1 passed, 1 skipped, 1 xfailed" in out.stdout
