"""Fixtures shared by every test: the repo on ``sys.path`` and the shared corpus.

With ``CONVEYOR_NO_SKIPS=1`` (set by ``.ci/run``) a skipped test is reported as failed: CI
has ``../shared`` beside the checkout and the whole stack, so a skip there means a test
that silently did not run (an absent cache, a missing package), never a test that passed.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

NO_SKIPS_ENV = "CONVEYOR_NO_SKIPS"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under ``CONVEYOR_NO_SKIPS=1`` turn a skip (not an expected failure) into a failure
    that quotes the skip reason."""
    outcome = yield
    report = outcome.get_result()
    if os.environ.get(NO_SKIPS_ENV) == "1" and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped, which {NO_SKIPS_ENV}=1 (CI) does not allow: {reason}"


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    """``../shared/corpus`` beside the repo; the test is skipped when it is absent."""
    path = (REPO_ROOT.parent / "shared" / "corpus").resolve()
    if not path.is_dir():
        pytest.skip(f"shared corpus not found at {path}")
    return path
