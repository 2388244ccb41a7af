"""Fixtures of the fault-injection suite (issue 3, section 6).

The suite is opt-in: its tests are skipped unless ``CONVEYOR_FAULT_SUITE=1`` is set or the
marker expression names them (``pytest -m faults``), so ``pytest tests`` / ``make test`` stay
fast. ``make test-faults`` sets the variable.

It runs on the real stack — the one named by ``CONVEYOR_BOOTSTRAP_SERVERS``, else the local
stack, started here if needed (and then stopped at the end) — and on a real Milvus 2.3.5
standalone server of its own (``milvus`` package), started once per session on free ports
under the session's temporary directory, so the index and classify processors run as
separate processes and the Milvus-outage scenario can stop and start it.
"""
from __future__ import annotations

import dataclasses
import os
import platform
import random
from pathlib import Path
from uuid import uuid4

import pytest

from conveyor.streams.config import env
from conveyor.streams.config.settings import Settings
from tests.faults.faults import Broker
from tests.faults.harness import RECORDED, report_path
from tests.integration.helpers import running_stack

SUITE_ENV = "CONVEYOR_FAULT_SUITE"
SEED_ENV = "CONVEYOR_FAULT_SEED"
HERE = Path(__file__).resolve().parent
SUMMARY = (("inputs", "inputs"), ("results", "results"), ("dead_letters", "dead"), ("duplicates", "dups"),
           ("lost", "lost"), ("unexpected_dead_letters", "bad_dead"), ("milvus_rows", "milvus"),
           ("expected_rows", "expected"), ("lag", "lag"), ("recovery_time_s", "recovery_s"),
           ("wall_time_s", "wall_s"), ("passed", "passed"))
"""(figure, column header) of the terminal summary table."""


def pytest_configure(config):
    config.addinivalue_line(
        "markers", f"faults: fault-injection suite, opt-in ({SUITE_ENV}=1 or -m faults; make test-faults)")


def suite_enabled(config) -> bool:
    """Whether the fault suite was asked for: ``CONVEYOR_FAULT_SUITE=1`` or ``-m`` naming ``faults``."""
    return os.environ.get(SUITE_ENV) == "1" or "faults" in (config.getoption("markexpr", "") or "")


def pytest_collection_modifyitems(config, items):
    """Skip this directory's tests unless the suite was asked for."""
    if suite_enabled(config):
        return
    skip = pytest.mark.skip(reason=f"fault-injection suite is opt-in: make test-faults ({SUITE_ENV}=1)")
    for item in items:
        if HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter):
    """Print the figures of every scenario run in this session as a table."""
    if not RECORDED:
        return
    tr = terminalreporter
    tr.section("fault-injection figures")
    tr.write_line("scenario".ljust(10) + "".join(head.rjust(11) for _, head in SUMMARY))
    for e in RECORDED:
        tr.write_line(str(e["scenario"]).ljust(10) + "".join(str(e.get(key)).rjust(11) for key, _ in SUMMARY))
    tr.write_line(f"full figures: {report_path()}")


@pytest.fixture(scope="session")
def fault_stack() -> Settings:
    """Settings of the running stack (Kafka + registry), started here when no
    ``CONVEYOR_BOOTSTRAP_SERVERS`` is given and it is not up yet."""
    with running_stack() as settings:
        yield settings


@pytest.fixture(scope="session")
def fault_milvus(tmp_path_factory):
    """A Milvus 2.3.5 standalone server for the whole suite (``.uri``, ``.stop()``,
    ``.start() -> seconds``); fails, rather than skips, when it cannot start on Linux x86-64."""
    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64"):
        pytest.skip(f"the milvus==2.3.5 wheel ships a Linux x86-64 binary only, not {platform.machine()}")
    pytest.importorskip("milvus", reason="PyPI package milvus==2.3.5 is not installed (pip install -e .[test])")
    from tests.integration.test_milvus_sink import start_server

    try:
        handle = start_server(tmp_path_factory.mktemp("fault-milvus"))
    except RuntimeError as exc:
        pytest.fail(f"Milvus 2.3.5 server did not start: {exc}", pytrace=False)
    server = handle.server
    try:
        yield handle
    finally:
        server.stop()


@pytest.fixture(scope="session")
def fault_seed() -> int:
    """Seed of the fault schedules: ``$CONVEYOR_FAULT_SEED`` or random (printed in the figures)."""
    raw = os.environ.get(SEED_ENV)
    return int(raw) if raw else random.SystemRandom().randrange(1_000_000)


@pytest.fixture
def fault_settings(fault_stack: Settings, fault_milvus, tmp_path: Path, monkeypatch) -> Settings:
    """Per-scenario settings: own namespace (topics, groups, Milvus collection), the suite's
    Milvus server, own blob dir. Processor children inherit this process's environment, so
    fault injection is switched off here unless a test sets it, and Python's faulthandler is
    switched on."""
    proc = fault_milvus.server.server_proc
    if proc is None or proc.poll() is not None:  # an earlier scenario left it down: start it again
        fault_milvus.start()
    monkeypatch.setenv(env.FAULT_TRANSIENT_RATE, "0")
    monkeypatch.setenv("PYTHONFAULTHANDLER", "1")  # stacks on SIGABRT (see harness.dump_stacks)
    monkeypatch.delenv(env.BATCH_SIZE, raising=False)
    return dataclasses.replace(fault_stack, namespace=f"f{uuid4().hex[:10]}", milvus_uri=fault_milvus.uri,
                               blob_dir=tmp_path / "blobs", metrics_port=0)


@pytest.fixture
def restartable_broker(fault_stack: Settings, tmp_path_factory) -> Broker:
    """A Kafka broker of the suite's own (own data dir and ports, same jars and config template
    as the local stack, the stack's registry), stopped at teardown."""
    broker = Broker(fault_stack, tmp_path_factory.mktemp("fault-broker"))
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
