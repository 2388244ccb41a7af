"""Fixtures of the runner tests on the in-memory broker (``test_runner_memory``, ``test_replay_memory``)."""
from __future__ import annotations

from pathlib import Path

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient

from conveyor.streams.config.settings import Settings
from conveyor.streams.kafka.serde import AvroSerde
from tests.unit.streams.memory_kafka import MemoryBroker
from tests.unit.streams.test_runner_memory import DOCS, NS, TEXTS


@pytest.fixture
def kafka(tmp_path: Path) -> tuple[Settings, MemoryBroker, AvroSerde]:
    """``(settings, broker, serde)``: namespace :data:`NS` with the ``titles`` stage's topics on an
    in-memory broker, and a serde on an in-memory schema registry."""
    settings = Settings(namespace=NS, home=tmp_path, retry_delays=(0.0,), retry_jitter=0.0)
    broker = MemoryBroker({DOCS: 2, TEXTS: 2, f"{NS}.retry.titles": 1, f"{NS}.dlq.titles": 1})
    serde = AvroSerde(settings, client=SchemaRegistryClient.new_client({"url": "mock://"}))  # the registry in memory
    return settings, broker, serde
