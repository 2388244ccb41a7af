"""The drift monitor as a faust-streaming app (``conveyor run drift``).

:func:`make_app` wires the agents and the timer around a
:class:`conveyor.streams.drift.runtime.DriftRuntime`; :func:`run_drift` runs its worker;
``python -m conveyor.streams.drift`` is :func:`main`. The package docstring
(:mod:`conveyor.streams.drift`) draws the data flow. The app id ``<namespace>.drift`` is
also the consumer group.

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
import json
import logging
import signal
import ssl
import threading
from collections.abc import Sequence
from datetime import timedelta
from typing import Any, Optional

import faust
from faust.types import TP
from faust.types.tables import TableT, WindowWrapperT

from conveyor.streams.config.settings import Settings
from conveyor.streams.drift.aggregate import EMBEDDING, OCR_CONFIDENCE, TEXT_LENGTH
from conveyor.streams.drift.config import PROCESSOR, DriftConfig
from conveyor.streams.drift.publish import DRIFT_ALARM, MAX_PENDING
from conveyor.streams.drift.runtime import DriftRuntime
from conveyor.streams.drift.sample import priority
from conveyor.streams.drift.tables import (
    event_time,
    event_timestamp,
    sample_entry,
    unit_vector,
)
from conveyor.streams.kafka.clients import make_admin
from conveyor.streams.kafka.topics import catalogue
from conveyor.streams.runtime import health
from conveyor.streams.runtime.health import HEALTH, register_connection_checks
from conveyor.streams.telemetry import metrics
from conveyor.streams.telemetry.logs import bind_processor
from conveyor.streams.telemetry.logs import configure as configure_logs

log = logging.getLogger(__name__)


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


def _event_time_windows(table: TableT[str, Any], window: float, expires: timedelta) -> WindowWrapperT:
    """``table`` in tumbling windows of ``window`` seconds, placed by the records' event time
    (:func:`event_timestamp`)."""
    tumbling = table.tumbling(window, expires=expires)
    windows: WindowWrapperT = tumbling.relative_to(event_timestamp)  # type: ignore[attr-defined]  # faust: WindowWrapperT lacks WindowWrapper.relative_to
    return windows


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
        topic_replication_factor=settings.replication_factor,
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
    app.conveyor_drift = rt  # type: ignore[attr-defined]  # our state, hung on the faust app
    # Liveness: the timer beats every tick; readiness: partitions assigned, Kafka and registry answer.
    heartbeat = HEALTH.heartbeat(f"{PROCESSOR}: timer", settings.liveness_seconds or max(60.0, 10 * config.tick))
    metrics.initialise(PROCESSOR)
    for signal_name in (EMBEDDING, TEXT_LENGTH, OCR_CONFIDENCE):  # no alarm until a window says so
        DRIFT_ALARM.labels(signal_name).set(0)
    joined = threading.Event()
    HEALTH.check(f"{PROCESSOR}: group joined", joined.is_set)
    register_connection_checks(HEALTH, make_admin(settings), rt.serde)

    embedded = app.topic(emb_spec.name, partitions=emb_spec.partitions,
                         key_serializer="raw", value_serializer="raw")
    predictions = app.topic(pred_spec.name, partitions=pred_spec.partitions,
                            key_serializer="raw", value_serializer="raw")
    window, expires = config.window_seconds, timedelta(seconds=config.expires)
    labels = _event_time_windows(app.Table("labels", default=int, partitions=pred_spec.partitions,
                                           help="prediction counts per (partition, model, label) and window"),
                                 window, expires)
    counts = _event_time_windows(app.Table("counts", default=int, partitions=emb_spec.partitions,
                                           help="records per (partition, sampled signal) and window"),
                                 window, expires)
    samples = _event_time_windows(app.Table("samples", default=dict, partitions=emb_spec.partitions,
                                            help="sampled documents per (partition, doc_id) and window: priority, "
                                                 "text length, OCR confidence, unit doc vector"),
                                  window, expires)
    rt.labels_table, rt.counts_table, rt.samples_table = labels.table, counts.table, samples.table

    @app.agent(embedded, name=f"{app_id}.embedded")
    async def on_embedded(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            part = event.message.partition
            admitted = rt.admit(emb_spec.name, part, event.value, event.message)
            if admitted is None:
                continue
            record, ts_ms = admitted
            try:
                doc_id = str(record.get("doc_id") or "")
                length = int(record.get("text_length") or 0)
                ocr = record.get("ocr_confidence")
                unit = unit_vector(record.get("doc_vector") or [])
                if unit is not None:
                    rt.check_dimension(len(unit))
            except (TypeError, ValueError) as exc:  # e.g. the vector dimension changed
                log.warning("drift: dead-lettering embedded record %s: %s", record.get("doc_id"), exc)
                rt.dead_letter(event.message, exc)
                continue
            prio = priority(doc_id or None)
            with event_time(ts_ms):
                counts[json.dumps([part, TEXT_LENGTH])] += 1
                if unit is not None:
                    counts[json.dumps([part, EMBEDDING])] += 1
                if ocr is not None:
                    counts[json.dumps([part, OCR_CONFIDENCE])] += 1
                if rt.admission.admit(part, rt.monitor.window_start(ts_ms), prio):
                    samples[json.dumps([part, doc_id])] = sample_entry(prio, length, ocr, unit)

    @app.agent(predictions, name=f"{app_id}.predictions")
    async def on_predictions(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            admitted = rt.admit(pred_spec.name, event.message.partition, event.value, event.message)
            if admitted is None:
                continue
            record, ts_ms = admitted
            with event_time(ts_ms):
                key = json.dumps([event.message.partition, str(record.get("model_name") or ""),
                                  str(record.get("label") or "")])
                labels[key] += 1

    @app.timer(interval=config.tick, name=f"{app_id}.close_windows")  # type: ignore[untyped-decorator]  # faust: App.timer() returns a bare Callable
    async def close_windows() -> None:
        heartbeat.beat()
        loop = asyncio.get_running_loop()
        try:
            aggregates, watermark = rt.harvest_closable()  # tables: on the loop thread
            rt.pending.extend(await loop.run_in_executor(None, rt.close, aggregates, watermark))
        except Exception:
            log.exception("drift: closing windows failed")
        if rt.pending:
            batch = list(rt.pending)
            try:
                await loop.run_in_executor(None, rt.publish, batch)
            except Exception:
                log.exception("drift: publishing %d reports failed; retrying", len(batch))
                del rt.pending[:max(0, len(rt.pending) - MAX_PENDING)]
            else:
                del rt.pending[:len(batch)]

    # mode types signal receivers as (sender, *Any, signal=..., **Any): the positional payload
    # that on_partitions_assigned sends (the assigned partitions) cannot be declared.
    @app.on_partitions_assigned.connect  # type: ignore[arg-type]  # mode's SignalHandlerT has no payload parameter
    async def _register_sources(sender: faust.App, assigned: set[TP], **kwargs: Any) -> None:
        joined.set()
        # A partition assigned but not fetched yet holds the watermark (StreamClock.register).
        for tp in assigned:
            if tp.topic in (emb_spec.name, pred_spec.name):
                rt.clock.register((tp.topic, tp.partition))

    @app.on_before_shutdown.connect
    async def _flush_producer(sender: faust.App, /, *args: Any, **kwargs: Any) -> None:
        await asyncio.get_running_loop().run_in_executor(None, rt.shutdown)

    return app


def _check_topics(settings: Settings, timeout: float = 15.0) -> None:
    """Fail fast when the input/output topics are missing or have other partition
    counts than the catalogue (the broker would auto-create them with 1 partition)."""
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


def run_stages(names: list[str], settings: Settings) -> None:
    """The ``faust`` engine's entry (:data:`conveyor.streams.topology.engines.ENGINES`): run the
    drift stage (``names == ["drift"]``) until SIGTERM/SIGINT, as :func:`run_drift`."""
    run_drift(settings)


def run_drift(settings: Settings, stop_event: Optional[threading.Event] = None,
              config: Optional[DriftConfig] = None, *, check_topics: bool = True) -> None:
    """Run the drift worker until SIGTERM/SIGINT or ``stop_event`` is set.

    Runs faust's worker on a fresh event loop. In the main thread SIGTERM and
    SIGINT stop it cleanly (faust's own handlers); elsewhere only ``stop_event``
    can (signal handlers can only be installed in the main thread).

    Raises:
        RuntimeError: a topic is missing (``check_topics``), lz4 support is missing or the
            stored reference cannot be read.
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
    if app.conveyor_drift.config.store_reference:  # type: ignore[attr-defined]  # set by make_app
        app.conveyor_drift.open_store()  # type: ignore[attr-defined]  # set by make_app
    worker = faust.Worker(app, loop=loop, loglevel=settings.log_level, redirect_stdouts=False,
                          override_logging=False, quiet=True)
    in_main = threading.current_thread() is threading.main_thread()
    if not in_main:
        worker.install_signal_handlers = lambda: None  # type: ignore[method-assign]  # off the main thread

    if stop_event is not None:
        @app.task  # type: ignore[untyped-decorator]  # faust: App.task() returns callables of bare Awaitable
        async def _watch_stop_event() -> None:
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
        app.conveyor_drift.shutdown()  # type: ignore[attr-defined]  # set by make_app
        asyncio.set_event_loop(None)


def main(argv: Optional[Sequence[str]] = None) -> None:
    """``python -m conveyor.streams.drift [options]``: run the worker with settings from the environment."""
    parser = argparse.ArgumentParser(prog="python -m conveyor.streams.drift", description=__doc__.splitlines()[0])
    parser.add_argument("--reference-windows", type=int, default=None,
                        help="windows learned as the reference (default 1)")
    parser.add_argument("--min-samples", type=int, default=None, help="default 30")
    parser.add_argument("--alpha", type=float, default=None, help="significance level (default 0.0027)")
    parser.add_argument("--no-store-reference", action="store_true",
                        help="keep the reference in memory only (not in <ns>.drift-reference)")
    parser.add_argument("--lateness", type=float, default=None, help="allowed lateness, seconds")
    parser.add_argument("--idle", type=float, default=None, help="idle source timeout, seconds")
    parser.add_argument("--tick", type=float, default=None, help="timer interval, seconds")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    configure_logs(settings.log_level, settings.log_format)
    bind_processor(PROCESSOR)
    health.serve(settings.metrics_port, settings.metrics_addr)
    config = DriftConfig.from_settings(
        settings, reference_windows=args.reference_windows, min_samples=args.min_samples, alpha=args.alpha,
        allowed_lateness_seconds=args.lateness, idle_seconds=args.idle, tick_seconds=args.tick,
        store_reference=False if args.no_store_reference else None)
    run_drift(settings, config=config)


if __name__ == "__main__":
    main()
