"""What every ``conveyor`` command shares: its settings and its JSON-lines output."""
from __future__ import annotations

import json
from typing import Any

import click

from conveyor.streams.config.settings import Settings


def settings_from_env() -> Settings:
    """The settings of this process's environment (:meth:`Settings.from_env`)."""
    return Settings.from_env()


def kafka_settings() -> Settings:
    """Settings of a command that talks to Kafka, after one authenticated metadata request,
    so wrong credentials or a wrong address end at once with one clear line."""
    from conveyor.streams.config.security import check_kafka

    settings = settings_from_env()
    check_kafka(settings, timeout=30)
    return settings


def echo_json(obj: dict[str, Any]) -> None:
    """Print ``obj`` as one JSON line (the output of every scripting-facing command)."""
    click.echo(json.dumps(obj, default=str, ensure_ascii=False))
