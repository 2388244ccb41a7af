"""Who did it: the principal recorded with every operator action (issue 12, audit) — dead-letter
replays, drift reference pins and resets, model promotions and rollbacks; the review app records
its signed-in reviewer instead.

``CONVEYOR_PRINCIPAL`` names the principal (a pipeline or CI identity, a Kafka principal such as
``User:ops``); without it, the operating-system user running the command.
"""
from __future__ import annotations

import getpass
import os

from conveyor.streams.config import env


def principal() -> str:
    """Who acts: ``CONVEYOR_PRINCIPAL`` if set, else the OS user name (``unknown`` when neither is known)."""
    try:
        return os.environ.get(env.PRINCIPAL) or getpass.getuser()
    except (KeyError, OSError):  # no passwd entry for this uid (some containers)
        return "unknown"
