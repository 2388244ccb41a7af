"""Kafka plumbing of Conveyor: settings, topics, serde, runner, CLI and local stack."""

__version__ = "0.1.0"
