"""The local stack with TLS (``conveyor stack up --tls``) on its own home and ports.

* the pipeline runs end to end over it (SASL_SSL Kafka, HTTPS registry, the stack's private CA),
  and nothing answers in the clear: no PLAINTEXT Kafka, no plain HTTP registry;
* a client that trusts another CA, a server whose certificate has expired and a certificate
  issued for another host each fail fast with one clear line, in the API and in the CLI.

The stack is started by :func:`conveyor.tools.stack.up` (certificates made with openssl) and
stopped afterwards; its files live in a temporary home.
"""
from __future__ import annotations

import dataclasses
import gc
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import uuid4

import pytest

from conveyor.streams.config import env
from conveyor.streams.config.security import KafkaAuthenticationError, KafkaConnectionError, RegistryTlsError
from conveyor.streams.config.settings import Settings
from conveyor.streams.kafka.admin import create_topics, list_topics
from conveyor.streams.kafka.io import InputProducer
from conveyor.streams.kafka.serde import AvroSerde
from conveyor.streams.kafka.topics import topic
from conveyor.tools import stack
from conveyor.tools.stack import _tls
from conveyor.tools.stack._common import check_java, port_open, spawn, tail
from tests.integration import test_drift_app as drift_scenario
from tests.integration.helpers import run_stages_until

REPO = Path(__file__).resolve().parents[2]
TEXTS = ("I lost my card yesterday", "Where is my refund?", "How do I change my PIN?")
EXPIRES_IN_S = 45
"""Lifetime of the certificate that expires during the test: Kafka must start with it first."""
pytestmark = pytest.mark.slow


def _quiet(_line: str) -> None:
    pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def tls_stack(tmp_path_factory) -> Settings:
    """Settings of a client of a running TLS stack (own home, ports and namespace); stopped after."""
    try:
        check_java(17, "the TLS stack")
    except stack.StackError as exc:
        pytest.skip(f"the TLS stack needs Java 17+: {exc}")
    home = tmp_path_factory.mktemp("tls-home")
    base = Settings.from_env({env.HOME: str(home), env.KAFKA_PORT: str(_free_port()),
                              env.CONTROLLER_PORT: str(_free_port()), env.REGISTRY_PORT: str(_free_port()),
                              env.NAMESPACE: f"t{uuid4().hex[:10]}"})
    settings = stack.with_tls(base)
    try:
        result = stack.up(settings, log=_quiet)
        assert result["kafka"]["up"] and result["registry"]["up"], result
        yield settings
    finally:
        gc.collect()  # destroy the tests' clients first, so none keeps reconnecting to a stopped broker
        stack.down(settings, log=_quiet)
        shutil.rmtree(home, ignore_errors=True)


def _restart_with(settings: Settings, *, hosts=_tls.HOSTS, expires=None) -> None:
    """Restart Kafka and the registry with a new server certificate (``hosts``, ``expires``),
    the way ``up`` starts them but without its renewal of a bad certificate."""
    stack.down(settings, log=_quiet)
    files = _tls.tls_dir(settings.home)
    _tls.issue(files.ca_cert, files.ca_key, files.directory, hosts=hosts, expires=expires)
    for part in stack._parts(settings).values():
        argv, cwd = stack._prepare(settings, part, _quiet)
        spawn(part.layout(), argv, cwd)
    deadline = time.monotonic() + 120
    while not (port_open(settings.kafka_port) and port_open(settings.registry_port)):
        assert time.monotonic() < deadline, "the TLS stack did not open its ports:\n" + "\n".join(
            tail(part.layout().log_file, 15) for part in stack._parts(settings).values())
        time.sleep(0.5)
    time.sleep(3)  # Kafka opens its listener a moment before it serves requests


def _cli(args: list[str], settings: Settings) -> subprocess.CompletedProcess:
    environ = {**_tls.client_environ(settings), env.NAMESPACE: settings.namespace,
               env.KAFKA_SSL_CA_LOCATION: settings.kafka_ssl_ca_location,
               env.SCHEMA_REGISTRY_SSL_CA_LOCATION: settings.schema_registry_ssl_ca_location}
    return subprocess.run([sys.executable, "-m", "conveyor.streams.cli.main", *args], cwd=REPO, text=True,
                          capture_output=True, timeout=90, env={**os.environ, **environ})


def _fails_fast_with_one_line(settings: Settings, reason: str) -> None:
    """Kafka (API and CLI) and the registry (API) refuse ``settings`` quickly, naming ``reason``."""
    t0 = time.monotonic()
    with pytest.raises(KafkaAuthenticationError, match="TLS handshake failed") as kafka_error:
        list_topics(settings, timeout=30)
    assert time.monotonic() - t0 < 10
    assert reason in str(kafka_error.value) and env.KAFKA_SSL_CA_LOCATION in str(kafka_error.value)
    with pytest.raises(RegistryTlsError, match=reason) as registry_error:
        InputProducer(settings)
    assert env.SCHEMA_REGISTRY_SSL_CA_LOCATION in str(registry_error.value)
    for args in (["topics", "list"], ["run", "embed"]):
        t0 = time.monotonic()
        proc = _cli(args, settings)
        out = proc.stdout + proc.stderr
        assert proc.returncode == 1 and time.monotonic() - t0 < 30, (args, out)
        assert "TLS handshake failed" in out and reason in out, (args, out)
        assert "Traceback" not in out and len(out.strip().splitlines()) <= 3, (args, out)


def test_pipeline_runs_end_to_end_over_tls(tls_stack: Settings, tmp_path: Path):
    settings = dataclasses.replace(tls_stack, milvus_uri=str(tmp_path / "m.db"), blob_dir=tmp_path / "blobs")
    conf = settings.kafka_config()
    assert conf["security.protocol"] == "SASL_SSL" and settings.schema_registry_url.startswith("https://")

    assert set(create_topics(settings).values()) == {"created"}
    with InputProducer(settings) as producer:
        ids = [producer.text(t)["doc_id"] for t in TEXTS]
    msgs = run_stages_until(settings, ["embed", "classify"], topic(settings, "predictions"), expect=len(ids))
    serde = AvroSerde(settings)
    preds = {m.key().decode(): serde.decode(m.topic(), m.value()) for m in msgs}
    assert sorted(preds) == sorted(ids) and len(msgs) == len(ids)
    assert all(p["label"] and 0 <= p["confidence"] <= 1 for p in preds.values())

    # Nothing is served in the clear: a PLAINTEXT client gets no metadata, plain HTTP no answer.
    plain = dataclasses.replace(settings, kafka_security_protocol=None, kafka_sasl_mechanism=None,
                                kafka_sasl_username=None, kafka_sasl_password=None, kafka_ssl_ca_location=None)
    with pytest.raises(KafkaConnectionError):
        list_topics(plain, timeout=5)
    with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
        urllib.request.urlopen(f"http://127.0.0.1:{settings.registry_port}/apis/ccompat/v7/subjects", timeout=5)


def test_drift_monitor_runs_over_tls(tls_stack: Settings, tmp_path: Path, monkeypatch):
    """The faust drift worker (aiokafka, its own SSL context) over SASL_SSL: the label-shift
    scenario of ``test_drift_app`` raises its alarm and dead-letters its junk record."""
    for name, value in _tls.client_environ(tls_stack).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv(env.NAMESPACE, f"{tls_stack.namespace}d")
    settings = dataclasses.replace(Settings.from_env(), drift_window_seconds=drift_scenario.WINDOW_S)
    assert settings.kafka_security_protocol == "SASL_SSL"
    drift_scenario.check_label_shift_alarm(settings, tmp_path)


def test_a_client_that_trusts_another_ca_fails_fast(tls_stack: Settings, tmp_path: Path):
    other_ca, _ = _tls.make_ca(tmp_path / "other-ca", name="Another CA")
    wrong = dataclasses.replace(tls_stack, kafka_ssl_ca_location=str(other_ca),
                                schema_registry_ssl_ca_location=str(other_ca))
    _fails_fast_with_one_line(wrong, "unable to get local issuer certificate")


def test_an_expired_certificate_fails_fast(tls_stack: Settings):
    """The certificate expires while the servers run (Kafka refuses to start with an expired one)."""
    expires = datetime.now(UTC) + timedelta(seconds=EXPIRES_IN_S)
    _restart_with(tls_stack, expires=expires)
    assert list_topics(tls_stack, timeout=30)  # still valid: Kafka and the registry serve it
    time.sleep(max(0.0, (expires - datetime.now(UTC)).total_seconds()) + 2)
    try:
        _fails_fast_with_one_line(tls_stack, "certificate has expired")
    finally:
        stack.down(tls_stack, log=_quiet)
        stack.up(tls_stack, log=_quiet)  # renews the certificate


def test_a_certificate_for_another_host_fails_fast(tls_stack: Settings):
    _restart_with(tls_stack, hosts=("DNS:kafka.example.invalid",))
    try:
        _fails_fast_with_one_line(tls_stack, "mismatch")
    finally:
        stack.down(tls_stack, log=_quiet)
        stack.up(tls_stack, log=_quiet)
