"""The TLS stack's certificates (real openssl, no servers) and configuration."""
from __future__ import annotations

import datetime as dt
import stat

import pytest

from conveyor.streams.config import env
from conveyor.streams.config.settings import Settings
from conveyor.tools.stack import _kafka, _registry, _tls, with_tls


def test_ensure_makes_a_ca_and_a_server_certificate_for_the_stack(tmp_path):
    files = _tls.ensure(tmp_path, log=lambda _l: None)
    for path in (files.ca_key, files.server_key, files.keystore, files.credentials):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    sans = _tls.openssl(["x509", "-in", str(files.server_cert), "-noout", "-ext", "subjectAltName"])
    assert "IP Address:127.0.0.1" in sans and "DNS:localhost" in sans
    chain = _tls.openssl(["verify", "-CAfile", str(files.ca_cert), str(files.server_cert)])
    assert chain.strip().endswith("OK")
    left = _tls.not_after(files.server_cert) - dt.datetime.now(dt.UTC)
    assert dt.timedelta(days=_tls.SERVER_DAYS - 1) < left <= dt.timedelta(days=_tls.SERVER_DAYS)
    pem = files.keystore.read_text()
    assert pem.startswith("-----BEGIN PRIVATE KEY-----") and "BEGIN CERTIFICATE" in pem  # PKCS#8 + chain


def test_ensure_keeps_a_good_certificate_and_renews_a_bad_one(tmp_path):
    files = _tls.ensure(tmp_path, log=lambda _l: None)
    first, creds = files.server_cert.read_bytes(), files.credentials.read_text()
    _tls.ensure(tmp_path, log=lambda _l: None)
    assert files.server_cert.read_bytes() == first and files.credentials.read_text() == creds

    soon = dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)  # inside RENEW_BEFORE
    _tls.issue(files.ca_cert, files.ca_key, files.directory, expires=soon)
    assert abs((_tls.not_after(files.server_cert) - soon).total_seconds()) < 2
    _tls.ensure(tmp_path, log=lambda _l: None)
    assert _tls.not_after(files.server_cert) - soon > dt.timedelta(days=800)

    _tls.issue(files.ca_cert, files.ca_key, files.directory, hosts=("DNS:elsewhere.invalid",))
    _tls.ensure(tmp_path, log=lambda _l: None)
    assert "127.0.0.1" in _tls.openssl(["x509", "-in", str(files.server_cert), "-noout", "-ext", "subjectAltName"])
    assert files.credentials.read_text() == creds  # passwords are made once


def test_a_new_ca_gets_a_new_server_certificate(tmp_path):
    files = _tls.ensure(tmp_path, log=lambda _l: None)
    files.ca_key.unlink()  # e.g. removed by hand: ensure makes a new CA
    _tls.ensure(tmp_path, log=lambda _l: None)
    assert _tls.openssl(["verify", "-CAfile", str(files.ca_cert), str(files.server_cert)]).strip().endswith("OK")

    other, _ = _tls.make_ca(tmp_path / "other", name="Another CA")
    with pytest.raises(_tls.StackError, match="unable to get local issuer certificate"):
        _tls.openssl(["verify", "-CAfile", str(other), str(files.server_cert)])
    files.ca_cert.write_bytes(other.read_bytes())  # a CA that did not sign the certificate
    (tmp_path / "tls" / "ca.key").write_bytes((tmp_path / "other" / "ca.key").read_bytes())
    _tls.ensure(tmp_path, log=lambda _l: None)
    assert _tls.openssl(["verify", "-CAfile", str(files.ca_cert), str(files.server_cert)]).strip().endswith("OK")


def test_a_broken_credentials_file_is_a_clear_error(tmp_path):
    files = _tls.ensure(tmp_path, log=lambda _l: None)
    files.credentials.write_text("not json")
    with pytest.raises(_tls.StackError, match="credentials.json is not a JSON object"):
        _tls.credentials(files)


def test_stack_commands_follow_the_recorded_tls_mode_but_up_does_not(tmp_path, monkeypatch):
    from conveyor.tools.cli import _stack_settings
    from conveyor.tools.stack import TLS_FILE

    monkeypatch.setenv(env.HOME, str(tmp_path))
    monkeypatch.delenv(env.STACK_TLS, raising=False)
    (tmp_path / TLS_FILE).parent.mkdir(parents=True)
    (tmp_path / TLS_FILE).write_text("SASL_SSL\n")
    assert _stack_settings(None).stack_tls  # status, down: the stack as it was started
    assert not _stack_settings(None, False).stack_tls  # a plain `up` after `down`
    assert _stack_settings(None, True).kafka_security_protocol == "SASL_SSL"


def test_kafka_and_registry_config_of_the_tls_stack(tmp_path):
    settings = with_tls(Settings.from_env({env.HOME: str(tmp_path), env.KAFKA_PORT: "40000",
                                           env.REGISTRY_PORT: "40100"}))
    _tls.ensure(tmp_path, log=lambda _l: None)
    props = _kafka.KafkaNode(settings).write_config().read_text()
    assert "listeners=SASL_SSL://127.0.0.1:40000,CONTROLLER://127.0.0.1:40001" in props
    assert "PLAINTEXT://127.0.0.1:40000" not in props and "inter.broker.listener.name=SASL_SSL" in props
    assert f"ssl.keystore.location={tmp_path / 'tls' / 'server.pem'}" in props
    assert stat.S_IMODE((tmp_path / "kafka" / "server.properties").stat().st_mode) == 0o600  # passwords
    assert settings.schema_registry_url == "https://127.0.0.1:40100/apis/ccompat/v7"
    assert "quarkus.http.insecure-requests=disabled" in _registry.tls_properties(settings)

    client = Settings.from_env(_tls.client_environ(settings))
    conf = client.kafka_config()
    assert (conf["security.protocol"], conf["sasl.username"], conf["ssl.ca.location"]) == (
        "SASL_SSL", "conveyor", str(tmp_path / "tls" / "ca.crt"))
    assert client.registry_config()["ssl.ca.location"] == str(tmp_path / "tls" / "ca.crt")
    assert client.stack_tls and client.bootstrap_servers == "127.0.0.1:40000"
    assert _tls.subject_alt_names(tmp_path / "tls" / "server.crt") == set(_tls.HOSTS)


def test_plain_stack_config_is_unchanged(tmp_path):
    settings = Settings.from_env({env.HOME: str(tmp_path)})
    props = _kafka.KafkaNode(settings).write_config().read_text()
    assert "listeners=PLAINTEXT://127.0.0.1:19092" in props and "SASL_SSL" not in props
    assert settings.schema_registry_url.startswith("http://") and "ssl.ca.location" not in settings.registry_config()
