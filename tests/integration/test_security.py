"""Kafka security against a real second broker with a SASL_PLAINTEXT (PLAIN) listener.

* the pipeline (topics, producer, embed and classify runners, a read_committed reader) runs
  with settings built from ``CONVEYOR_KAFKA_*`` environment variables only;
* a wrong password ends quickly with an error that names authentication, in the API, in a
  consumer, and in the CLI (exit code, no traceback, no password);
* the SASL password, Milvus token and registry password never appear in logs, captured
  stdout/stderr (librdkafka's included), CLI output, dead-letter headers or ``repr``.

The SASL broker is started by :mod:`conveyor.tools.stack._sasl` from the main stack's Kafka jars
on its own ports (29092/29093, or free ones when those are taken) and stopped afterwards.
"""
from __future__ import annotations

import gc
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from uuid import uuid4

import pytest

from conveyor.dlq import envelope
from conveyor.streams.config import env
from conveyor.streams.config.security import KafkaAuthenticationError, QuietLogger, error_callback
from conveyor.streams.config.settings import Settings
from conveyor.streams.kafka.admin import create_topics, list_topics
from conveyor.streams.kafka.clients import make_admin, make_consumer, make_producer
from conveyor.streams.kafka.io import InputProducer
from conveyor.streams.kafka.serde import AvroSerde
from conveyor.streams.kafka.topics import topic
from conveyor.tools.stack import SaslBroker, StackError, start_sasl_broker, stop_sasl_broker
from conveyor.tools.stack._common import check_java, port_open
from conveyor.tools.stack._sasl import DEFAULT_CONTROLLER_PORT, DEFAULT_PORT
from tests.integration.helpers import read_all, run_stages_until

REPO = Path(__file__).resolve().parents[2]
USER = "conveyor-test"
SASL_PASSWORD = f"saslpw-{uuid4().hex}"
WRONG_PASSWORD = f"wrongpw-{uuid4().hex}"
MILVUS_TOKEN = f"milvustok-{uuid4().hex}"
REGISTRY_PASSWORD = f"registrypw-{uuid4().hex}"
SECRETS = (SASL_PASSWORD, WRONG_PASSWORD, MILVUS_TOKEN, REGISTRY_PASSWORD)
TEXTS = ("I lost my card yesterday", "Where is my refund?", "How do I change my PIN?",
         "My transfer has not arrived yet", "Can I get a virtual card?")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def sasl_broker(stack_settings: Settings):
    """A running SASL_PLAINTEXT broker with user ``USER`` / ``SASL_PASSWORD``; stopped after."""
    try:
        check_java(17, "the SASL test broker")
    except StackError as exc:
        pytest.skip(f"SASL test broker needs Java 17+: {exc}")
    libs = stack_settings.home / "kafka" / "libs"
    if not any(libs.glob("kafka_2.13-*.jar")):
        pytest.skip(f"no Kafka jars in {libs}: run `conveyor stack up` once to resolve them")
    port, controller = DEFAULT_PORT, DEFAULT_CONTROLLER_PORT
    if port_open(port) or port_open(controller):
        port, controller = _free_port(), _free_port()
    broker = SaslBroker(home=stack_settings.home, users=((USER, SASL_PASSWORD),),
                        port=port, controller_port=controller)
    try:
        start_sasl_broker(broker, stack_settings, timeout=120, log=lambda line: None)
    except StackError as exc:
        pytest.fail(f"SASL test broker did not start: {exc}", pytrace=False)
    yield broker
    gc.collect()  # destroy the tests' clients first, so none keeps reconnecting to a stopped broker
    result = stop_sasl_broker(broker)
    assert result["stopped"] and not port_open(broker.port)


@pytest.fixture
def sasl_environ(sasl_broker, stack_settings: Settings, tmp_path: Path) -> dict[str, str]:
    """Environment of a Conveyor process on the SASL broker: own namespace, Milvus Lite file
    and blob dir; everything else from this process's environment."""
    return {**os.environ,
            env.BOOTSTRAP_SERVERS: sasl_broker.bootstrap_servers,
            env.KAFKA_SECURITY_PROTOCOL: "SASL_PLAINTEXT",
            env.KAFKA_SASL_MECHANISM: "PLAIN",
            env.KAFKA_SASL_USERNAME: USER,
            env.KAFKA_SASL_PASSWORD: SASL_PASSWORD,
            env.NAMESPACE: f"t{uuid4().hex[:10]}",
            env.SCHEMA_REGISTRY_URL: stack_settings.schema_registry_url,
            env.MILVUS_URI: str(tmp_path / "m.db"),
            env.BLOB_DIR: str(tmp_path / "blobs"),
            env.METRICS_PORT: "0"}


def _cli(args: list[str], environ: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "conveyor.streams.cli.main", *args], env=environ, cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


def _leaks(text: str) -> list[str]:
    """The secrets that occur in ``text``."""
    return [s for s in SECRETS if s in text]


def test_pipeline_runs_over_sasl(sasl_environ, stack_settings):
    settings = Settings.from_env(sasl_environ)
    conf = settings.kafka_config()
    assert (conf["security.protocol"], conf["sasl.mechanism"], conf["sasl.username"]) == (
        "SASL_PLAINTEXT", "PLAIN", USER)

    assert set(create_topics(settings).values()) == {"created"}
    with InputProducer(settings) as producer:
        ids = [producer.text(t)["doc_id"] for t in TEXTS]
    msgs = run_stages_until(settings, ["embed", "classify"], topic(settings, "predictions"), expect=len(ids))

    serde = AvroSerde(settings)
    preds = [(m.key().decode(), serde.decode(m.topic(), m.value())) for m in msgs]
    assert sorted(k for k, _ in preds) == sorted(ids), "one prediction per input expected"
    assert all(p["kind"] == "text" and p["label"] and 0 <= p["confidence"] <= 1 for _, p in preds)
    assert {k: p["doc_id"] for k, p in preds} == {k: k for k, _ in preds}
    # It all went through the SASL broker: the main (PLAINTEXT) broker never saw these topics.
    main_topics = make_admin(stack_settings).list_topics(timeout=10).topics
    assert topic(settings, "predictions") not in main_topics


def test_wrong_password_fails_fast_with_a_clear_error(sasl_environ):
    settings = Settings.from_env({**sasl_environ, env.KAFKA_SASL_PASSWORD: WRONG_PASSWORD})
    for call in (lambda: create_topics(settings, timeout=30), lambda: list_topics(settings, timeout=30)):
        t0 = time.monotonic()
        with pytest.raises(KafkaAuthenticationError) as info:
            call()
        assert time.monotonic() - t0 < 10
        message = str(info.value)
        assert "SASL authentication failed" in message and f"user '{USER}'" in message
        assert env.KAFKA_SASL_PASSWORD in message and not _leaks(message)

    # A consumer with Conveyor's error callback stops with the same error instead of
    # retrying forever.
    consumer = make_consumer(settings, f"{settings.namespace}.probe", error_cb=error_callback(settings),
                             logger=QuietLogger(), **{"statistics.interval.ms": 0})
    consumer.subscribe([topic(settings, "texts")])
    t0 = time.monotonic()
    try:
        with pytest.raises(KafkaAuthenticationError, match="Invalid username or password"):
            while time.monotonic() - t0 < 30:
                consumer.consume(10, 0.5)
    finally:
        consumer.close()
    assert time.monotonic() - t0 < 10


def test_cli_wrong_password_exits_with_one_clear_line(sasl_environ):
    environ = {**sasl_environ, env.KAFKA_SASL_PASSWORD: WRONG_PASSWORD}
    for args in (["topics", "create"], ["topics", "list"], ["run", "embed"],
                 ["consume", "predictions", "--timeout", "5"]):
        t0 = time.monotonic()
        proc = _cli(args, environ, timeout=90)
        took = time.monotonic() - t0
        out = proc.stdout + proc.stderr
        assert proc.returncode != 0, (args, out)
        assert took < 30, (args, out)
        assert "SASL authentication failed" in out, out
        assert "Traceback" not in out and "%3|" not in out, out  # no Python traceback, no librdkafka spam
        assert len(out.strip().splitlines()) <= 3, out
        assert not _leaks(out), out


def test_secrets_never_leak(sasl_environ, caplog, capfd):
    environ = {**sasl_environ, env.MILVUS_TOKEN: MILVUS_TOKEN, env.SCHEMA_REGISTRY_USER: "conveyor",
               env.SCHEMA_REGISTRY_PASSWORD: REGISTRY_PASSWORD, env.LOG_LEVEL: "DEBUG"}
    settings = Settings.from_env(environ)
    assert settings.kafka_sasl_password.get_secret_value() == SASL_PASSWORD  # secrets are in use
    assert settings.registry_config()["basic.auth.user.info"] == f"conveyor:{REGISTRY_PASSWORD}"
    assert settings.milvus_token_value() == MILVUS_TOKEN
    assert not _leaks(repr(settings)) and not _leaks(str(settings))

    caplog.set_level(logging.DEBUG)
    create_topics(settings)
    embedded, dlq_topic = topic(settings, "embedded"), topic(settings, "dlq.classify")
    producer = make_producer(settings)
    for key in (b"junk-1", b"junk-2"):
        producer.produce(embedded, key=key, value=b"plain text, not Confluent-framed Avro")
        producer.flush(10)
        if key == b"junk-1":  # the first dead-letters in this process, the second in a CLI run
            run_stages_until(settings, ["classify"], dlq_topic, expect=1)
    run = subprocess.Popen([sys.executable, "-m", "conveyor.streams.cli.main", "run", "classify"], env=environ, cwd=REPO,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        dead = read_all(settings, dlq_topic, expect=2, timeout=120)
    finally:
        run.send_signal(signal.SIGTERM)
        run_out, _ = run.communicate(timeout=60)
    assert run.returncode == 0, run_out
    assert "dead-lettering" in run_out, run_out  # the CLI run logged its dead letter (at DEBUG)
    assert sorted(m.key() for m in dead) == [b"junk-1", b"junk-2"]
    for m in dead:
        headers = envelope.decode_headers(m.headers())
        assert headers[envelope.EXCEPTION_CLASS].startswith("conveyor.streams.kafka.serde."), headers
        assert not _leaks(repr(headers)) and not _leaks(repr(m.value()))

    # librdkafka's own debug output too (it prints its configuration, passwords redacted).
    debug = {**environ, "CONVEYOR_RDKAFKA_DEBUG": "conf,security,broker"}
    cli_out = {tuple(args): _cli(args, debug) for args in (
        ["topics", "list"], ["stack", "status"], ["dlq", "list", "--timeout", "20"])}
    for args, proc in cli_out.items():
        assert proc.stdout.strip(), (args, proc.stderr)
        assert not _leaks(proc.stdout + proc.stderr), (args, proc.stdout, proc.stderr)
    assert "sasl.password = [redacted]" in cli_out[("dlq", "list", "--timeout", "20")].stderr
    assert not _leaks(run_out), run_out

    assert any("dead-lettering" in r.getMessage() for r in caplog.records)
    logged = "\n".join(f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    assert not _leaks(logged)
    captured = capfd.readouterr()
    assert not _leaks(captured.out + captured.err)


def test_settings_repr_hides_passthrough_secrets():
    """``CONVEYOR_RDKAFKA_*`` can carry secrets too (``ssl.key.password``,
    ``sasl.oauthbearer.client.secret``); ``repr`` must not show them either."""
    settings = Settings.from_env({"CONVEYOR_RDKAFKA_SSL_KEY_PASSWORD": SASL_PASSWORD,
                                  "CONVEYOR_RDKAFKA_SASL_OAUTHBEARER_CLIENT_SECRET": MILVUS_TOKEN,
                                  "CONVEYOR_RDKAFKA_SOCKET_TIMEOUT_MS": "12345"})
    assert settings.kafka_config()["ssl.key.password"] == SASL_PASSWORD  # still passed through
    assert not _leaks(repr(settings)), repr(settings)
