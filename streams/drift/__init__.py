"""The drift monitor as a faust-streaming app (``conveyor run drift``).

Data flow::

    <ns>.embedded ──agent──▶ tumbling tables counts, samples (bottom-k) ─┐
    <ns>.predictions ─agent─▶ tumbling table labels ─────────────────────┤
                                                                         ▼
            @app.timer: harvest closed windows ─▶ DriftMonitor (conveyor.streams.drift):
                     MMD (embedding), KS (text_length, ocr_confidence), chi-squared (label:<model>)
                     ─▶ Avro drift reports (key = signal) ─▶ <ns>.drift   (confluent_kafka Producer)
                     ─▶ gauges conveyor_drift_{value,threshold,p_value,alarm}{signal,...}
    <ns>.drift-reference (compacted) ◀──▶ stored reference, `conveyor drift reference pin|reset|show`

Modules, one job each:

* :mod:`.app` — the faust app (agents, timer), :func:`run_drift`, ``python -m conveyor.streams.drift``;
* :mod:`.config` — :class:`DriftConfig`, the tuning derived from the window length;
* :mod:`.runtime` — :class:`DriftRuntime`, the state the agents and the timer share
  (decoding, late records, closing windows);
* :mod:`.tables` — the windowed tables' keys, values and event time, and reading
  closed windows back out of them;
* :mod:`.publish` — producing the reports, the drift gauges and counters;
* :mod:`.reference` — the stored reference and its commands (topic ``<ns>.drift-reference``);
* :mod:`.cli` — the ``conveyor drift`` click group.

The statistics, with no Kafka or faust (an import-linter contract keeps them so), validated
offline on the shared corpus by :mod:`conveyor.tools.drift_validation`:

* :mod:`.stats` — label tests (chi-squared permutation test, Jensen-Shannon distance, PSI);
* :mod:`.twosample` — KS for lengths and OCR confidence, MMD for embeddings;
* :mod:`.sample` — bounded samples (bottom-k);
* :mod:`.monitor` — :class:`~.monitor.DriftMonitor`, windowed state, built on :mod:`.aggregate`,
  :mod:`.clock` and :mod:`.report`.

Run ONE drift worker per namespace: each worker only sees the partitions
assigned to it, so several workers would each compute drift on a share of the
stream. The drift topic has one partition for the same reason.

Restarts: faust restores the tables from their changelogs and the worker loads the
stored reference from ``<ns>.drift-reference``, so it keeps testing against the same
reference; windows still in the tables are reported again (at-least-once, with the same
p-values: the permutations are seeded by window and signal).
"""
from __future__ import annotations

import importlib
from typing import Any

__all__ = ["DriftConfig", "DriftMonitor", "DriftRuntime", "make_app", "run_drift"]

_LAZY = {"make_app": "conveyor.streams.drift.app", "run_drift": "conveyor.streams.drift.app",
         "DriftConfig": "conveyor.streams.drift.config", "DriftRuntime": "conveyor.streams.drift.runtime",
         "DriftMonitor": "conveyor.streams.drift.monitor"}


def __getattr__(name: str) -> Any:
    """Import the faust app only when used, so ``conveyor drift ...`` (``.cli``) and other
    commands do not pay for importing faust (~1 s)."""
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
