"""Prometheus metrics of the stream processors (``prometheus-client``).

All metrics carry a ``processor`` label. Each processor process serves them over
HTTP at ``/metrics`` beside ``/healthz`` and ``/readyz`` (:mod:`conveyor.streams.runtime.health`)
when ``CONVEYOR_METRICS_PORT`` is set (``run all`` gives each child its own port, counting
up from that value).
"""
from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

log = logging.getLogger(__name__)

RECORDS_IN = Counter("conveyor_records_in_total", "Records consumed", ["processor", "topic"])
RECORDS_OUT = Counter("conveyor_records_out_total", "Records produced", ["processor", "topic"])
ERRORS = Counter("conveyor_errors_total", "Records that failed, by exception class", ["processor", "exception"])
DEAD_LETTERED = Counter("conveyor_dead_lettered_total", "Records sent to a dead-letter topic, by error class",
                        ["processor", "error_class"])
SINK_ROWS = Counter("conveyor_sink_rows_total", "Rows flushed to a sink", ["processor"])
RETRIED = Counter("conveyor_retried_total",
                  "Records sent to the retry topic after a transient failure, by exception class",
                  ["processor", "exception"])
RETRY_HELD = Gauge("conveyor_retry_partitions_waiting",
                   "Retry-topic partitions paused until their head record is due", ["processor"])
TRANSACTIONS_ABORTED = Counter("conveyor_transactions_aborted_total",
                               "Batches whose transaction was aborted (the batch is processed again)",
                               ["processor"])
REBALANCES = Counter("conveyor_rebalances_total", "Partitions assigned or revoked", ["processor", "event"])
BACKPRESSURE = Counter("conveyor_backpressure_total", "Sink backpressure events (partitions paused)", ["processor"])
PAUSED = Gauge("conveyor_paused", "1 while the processor's partitions are paused", ["processor"])
IN_FLIGHT = Gauge("conveyor_in_flight_records", "Records consumed but not yet committed", ["processor"])
IN_FLIGHT_BYTES = Gauge("conveyor_in_flight_bytes", "Bytes of records consumed but not yet committed", ["processor"])
CONSUMER_LAG = Gauge("conveyor_consumer_lag", "Consumer lag (records) per partition",
                     ["processor", "topic", "partition"])
COMMIT_LATENCY = Histogram("conveyor_commit_seconds",
                           "Time to commit one batch: its offsets and transaction (or acknowledgements and offset "
                           "commit without transactions)", ["processor"],
                           buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5))
READY = Gauge("conveyor_ready", "1 while the processor's readiness checks pass (/readyz)", ["processor"])
BATCH_LATENCY = Histogram("conveyor_batch_seconds", "Time to process, flush and commit one batch",
                          ["processor"], buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120))


def partition_lag(pdata: dict[str, Any]) -> int | None:
    """Records of one partition not consumed yet, from librdkafka statistics (STATISTICS.md):
    ``consumer_lag`` (high watermark minus committed offset) when the consumer knows its
    committed offset, else the last stable offset (read_committed) minus the position
    (``app_offset``) — with transactions the offsets are committed by the producer
    (``send_offsets_to_transaction``), so the consumer's own ``consumer_lag`` stays -1. A
    partition written in transactions shows a lag of one at rest: its last commit marker.
    ``None`` when neither is known."""
    lag = pdata.get("consumer_lag", -1)
    if lag is not None and lag >= 0:
        return int(lag)
    end = pdata.get("ls_offset", -1)
    end = end if end is not None and end >= 0 else pdata.get("hi_offset", -1)
    position = pdata.get("app_offset", -1)
    if end is None or position is None or end < 0 or position < 0:
        return None
    return max(0, int(end) - int(position))


def stats_callback(processor: str) -> Callable[[str], None]:
    """A librdkafka ``stats_cb`` that publishes per-partition consumer lag."""

    def _cb(stats_json: str) -> None:
        try:
            stats = json.loads(stats_json)
        except ValueError:
            return
        for topic, tdata in stats.get("topics", {}).items():
            for part, pdata in tdata.get("partitions", {}).items():
                if part == "-1":
                    continue
                lag = partition_lag(pdata)
                if lag is not None:
                    CONSUMER_LAG.labels(processor, topic, part).set(lag)

    return _cb


def initialise(processor: str) -> None:
    """Export the processor's counters at 0 from the start (Prometheus best practice: a series
    that appears only with its first event breaks ``increase()`` and dashboards until then)."""
    for error_class in ("permanent", "transient"):
        DEAD_LETTERED.labels(processor, error_class)
    TRANSACTIONS_ABORTED.labels(processor)
    BACKPRESSURE.labels(processor)
    PAUSED.labels(processor).set(0)
    READY.labels(processor).set(0)
