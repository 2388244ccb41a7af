"""Fixtures shared by every test: the repo on ``sys.path`` and the shared corpus."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    """``../shared/corpus`` beside the repo; the test is skipped when it is absent."""
    path = (REPO_ROOT.parent / "shared" / "corpus").resolve()
    if not path.is_dir():
        pytest.skip(f"shared corpus not found at {path}")
    return path
