"""Publishing drift reports: Avro records on ``<ns>.drift`` (key = signal) and the
Prometheus gauges ``conveyor_drift_value{signal,statistic}`` (the test statistic),
``conveyor_drift_threshold{signal,statistic}`` (its critical value),
``conveyor_drift_p_value{signal,statistic}``, ``conveyor_drift_alarm{signal}`` (1 when
the last window alarmed) and ``conveyor_drift_window_end_seconds{signal}``, and counter
``conveyor_drift_reports_total{signal,alarm}``. Alarms are also logged as warnings
naming the signal, statistic, value, threshold, p-value and window."""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Optional

from prometheus_client import Counter, Gauge

from conveyor.streams.drift.config import PROCESSOR
from conveyor.streams.drift.report import summarize
from conveyor.streams.telemetry import metrics

if TYPE_CHECKING:
    from confluent_kafka import KafkaError, Message

log = logging.getLogger(__name__)

MAX_PENDING = 10_000
"""Undelivered reports kept for retry; the oldest are dropped beyond this."""

DRIFT_VALUE = Gauge("conveyor_drift_value", "Last drift statistic per signal", ["signal", "statistic"])
DRIFT_ALARM = Gauge("conveyor_drift_alarm", "1 when the last window of the signal raised a drift alarm",
                    ["signal"])
DRIFT_THRESHOLD = Gauge("conveyor_drift_threshold", "Effective alarm threshold of the last window",
                        ["signal", "statistic"])
DRIFT_P_VALUE = Gauge("conveyor_drift_p_value", "p-value of the last window's drift test",
                      ["signal", "statistic"])
DRIFT_WINDOW_END = Gauge("conveyor_drift_window_end_seconds", "End of the last reported window (Unix time)",
                         ["signal"])
DRIFT_REPORTS = Counter("conveyor_drift_reports_total", "Drift reports produced", ["signal", "alarm"])


def produce_reports(producer: Any, serde: Any, topic: str, reports: list[dict[str, Any]],
                    timeout: float) -> None:
    """Produce ``reports`` to ``topic`` (key = signal, value = Avro via ``serde``) with the
    confluent_kafka ``producer`` and wait up to ``timeout`` seconds for delivery. Blocking.

    Raises:
        RuntimeError: a report was not delivered (still pending, or a delivery error).
    """
    errors: list[str] = []

    def on_delivery(err: Optional[KafkaError], _msg: Message) -> None:
        if err is not None:
            errors.append(str(err))

    for report in reports:
        value = serde.encode(topic, report)
        while True:
            try:
                producer.produce(topic, key=report["signal"].encode("utf-8"), value=value,
                                 on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.5)
        producer.poll(0)
    remaining = producer.flush(timeout)
    if remaining or errors:
        raise RuntimeError(f"drift reports not delivered: {remaining} pending, errors {errors[:3]}")


def record_published(reports: list[dict[str, Any]], topic: str) -> None:
    """Set the drift gauges and counters for delivered ``reports`` and log one line each
    (alarms as warnings)."""
    for report in reports:
        DRIFT_VALUE.labels(report["signal"], report["statistic"]).set(report["value"])
        DRIFT_THRESHOLD.labels(report["signal"], report["statistic"]).set(report["threshold"])
        DRIFT_ALARM.labels(report["signal"]).set(1 if report["alarm"] else 0)
        if report.get("p_value") is not None:
            DRIFT_P_VALUE.labels(report["signal"], report["statistic"]).set(report["p_value"])
        DRIFT_WINDOW_END.labels(report["signal"]).set(report["window_end"] / 1000.0)
        DRIFT_REPORTS.labels(report["signal"], str(report["alarm"]).lower()).inc()
        metrics.RECORDS_OUT.labels(PROCESSOR, topic).inc()
    for line in summarize(reports):
        (log.warning if line.startswith("DRIFT ALARM") else log.info)("drift report: %s", line)
