"""The drift monitor as a faust-streaming app (``conveyor run drift``).

Data flow::

    <ns>.embedded ──agent──▶ tumbling tables embeddings, lengths ─┐
    <ns>.predictions ─agent─▶ tumbling table labels ──────────────┤
                                                                  ▼
            @app.timer: harvest closed windows ─▶ DriftMonitor (processors.drift)
                     ─▶ Avro drift reports (key = signal) ─▶ <ns>.drift   (confluent_kafka Producer)
                     ─▶ gauges conveyor_drift_value{signal,statistic}, conveyor_drift_alarm{signal}

Modules, one job each:

* :mod:`.app` — the faust app (agents, timer), :func:`run_drift`, ``python -m streams.drift``;
* :mod:`.config` — :class:`DriftConfig`, the tuning derived from the window length;
* :mod:`.runtime` — :class:`DriftRuntime`, the state the agents and the timer share
  (decoding, late records, closing windows);
* :mod:`.tables` — the windowed tables' keys, values and event time, and reading
  closed windows back out of them;
* :mod:`.publish` — producing the reports, the drift gauges and counters.

Run ONE drift worker per namespace: each worker only sees the partitions
assigned to it, so several workers would each compute drift on a share of the
stream. The drift topic has one partition for the same reason.

Restarts: faust restores the tables from their changelogs, but the monitor's
reference is in memory, so a restarted worker reports the windows still in the
tables again (at-least-once) and the oldest of them becomes the new reference.
"""
from streams.drift.app import make_app, run_drift
from streams.drift.config import DriftConfig
from streams.drift.runtime import DriftRuntime

__all__ = ["DriftConfig", "DriftRuntime", "make_app", "run_drift"]
