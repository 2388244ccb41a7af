"""The drift monitor as a faust-streaming app (``conveyor run drift``).

Data flow::

    <ns>.embedded ──agent──▶ tumbling tables embeddings, lengths ─┐
    <ns>.predictions ─agent─▶ tumbling table labels ──────────────┤
                                                                  ▼
            @app.timer: harvest closed windows ─▶ DriftMonitor (processors.drift)
                     ─▶ Avro drift reports (key = signal) ─▶ <ns>.drift   (confluent_kafka Producer)
                     ─▶ gauges conveyor_drift_value{signal,statistic}, conveyor_drift_alarm{signal}

* The app id ``<namespace>.drift`` is also the consumer group; the input topics
  are read as raw bytes and decoded with :class:`streams.serde.AvroSerde` in the
  agents. An undecodable record is logged, counted
  (``conveyor_drift_decode_errors_total{topic}`` and
  ``conveyor_errors_total{processor="drift",exception="DecodeError"}``) and skipped.
* State lives in faust **windowed tables** (tumbling, event time = the records'
  ``event_time`` via ``relative_to``), backed by changelog topics
  ``<ns>.drift-{labels,lengths,embeddings}-changelog`` that faust creates itself. Table keys carry the
  source partition (a faust table partition is its source partition), the timer
  sums the partitions. Values: label/length counts (``int``) and embedding
  ``{"n", "sum"}`` (unit vectors summed).
* The timer runs every ``tick_seconds``: it computes the watermark
  (:class:`processors.drift.StreamClock`, per source partition), reads every
  window of the tables that the watermark closed, hands them to the
  :class:`processors.drift.DriftMonitor` and publishes its reports. The monitor
  holds the reference (first closed window by default) in memory.

Run ONE drift worker per namespace: each worker only sees the partitions
assigned to it, so several workers would each compute drift on a share of the
stream. The drift topic has one partition for the same reason.

Restarts: faust restores the tables from their changelogs, but the monitor's
reference is in memory, so a restarted worker reports the windows still in the
tables again (at-least-once) and the oldest of them becomes the new reference.

faust quirks handled here: window sizes must be whole seconds (faust computes
window ranges with ``int()``); tables can only be written inside an agent, so
the timer only *reads* ``table.data``; table expiry runs on the wall clock, not
on event time (``expires_seconds``); faust's ``on_window_close`` is not used (it
fires on wall-clock expiry, with a known lookup bug noted in faust's source);
``datadir`` parents are created here (faust creates only the last level); the
web server is disabled (port 6066 clashes between workers); the producers
compress with lz4, which aiokafka can only read with ``cramjam``
(``aiokafka[lz4]``), checked at start.
"""
from __future__ import annotations

import argparse
import asyncio
import contextvars
import dataclasses
import json
import logging
import math
import signal
import ssl
import threading
from datetime import timedelta
from typing import Any, Optional, Sequence

import faust
from prometheus_client import Counter, Gauge

from processors.drift import stats
from processors.drift.monitor import (
    EMBEDDING,
    TEXT_LENGTH,
    DriftMonitor,
    StreamClock,
    WindowAggregate,
    label_signal,
    summarize,
)
from streams import metrics
from streams.serde import AvroSerde, DecodeError
from streams.settings import Settings
from streams.topics import catalogue

log = logging.getLogger(__name__)

PROCESSOR = "drift"
MAX_PENDING = 10_000
"""Undelivered reports kept for retry; the oldest are dropped beyond this."""

DRIFT_VALUE = Gauge("conveyor_drift_value", "Last drift statistic per signal", ["signal", "statistic"])
DRIFT_ALARM = Gauge("conveyor_drift_alarm", "1 when the last window of the signal raised a drift alarm",
                    ["signal"])
DRIFT_THRESHOLD = Gauge("conveyor_drift_threshold", "Effective alarm threshold of the last window",
                        ["signal", "statistic"])
DRIFT_REPORTS = Counter("conveyor_drift_reports_total", "Drift reports produced", ["signal", "alarm"])
DECODE_ERRORS = Counter("conveyor_drift_decode_errors_total",
                        "Input records the drift monitor could not decode (skipped)", ["topic"])
LATE_RECORDS = Counter("conveyor_drift_late_records_total",
                       "Input records whose window was already closed (ignored)", ["topic"])

# Event time (seconds) of the record being aggregated; read by the windowed
# tables' ``relative_to`` handler. Set and read synchronously inside an agent.
_EVENT_TS: contextvars.ContextVar[float] = contextvars.ContextVar("conveyor_drift_event_ts")


def _event_timestamp(event: Any = None) -> float:
    return _EVENT_TS.get()


@dataclasses.dataclass(frozen=True)
class DriftConfig:
    """Tuning of the drift app; defaults derive from ``window_seconds``.

    Attributes:
        window_seconds: tumbling window length; faust windows need whole seconds (>= 1).
        reference_windows: windows merged into each signal's reference.
        allowed_lateness_seconds: a window closes this long after the watermark passed
            its end (default ``min(10, window/2)``).
        idle_seconds: a source partition with no record for this long no longer holds
            the watermark back (default one window).
        tick_seconds: timer interval (default ``min(1, window/4)``).
        expires_seconds: faust drops table windows this long after they ended, by
            wall clock (default ``max(10 windows, 300 s)``); windows replayed from
            further back than this are not reported.
        min_samples, psi_threshold, length_threshold, embedding_threshold,
        noise_factor: see :class:`processors.drift.DriftMonitor`.
    """

    window_seconds: int = 60
    reference_windows: int = 1
    allowed_lateness_seconds: Optional[float] = None
    idle_seconds: Optional[float] = None
    tick_seconds: Optional[float] = None
    expires_seconds: Optional[float] = None
    min_samples: int = 30
    psi_threshold: float = stats.PSI_THRESHOLD
    length_threshold: float = stats.PSI_THRESHOLD
    embedding_threshold: float = stats.EMBEDDING_THRESHOLD
    noise_factor: float = stats.NOISE_FACTOR

    def __post_init__(self) -> None:
        if int(self.window_seconds) != self.window_seconds or self.window_seconds < 1:
            raise ValueError(f"drift window must be a whole number of seconds >= 1 "
                             f"(faust tumbling windows), got {self.window_seconds}")

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> "DriftConfig":
        """Config with ``window_seconds`` from ``CONVEYOR_DRIFT_WINDOW_SECONDS``, rounded
        to whole seconds (at least 1)."""
        window = max(1, int(round(settings.drift_window_seconds)))
        return cls(window_seconds=window, **overrides)

    @property
    def lateness(self) -> float:
        if self.allowed_lateness_seconds is not None:
            return float(self.allowed_lateness_seconds)
        return min(10.0, self.window_seconds / 2)

    @property
    def idle(self) -> float:
        return float(self.idle_seconds) if self.idle_seconds is not None else float(self.window_seconds)

    @property
    def tick(self) -> float:
        return float(self.tick_seconds) if self.tick_seconds is not None else min(1.0, self.window_seconds / 4)

    @property
    def expires(self) -> float:
        if self.expires_seconds is not None:
            return float(self.expires_seconds)
        return max(10.0 * self.window_seconds, 300.0)

    def monitor(self) -> DriftMonitor:
        return DriftMonitor(
            self.window_seconds,
            reference_windows=self.reference_windows,
            allowed_lateness_seconds=self.lateness,
            psi_threshold=self.psi_threshold,
            length_threshold=self.length_threshold,
            embedding_threshold=self.embedding_threshold,
            noise_factor=self.noise_factor,
            min_samples=self.min_samples,
        )


def _broker_credentials(settings: Settings) -> Optional[faust.types.auth.CredentialsT]:
    """faust credentials from the librdkafka-style security settings (PLAINTEXT → None)."""
    proto = (settings.kafka_security_protocol or "PLAINTEXT").upper()
    if proto == "PLAINTEXT":
        return None
    ctx = ssl.create_default_context(cafile=settings.kafka_ssl_ca_location) if "SSL" in proto else None
    if proto == "SSL":
        return faust.SSLCredentials(ctx)
    if proto in ("SASL_PLAINTEXT", "SASL_SSL"):
        password = settings.kafka_sasl_password.get_secret_value() if settings.kafka_sasl_password else None
        return faust.SASLCredentials(username=settings.kafka_sasl_username, password=password,
                                     ssl_context=ctx, mechanism=settings.kafka_sasl_mechanism or "PLAIN")
    raise ValueError(f"unsupported security protocol for faust: {proto}")


def _vec_add(acc: Any, item: dict) -> dict:
    """Table op: add ``{"n", "sum"}`` to an accumulated ``{"n", "sum"}`` (or the default ``{}``)."""
    if not acc:
        return {"n": int(item["n"]), "sum": list(item["sum"])}
    total = acc["sum"]
    if len(total) != len(item["sum"]):
        raise ValueError(f"embedding dimension changed: {len(item['sum'])} != {len(total)}")
    return {"n": int(acc["n"]) + int(item["n"]), "sum": [a + b for a, b in zip(total, item["sum"])]}


def _unit(vector: Sequence[float]) -> Optional[list[float]]:
    norm = math.sqrt(sum(float(x) * float(x) for x in vector)) if vector else 0.0
    if not vector or norm == 0.0 or not math.isfinite(norm):
        return None
    return [float(x) / norm for x in vector]


def _window_key(key: Any) -> Optional[tuple[Any, float]]:
    """``(table_key, window_start_seconds)`` of a raw windowed-table key ``(key, (start, end))``
    (lists after a changelog recovery), or None."""
    try:
        k, rng = key
        return k, float(rng[0])
    except (TypeError, ValueError, IndexError):
        return None


class DriftRuntime:
    """State shared by the agents and the timer of one drift app (``app.conveyor_drift``)."""

    def __init__(self, settings: Settings, config: DriftConfig) -> None:
        self.settings = settings
        self.config = config
        self.monitor = config.monitor()
        self.clock = StreamClock(idle_seconds=config.idle)
        self.serde = AvroSerde(settings)
        specs = catalogue(settings)
        self.embedded_topic = specs["embedded"].name
        self.predictions_topic = specs["predictions"].name
        self.drift_topic = specs["drift"].name
        self._producer = None
        self._producer_lock = threading.Lock()
        self.reports_published = 0
        #: Reports not delivered yet (retried on the next tick; at-least-once).
        self.pending: list[dict] = []
        self.labels_table: Any = None
        self.lengths_table: Any = None
        self.embeddings_table: Any = None

    # -- decoding ------------------------------------------------------------------------
    def decode(self, topic: str, value: Optional[bytes]) -> Optional[dict]:
        """The Avro record, or None (logged and counted) if it cannot be decoded."""
        metrics.RECORDS_IN.labels(PROCESSOR, topic).inc()
        try:
            record = self.serde.decode(topic, value)
            int(record["event_time"])
            return record
        except (DecodeError, KeyError, TypeError, ValueError) as exc:
            DECODE_ERRORS.labels(topic).inc()
            metrics.ERRORS.labels(PROCESSOR, "DecodeError").inc()
            log.warning("drift: skipping undecodable record on %s: %s", topic, exc)
            return None

    def is_late(self, topic: str, ts_ms: int) -> bool:
        if self.monitor.is_closed(self.monitor.window_start(ts_ms)):
            LATE_RECORDS.labels(topic).inc()
            return True
        return False

    # -- harvesting the tables --------------------------------------------------------------
    def harvest(self, limit_ms: int) -> list[WindowAggregate]:
        """Aggregates of every window in the tables that ends at or before ``limit_ms``
        and is not closed yet (partitions summed)."""
        w_ms = self.monitor.window_ms
        out: dict[int, WindowAggregate] = {}

        def window(start_s: float) -> Optional[WindowAggregate]:
            start = int(round(start_s * 1000))
            if start + w_ms > limit_ms or self.monitor.is_closed(start):
                return None
            agg = out.get(start)
            if agg is None:
                agg = out[start] = WindowAggregate(start, start + w_ms)
            return agg

        def entries(table):
            for key, value in list(table.data.items()):
                parsed = _window_key(key)
                if parsed is None or not value:
                    continue
                agg = window(parsed[1])
                if agg is not None:
                    yield agg, parsed[0], value

        for agg, key, value in entries(self.labels_table):
            try:
                _, model, label = json.loads(key)
                agg.categorical(label_signal(str(model))).add(str(label), int(value))
            except (TypeError, ValueError) as exc:
                log.warning("drift: ignoring label table entry %r: %s", key, exc)
        for agg, key, value in entries(self.lengths_table):
            try:
                _, bucket = json.loads(key)
                agg.categorical(TEXT_LENGTH).add(str(bucket), int(value))
            except (TypeError, ValueError) as exc:
                log.warning("drift: ignoring length table entry %r: %s", key, exc)
        for agg, key, value in entries(self.embeddings_table):
            try:
                if value.get("n"):
                    agg.vector(EMBEDDING).add(value["sum"], int(value["n"]))
            except (AttributeError, KeyError, TypeError, ValueError) as exc:  # e.g. dimension change
                log.warning("drift: ignoring embedding table entry %r: %s", key, exc)
        return [out[s] for s in sorted(out)]

    def tick(self, wall_ms: Optional[int] = None) -> list[dict]:
        """Close what the watermark allows; returns the new reports (not yet published)."""
        watermark = self.clock.now(wall_ms)
        if watermark is None:
            return []
        limit = self.monitor.closable_before(watermark)
        if self.monitor.closed_until_ms is not None and limit <= self.monitor.closed_until_ms:
            return []
        for agg in self.harvest(limit):
            self.monitor.add_window(agg)
        return self.monitor.close_windows(watermark)

    # -- output ----------------------------------------------------------------------------
    def _get_producer(self):
        with self._producer_lock:
            if self._producer is None:
                from streams.kafka import make_producer

                self._producer = make_producer(self.settings)
            return self._producer

    def publish(self, reports: list[dict], timeout: float = 30.0) -> None:
        """Produce ``reports`` (key = signal) and wait for delivery; set the gauges.

        Blocking: call it from a thread (the timer uses the default executor).
        """
        if not reports:
            return
        producer = self._get_producer()
        errors: list[str] = []

        def on_delivery(err, _msg):
            if err is not None:
                errors.append(str(err))

        for report in reports:
            value = self.serde.encode(self.drift_topic, report)
            while True:
                try:
                    producer.produce(self.drift_topic, key=report["signal"].encode("utf-8"), value=value,
                                     on_delivery=on_delivery)
                    break
                except BufferError:
                    producer.poll(0.5)
            producer.poll(0)
        remaining = producer.flush(timeout)
        if remaining or errors:
            raise RuntimeError(f"drift reports not delivered: {remaining} pending, errors {errors[:3]}")
        for report in reports:
            DRIFT_VALUE.labels(report["signal"], report["statistic"]).set(report["value"])
            DRIFT_THRESHOLD.labels(report["signal"], report["statistic"]).set(report["threshold"])
            DRIFT_ALARM.labels(report["signal"]).set(1 if report["alarm"] else 0)
            DRIFT_REPORTS.labels(report["signal"], str(report["alarm"]).lower()).inc()
            metrics.RECORDS_OUT.labels(PROCESSOR, self.drift_topic).inc()
        self.reports_published += len(reports)
        for line in summarize(reports):
            (log.warning if "alarm=True" in line else log.info)("drift report: %s", line)

    def close(self) -> None:
        with self._producer_lock:
            if self._producer is not None:
                self._producer.flush(10)
                self._producer = None


def make_app(settings: Settings, config: Optional[DriftConfig] = None) -> faust.App:
    """The drift faust app of ``settings.namespace`` (app id/consumer group ``<ns>.drift``).

    ``app.conveyor_drift`` is its :class:`DriftRuntime` (monitor, clock, serde).
    """
    config = config or DriftConfig.from_settings(settings)
    specs = catalogue(settings)
    emb_spec, pred_spec = specs["embedded"], specs["predictions"]
    app_id = settings.group_id(PROCESSOR)
    datadir = settings.home / "faust" / app_id
    datadir.mkdir(parents=True, exist_ok=True)  # faust mkdirs only the last level
    brokers = [f"kafka://{h.strip()}" for h in settings.bootstrap_servers.split(",") if h.strip()]
    app = faust.App(
        app_id,
        broker=brokers,
        broker_credentials=_broker_credentials(settings),
        store="memory://",
        datadir=str(datadir),
        topic_partitions=emb_spec.partitions,
        topic_replication_factor=1,
        topic_disable_leader=True,       # no <app>-__assignor-__leader topic: one worker
        value_serializer="raw",
        key_serializer="raw",
        web_enabled=False,               # no HTTP server on :6066 (metrics go through prometheus-client)
        consumer_auto_offset_reset="earliest",
        producer_max_request_size=settings.max_message_bytes,
        consumer_max_fetch_size=settings.max_message_bytes + 1_048_576,
        table_cleanup_interval=max(config.tick * 5, 5.0),
    )
    rt = DriftRuntime(settings, config)
    app.conveyor_drift = rt  # type: ignore[attr-defined]

    embedded = app.topic(emb_spec.name, partitions=emb_spec.partitions,
                         key_serializer="raw", value_serializer="raw")
    predictions = app.topic(pred_spec.name, partitions=pred_spec.partitions,
                            key_serializer="raw", value_serializer="raw")
    window, expires = config.window_seconds, timedelta(seconds=config.expires)
    labels = app.Table("labels", default=int, partitions=pred_spec.partitions,
                       help="prediction counts per (partition, model, label) and window") \
        .tumbling(window, expires=expires).relative_to(_event_timestamp)
    lengths = app.Table("lengths", default=int, partitions=emb_spec.partitions,
                        help="text length bucket counts per (partition, bucket) and window") \
        .tumbling(window, expires=expires).relative_to(_event_timestamp)
    embeddings = app.Table("embeddings", default=dict, partitions=emb_spec.partitions,
                           help="sum and count of unit doc vectors per partition and window") \
        .tumbling(window, expires=expires).relative_to(_event_timestamp)
    rt.labels_table, rt.lengths_table, rt.embeddings_table = labels.table, lengths.table, embeddings.table

    @app.agent(embedded, name=f"{app_id}.embedded")
    async def on_embedded(stream):
        async for event in stream.events():
            record = rt.decode(emb_spec.name, event.value)
            if record is None:
                continue
            ts_ms = int(record["event_time"])
            rt.clock.observe(ts_ms, source=(emb_spec.name, event.message.partition))
            if rt.is_late(emb_spec.name, ts_ms):
                continue
            part = event.message.partition
            token = _EVENT_TS.set(ts_ms / 1000.0)
            try:
                bucket = stats.length_bucket(int(record.get("text_length") or 0))
                lengths[json.dumps([part, bucket])] += 1
                unit = _unit(record.get("doc_vector") or [])
                if unit is not None:
                    embeddings[json.dumps([part])].apply(_vec_add, {"n": 1, "sum": unit})
            except ValueError as exc:  # e.g. the vector dimension changed mid-window
                metrics.ERRORS.labels(PROCESSOR, type(exc).__name__).inc()
                log.warning("drift: skipping embedded record %s: %s", record.get("doc_id"), exc)
            finally:
                _EVENT_TS.reset(token)

    @app.agent(predictions, name=f"{app_id}.predictions")
    async def on_predictions(stream):
        async for event in stream.events():
            record = rt.decode(pred_spec.name, event.value)
            if record is None:
                continue
            ts_ms = int(record["event_time"])
            rt.clock.observe(ts_ms, source=(pred_spec.name, event.message.partition))
            if rt.is_late(pred_spec.name, ts_ms):
                continue
            token = _EVENT_TS.set(ts_ms / 1000.0)
            try:
                key = json.dumps([event.message.partition, str(record.get("model_name") or ""),
                                  str(record.get("label") or "")])
                labels[key] += 1
            finally:
                _EVENT_TS.reset(token)

    @app.timer(interval=config.tick, name=f"{app_id}.close_windows")
    async def close_windows():
        try:
            rt.pending.extend(rt.tick())
        except Exception:  # noqa: BLE001 - a bad window must not stop the timer
            log.exception("drift: closing windows failed")
        if rt.pending:
            batch = list(rt.pending)
            try:
                await asyncio.get_running_loop().run_in_executor(None, rt.publish, batch)
            except Exception:  # noqa: BLE001 - retried on the next tick
                log.exception("drift: publishing %d reports failed; retrying", len(batch))
                del rt.pending[:max(0, len(rt.pending) - MAX_PENDING)]
            else:
                del rt.pending[:len(batch)]

    @app.on_partitions_assigned.connect
    async def _register_sources(sender, assigned, **kwargs):
        # A partition assigned but not fetched yet holds the watermark (StreamClock.register).
        for tp in assigned:
            if tp.topic in (emb_spec.name, pred_spec.name):
                rt.clock.register((tp.topic, tp.partition))

    @app.on_before_shutdown.connect
    async def _flush_producer(sender, **kwargs):
        await asyncio.get_running_loop().run_in_executor(None, rt.close)

    return app


def _check_topics(settings: Settings, timeout: float = 15.0) -> None:
    """Fail fast when the input/output topics are missing or have other partition
    counts than the catalogue (the broker would auto-create them with 1 partition)."""
    from streams.kafka import make_admin

    specs = catalogue(settings)
    meta = make_admin(settings).list_topics(timeout=timeout)
    for role in ("embedded", "predictions", "drift"):
        spec = specs[role]
        found = meta.topics.get(spec.name)
        if found is None or found.error is not None:
            raise RuntimeError(f"topic {spec.name} does not exist; run `conveyor topics create` first")
        if len(found.partitions) != spec.partitions:
            raise RuntimeError(f"topic {spec.name} has {len(found.partitions)} partitions, "
                               f"the catalogue says {spec.partitions}")


def run_drift(settings: Settings, stop_event: Optional[threading.Event] = None,
              config: Optional[DriftConfig] = None, *, check_topics: bool = True) -> None:
    """Run the drift worker until SIGTERM/SIGINT or ``stop_event`` is set.

    Runs faust's worker on a fresh event loop. In the main thread SIGTERM and
    SIGINT stop it cleanly (faust's own handlers); elsewhere only ``stop_event``
    can (signal handlers can only be installed in the main thread).

    Raises:
        RuntimeError: a topic is missing (``check_topics``) or lz4 support is missing.
        SystemExit: the worker exited with a non-zero status (crash).
    """
    from aiokafka.codec import has_lz4

    if not has_lz4():
        raise RuntimeError("aiokafka cannot decompress lz4 (the producers' compression): "
                           "install aiokafka[lz4] (cramjam)")
    if check_topics:
        _check_topics(settings)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    app = make_app(settings, config)
    worker = faust.Worker(app, loop=loop, loglevel=settings.log_level, redirect_stdouts=False,
                          override_logging=False, quiet=True)
    in_main = threading.current_thread() is threading.main_thread()
    if not in_main:
        worker.install_signal_handlers = lambda: None  # type: ignore[method-assign]

    if stop_event is not None:
        @app.task
        async def _watch_stop_event():
            while not stop_event.is_set():
                await asyncio.sleep(0.2)
            log.info("drift: stop requested")
            worker._schedule_shutdown(signal.SIGTERM)  # what faust does on SIGTERM

    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if code != 0:
            raise
    finally:
        app.conveyor_drift.close()  # type: ignore[attr-defined]
        asyncio.set_event_loop(None)


def main(argv: Optional[Sequence[str]] = None) -> None:
    """``python -m streams.drift_app [options]``: run the worker with settings from the environment."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference-windows", type=int, default=1)
    parser.add_argument("--min-samples", type=int, default=30)
    parser.add_argument("--lateness", type=float, default=None, help="allowed lateness, seconds")
    parser.add_argument("--idle", type=float, default=None, help="idle source timeout, seconds")
    parser.add_argument("--tick", type=float, default=None, help="timer interval, seconds")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    logging.basicConfig(level=settings.log_level,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    metrics.serve(settings.metrics_port)
    config = DriftConfig.from_settings(
        settings, reference_windows=args.reference_windows, min_samples=args.min_samples,
        allowed_lateness_seconds=args.lateness, idle_seconds=args.idle, tick_seconds=args.tick)
    run_drift(settings, config=config)


if __name__ == "__main__":
    main()
