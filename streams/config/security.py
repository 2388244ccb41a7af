"""Kafka security: fail fast and clearly on wrong credentials, and keep secrets out of output.

librdkafka's own reaction to a rejected SASL login is to retry forever, printing one
``SASL authentication error`` line to stderr every few hundred milliseconds, while
``list_topics`` ends after its full timeout with ``Local: Broker transport failure``.
This module turns that into one exception with a clear message:

* :func:`connect_admin` returns an ``AdminClient`` that has answered a metadata request,
  or raises :class:`KafkaAuthenticationError` as soon as the broker rejects the
  credentials (about 0.3 s), or :class:`KafkaConnectionError` when no broker answers;
* :func:`error_callback` is an ``error_cb`` for any producer/consumer/admin that raises
  :class:`KafkaAuthenticationError` from the client's ``poll``/``consume``/``flush``;
* :class:`QuietLogger` is a librdkafka ``logger`` that sends its lines to Python logging
  at DEBUG instead of stderr.

Messages name the security protocol, mechanism, user name and the broker's reason, never
a password. :func:`secret_values` and :func:`redact` let callers scrub anything that
might still carry one.
"""
from __future__ import annotations

import logging
import socket
import ssl
import time
from collections.abc import Callable
from typing import Any, Optional

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from yarl import URL

from conveyor.streams.config import env
from conveyor.streams.config.settings import Settings

log = logging.getLogger(__name__)
_rdkafka_log = logging.getLogger("streams.rdkafka")

AUTH_ERROR_CODES = frozenset({KafkaError._AUTHENTICATION, KafkaError._SSL})
"""librdkafka error codes that mean the broker (or TLS) rejected who we are: retrying
with the same settings cannot succeed. ``-169`` is SASL, ``-181`` a failed TLS handshake."""
REDACTED = "***"
"""What :func:`redact` puts in place of a secret."""


class KafkaConnectionError(Exception):
    """No Kafka broker answered with the configured settings; the message says where
    Conveyor looked, with which security settings (no password), and the last client error.

    Not a :class:`conveyor.processors.errors.ConveyorError`: it is about the deployment, not about
    a record, so nothing should dead-letter a record because of it."""


class KafkaAuthenticationError(KafkaConnectionError):
    """The broker rejected the credentials (SASL) or the TLS handshake failed. Retrying
    with the same settings cannot succeed; the message names the broker's reason and the
    environment variables to check, never the password."""


class RegistryTlsError(KafkaConnectionError):
    """The schema registry's HTTPS certificate could not be verified (unknown CA, expired,
    issued for another host). Like the Kafka connection errors it is about the deployment, not
    a record: the CLI prints it as one ``Error:`` line and a processor stops at start."""


def redact_url(url: str) -> str:
    """``url`` with any ``user:password@`` part replaced by ``***@`` (parsed with yarl), for
    error messages that name a server."""
    parsed = URL(url)
    return str(parsed.with_password(None).with_user("***")) if parsed.user or parsed.password else url


def describe(settings: Settings) -> str:
    """One line naming where and how Conveyor connects, e.g.
    ``127.0.0.1:29092 (SASL_PLAINTEXT, mechanism PLAIN, user 'alice')`` — no password."""
    parts = [settings.kafka_security_protocol or "PLAINTEXT"]
    if settings.kafka_sasl_mechanism:
        parts.append(f"mechanism {settings.kafka_sasl_mechanism}")
    if settings.kafka_sasl_username:
        parts.append(f"user {settings.kafka_sasl_username!r}")
    return f"{settings.bootstrap_servers} ({', '.join(parts)})"


def secret_values(settings: Settings) -> list[str]:
    """Every secret in ``settings`` in clear: SASL password, Milvus token, registry password,
    and any ``CONVEYOR_RDKAFKA_*`` passthrough whose name says password/secret/key. Empty
    values are left out; longest first (so :func:`redact` replaces whole secrets)."""
    found = [s.get_secret_value() for s in (settings.kafka_sasl_password, settings.milvus_token,
                                             settings.schema_registry_password) if s is not None]
    found += [v for k, v in settings.kafka_extra if _secret_name(k)]
    return sorted({v for v in found if v}, key=len, reverse=True)


def _secret_name(name: str) -> bool:
    """Whether librdkafka property ``name`` holds a secret (``sasl.password``,
    ``ssl.key.password``, ``ssl.key.pem``, ``sasl.oauthbearer.client.secret``...)."""
    return any(word in name for word in ("password", "secret", "key.pem", "token", "credential"))


def redact(text: str, secrets: list[str]) -> str:
    """``text`` with every occurrence of each value in ``secrets`` replaced by :data:`REDACTED`."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return text


class QuietLogger:
    """A librdkafka ``logger`` (the client's ``logger`` setting) that logs every line at
    DEBUG on ``streams.rdkafka``, so a failing connection does not flood stderr; the
    exceptions raised here carry the reason instead."""

    def log(self, level: int, msg: str, *args: Any) -> None:
        """Called by confluent-kafka with a syslog-style ``level`` (3 error … 7 debug)."""
        _rdkafka_log.debug("[rdkafka level %s] " + msg, level, *args)


def tls_verify_reason(address: str, cafile: Optional[str], timeout: float = 3.0) -> Optional[str]:
    """Why the TLS server at ``address`` (``host:port``) fails certificate verification against
    ``cafile`` (else the system's CAs), in OpenSSL's words — ``certificate has expired``,
    ``unable to get local issuer certificate``, ``IP address mismatch, …`` — or ``None`` when it
    verifies or cannot be reached. librdkafka reports every such failure as the same
    ``certificate verify failed``; this handshake (Python's :mod:`ssl`, the same OpenSSL
    checks, hostname included) names which one."""
    host, _, port = address.rpartition(":")
    try:
        context = ssl.create_default_context(cafile=cafile)
        with socket.create_connection((host, int(port)), timeout=timeout) as sock:
            with context.wrap_socket(sock, server_hostname=host):
                return None
    except ssl.SSLCertVerificationError as exc:
        return exc.verify_message or str(exc)
    except (OSError, ValueError):
        return None


def _auth_error(settings: Settings, err: KafkaError) -> KafkaAuthenticationError:
    tls = err.code() == KafkaError._SSL
    what = "TLS handshake" if tls else "SASL authentication"
    hint = (f"check {env.KAFKA_SSL_CA_LOCATION} and {env.KAFKA_SECURITY_PROTOCOL}" if tls else
            f"check {env.KAFKA_SASL_USERNAME}, {env.KAFKA_SASL_PASSWORD} and {env.KAFKA_SASL_MECHANISM}")
    reason = redact(err.str(), secret_values(settings))
    if tls and "certificate verify failed" in reason:
        verdict = tls_verify_reason(settings.bootstrap_servers.split(",")[0].strip(), settings.kafka_ssl_ca_location)
        reason = f"{verdict.rstrip('.')} (certificate verify failed)" if verdict else reason
    return KafkaAuthenticationError(f"Kafka {what} failed on {describe(settings)}: {reason}; {hint}")


def error_callback(settings: Settings) -> Callable[[KafkaError], None]:
    """An ``error_cb`` that raises :class:`KafkaAuthenticationError` for an authentication
    or TLS error and logs other client errors at DEBUG (librdkafka retries those itself).

    confluent-kafka re-raises an exception from a callback out of the ``poll``,
    ``consume``, ``flush`` or ``list_topics`` call that served it, so a runner with wrong
    credentials stops with that message instead of retrying forever.
    """
    def on_error(err: KafkaError) -> None:
        if err.code() in AUTH_ERROR_CODES:
            raise _auth_error(settings, err)
        log.debug("kafka client error on %s: %s", describe(settings), err.str())

    return on_error


def client_config(settings: Settings, **overrides: Any) -> dict[str, Any]:
    """``settings.kafka_config()`` plus :func:`error_callback` and :class:`QuietLogger`
    (both replaceable through ``overrides``)."""
    return {**settings.kafka_config(), "error_cb": error_callback(settings), "logger": QuietLogger(),
            **overrides}


def connect_admin(settings: Settings, timeout: float = 30.0) -> AdminClient:
    """An ``AdminClient`` on ``settings`` that has answered a metadata request.

    Polls in steps of at most 1 s, so a rejected login is reported within about a second
    of the broker's answer rather than after ``timeout``.

    Args:
        timeout: seconds to wait for a broker to answer (connection refused, wrong host or
            wrong security protocol all end here).

    Raises:
        KafkaAuthenticationError: the broker rejected the SASL credentials, or TLS failed.
        KafkaConnectionError: no broker answered within ``timeout`` seconds; the message
            quotes the last client error (e.g. ``Connection refused``).
    """
    reported: list[KafkaError] = []  # by error_cb: the specific reasons
    admin = AdminClient(client_config(settings, error_cb=reported.append))
    deadline = time.monotonic() + timeout
    last: Optional[KafkaError] = None
    while True:
        try:
            if admin.list_topics(timeout=max(0.1, min(1.0, deadline - time.monotonic()))).brokers:
                return admin
        except KafkaException as exc:
            last = exc.args[0]
        admin.poll(0)  # serves error_cb and the logger
        auth = next((e for e in reported if e.code() in AUTH_ERROR_CODES), None)
        if auth is not None:
            raise _auth_error(settings, auth)
        if time.monotonic() >= deadline:
            specific = [e for e in reported if e.code() != KafkaError._ALL_BROKERS_DOWN]
            reason = (specific[-1] if specific else last)
            raise KafkaConnectionError(
                f"no Kafka broker answered on {describe(settings)} within {timeout:.0f} s"
                + (f" (last error: {redact(reason.str(), secret_values(settings))})" if reason else "")
                + f"; check {env.BOOTSTRAP_SERVERS} and {env.KAFKA_SECURITY_PROTOCOL}"
            )


def check_kafka(settings: Settings, timeout: float = 30.0) -> int:
    """Number of brokers that answered an authenticated metadata request on ``settings``.

    Raises:
        KafkaAuthenticationError: credentials or TLS rejected (within about a second).
        KafkaConnectionError: nothing answered within ``timeout`` seconds.
    """
    return len(connect_admin(settings, timeout).list_topics(timeout=timeout).brokers)
