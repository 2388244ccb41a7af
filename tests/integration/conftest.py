"""Integration fixtures: one real local stack per test session, isolated names per test.

With ``CONVEYOR_BOOTSTRAP_SERVERS`` set, the stack named by the environment is used as
it is. Otherwise :func:`conveyor.tools.stack.up` starts (or finds) the local stack in
``CONVEYOR_HOME`` (default ``~/.cache/conveyor``, so downloads are reused) and the
session stops it at the end only if it was this session that started it.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from uuid import uuid4

import pytest

from conveyor.streams.config.settings import Settings
from tests.integration.helpers import running_stack


def pytest_collection_modifyitems(config, items):
    """Mark every test under ``tests/integration`` as ``integration``."""
    here = Path(__file__).resolve().parent
    for item in items:
        if here in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def stack_settings() -> Settings:
    """Settings of a running stack (Kafka + registry), started here if needed."""
    with running_stack() as settings:
        yield settings


@pytest.fixture
def settings(stack_settings: Settings, tmp_path: Path) -> Settings:
    """Per-test settings: own namespace (topics, groups, collection), Milvus Lite file, blob dir."""
    return dataclasses.replace(
        stack_settings,
        namespace=f"t{uuid4().hex[:10]}",
        milvus_uri=str(tmp_path / "milvus.db"),
        blob_dir=tmp_path / "blobs",
    )
