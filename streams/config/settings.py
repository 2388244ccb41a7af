"""One frozen settings object, fed by environment variables (names in :mod:`conveyor.streams.config.env`).

Secrets are :class:`pydantic.SecretStr`, so ``repr``/logging never shows them.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from pydantic import SecretStr

from conveyor.processors.classify.routing import DEFAULT_DUPLICATE_THRESHOLD
from conveyor.streams.config import env

DEFAULT_INLINE_MAX_BYTES = 4 * 1024 * 1024
"""Documents up to 4 MiB travel inline in the record; larger ones go to the blob store."""
DEFAULT_RETRY_DELAYS = (1.0, 10.0, 60.0)
"""Backoff (seconds) of the retry attempts after a transient failure: 1 s, 10 s, 60 s, then the
dead-letter topic — the schedule issue 3 asks for, similar to Spring Kafka's
``@RetryableTopic`` exponential back-off with multiplier 10."""
DEFAULT_RETRY_JITTER = 0.2
"""Up to +20 % random jitter on each retry delay, so records that failed together do not all
retry at the same instant ("full/equal jitter", AWS Architecture Blog, *Exponential Backoff
And Jitter*, 2015)."""
DEFAULT_MAX_IN_FLIGHT_BYTES = 64 * 1024 * 1024
"""Bytes of consumed, not yet committed records a processor holds at most (64 MiB)."""
REGISTRY_TIMEOUT_S = 30
"""HTTP timeout (s) of schema-registry calls. The client's default is none at all: a lost
reply once hung a processor for 15 minutes. A timeout is a transient failure (retry path)."""
DEFAULT_RETENTION_CHECK_MS = 300_000
"""How often the local broker deletes segments past retention: Kafka's own default of
``log.retention.check.interval.ms`` (5 minutes)."""
DEFAULT_MAX_MESSAGE_BYTES = 16 * 1024 * 1024
"""Broker/topic/producer message size limit (16 MiB) — inline docs plus Avro overhead."""


NODE_PORT_STEP = 10
"""Port distance between the local stack's Kafka nodes (client and controller ports alike)."""


def local_bootstrap(kafka_port: int, brokers: int) -> str:
    """``bootstrap.servers`` of the local stack: every node's client address, e.g.
    ``127.0.0.1:19092,127.0.0.1:19102,127.0.0.1:19112`` for three nodes."""
    return ",".join(f"127.0.0.1:{kafka_port + NODE_PORT_STEP * i}" for i in range(brokers))


def _int(environ: Mapping[str, str], name: str, default: int) -> int:
    raw = environ.get(name)
    if raw in (None, ""):
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from exc


def _float(environ: Mapping[str, str], name: str, default: float) -> float:
    raw = environ.get(name)
    if raw in (None, ""):
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be a number, got {raw!r}") from exc


def _delays(raw: str, name: str) -> tuple[float, ...]:
    try:
        delays = tuple(float(x) for x in raw.split(",") if x.strip())
    except ValueError as exc:
        raise ValueError(f"{name} must be comma-separated seconds, got {raw!r}") from exc
    if any(d < 0 for d in delays):
        raise ValueError(f"{name} must not contain negative delays, got {raw!r}")
    return delays


def _secret(environ: Mapping[str, str], name: str) -> Optional[SecretStr]:
    raw = environ.get(name)
    return SecretStr(raw) if raw else None


@dataclass(frozen=True)
class Settings:
    """Connection and tuning settings of every Conveyor component.

    Build with :meth:`from_env`; derive variants with :func:`dataclasses.replace`.
    Ports are TCP ports on 127.0.0.1; sizes are bytes; times are seconds.
    """

    namespace: str = "conveyor"
    home: Path = Path.home() / ".cache" / "conveyor"
    kafka_port: int = 19092
    controller_port: int = 19093
    kafka_brokers: int = 1
    """Nodes of the local stack's Kafka cluster (1 or 3); node ``i`` (1-based) listens on
    ``kafka_port + 10 * (i - 1)`` and ``controller_port + 10 * (i - 1)``."""
    stack_tls: bool = False
    """The local stack runs with TLS: SASL_SSL Kafka listeners and an HTTPS registry, certificates
    from its private CA (``conveyor stack up --tls``; see :mod:`conveyor.tools.stack._tls`)."""
    replication_factor: int = 1
    """Replicas of each catalogue topic :func:`conveyor.streams.kafka.admin.create_topics` creates."""
    min_insync_replicas: int = 1
    """``min.insync.replicas`` of each catalogue topic (acks=all writes need this many replicas)."""
    registry_port: int = 18081
    kafka_retention_check_ms: int = DEFAULT_RETENTION_CHECK_MS
    bootstrap_servers: str = "127.0.0.1:19092"
    schema_registry_url: str = "http://127.0.0.1:18081/apis/ccompat/v7"
    schema_registry_user: Optional[str] = None
    schema_registry_password: Optional[SecretStr] = None
    schema_registry_ssl_ca_location: Optional[str] = None
    milvus_uri: str = ""
    milvus_token: Optional[SecretStr] = None
    kafka_security_protocol: Optional[str] = None
    kafka_sasl_mechanism: Optional[str] = None
    kafka_sasl_username: Optional[str] = None
    kafka_sasl_password: Optional[SecretStr] = None
    kafka_ssl_ca_location: Optional[str] = None
    kafka_extra: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    """``CONVEYOR_RDKAFKA_*`` passthrough; left out of ``repr``: it may hold secrets
    (``ssl.key.password``, ``sasl.oauthbearer.client.secret``)."""
    blob_dir: Path = Path.home() / ".cache" / "conveyor" / "blobs"
    inline_max_bytes: int = DEFAULT_INLINE_MAX_BYTES
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    metrics_port: int = 0
    metrics_addr: str = "127.0.0.1"
    liveness_seconds: float = 0.0
    log_format: str = "text"
    batch_size: int = 32
    batch_linger_ms: int = 0
    log_level: str = "INFO"
    duplicate_threshold: float = DEFAULT_DUPLICATE_THRESHOLD
    auto_threshold: Optional[float] = None
    drift_window_seconds: float = 60.0
    vector_sink: str = "milvus"
    retry_delays: tuple[float, ...] = DEFAULT_RETRY_DELAYS
    retry_delays_by_processor: tuple[tuple[str, tuple[float, ...]], ...] = ()
    retry_jitter: float = DEFAULT_RETRY_JITTER
    max_in_flight_bytes: int = DEFAULT_MAX_IN_FLIGHT_BYTES
    transactions: bool = True
    fault_transient_rate: float = 0.0
    instance_id: Optional[str] = None

    @classmethod
    def from_env(cls, environ: Optional[Mapping[str, str]] = None) -> Settings:
        """Read settings from ``environ`` (default ``os.environ``).

        Raises:
            ValueError: a numeric variable does not parse.
        """
        e = os.environ if environ is None else environ
        home = Path(e.get(env.HOME) or Path.home() / ".cache" / "conveyor").expanduser()
        kafka_port = _int(e, env.KAFKA_PORT, 19092)
        registry_port = _int(e, env.REGISTRY_PORT, 18081)
        brokers = _int(e, env.KAFKA_BROKERS, 1)
        if brokers not in (1, 3):
            raise ValueError(f"{env.KAFKA_BROKERS} must be 1 or 3, got {brokers}")
        replication = _int(e, env.REPLICATION_FACTOR, min(brokers, 3))
        extra = tuple(sorted(
            (k[len(env.KAFKA_EXTRA_CONFIG_PREFIX):].lower().replace("_", "."), v)
            for k, v in e.items()
            if k.startswith(env.KAFKA_EXTRA_CONFIG_PREFIX)
        ))
        auto = e.get(env.AUTO_THRESHOLD)
        prefix = env.RETRY_DELAYS + "_"
        per_processor = tuple(sorted((k[len(prefix):].lower(), _delays(v, k))
                                     for k, v in e.items() if k.startswith(prefix) and v))
        return cls(
            namespace=e.get(env.NAMESPACE) or "conveyor",
            home=home,
            kafka_port=kafka_port,
            controller_port=_int(e, env.CONTROLLER_PORT, kafka_port + 1),
            kafka_brokers=brokers,
            stack_tls=(e.get(env.STACK_TLS) or "0").strip().lower() in ("1", "true", "yes", "on"),
            replication_factor=replication,
            min_insync_replicas=_int(e, env.MIN_INSYNC_REPLICAS, 2 if replication >= 3 else 1),
            registry_port=registry_port,
            kafka_retention_check_ms=_int(e, env.KAFKA_RETENTION_CHECK_MS, DEFAULT_RETENTION_CHECK_MS),
            bootstrap_servers=e.get(env.BOOTSTRAP_SERVERS) or local_bootstrap(kafka_port, brokers),
            schema_registry_url=e.get(env.SCHEMA_REGISTRY_URL)
            or f"http://127.0.0.1:{registry_port}/apis/ccompat/v7",
            schema_registry_user=e.get(env.SCHEMA_REGISTRY_USER) or None,
            schema_registry_password=_secret(e, env.SCHEMA_REGISTRY_PASSWORD),
            schema_registry_ssl_ca_location=e.get(env.SCHEMA_REGISTRY_SSL_CA_LOCATION) or None,
            milvus_uri=e.get(env.MILVUS_URI) or str(home / "milvus" / "conveyor.db"),
            milvus_token=_secret(e, env.MILVUS_TOKEN),
            kafka_security_protocol=e.get(env.KAFKA_SECURITY_PROTOCOL) or None,
            kafka_sasl_mechanism=e.get(env.KAFKA_SASL_MECHANISM) or None,
            kafka_sasl_username=e.get(env.KAFKA_SASL_USERNAME) or None,
            kafka_sasl_password=_secret(e, env.KAFKA_SASL_PASSWORD),
            kafka_ssl_ca_location=e.get(env.KAFKA_SSL_CA_LOCATION) or None,
            kafka_extra=extra,
            blob_dir=Path(e.get(env.BLOB_DIR) or home / "blobs").expanduser(),
            inline_max_bytes=_int(e, env.INLINE_MAX_BYTES, DEFAULT_INLINE_MAX_BYTES),
            max_message_bytes=_int(e, env.MAX_MESSAGE_BYTES, DEFAULT_MAX_MESSAGE_BYTES),
            metrics_port=_int(e, env.METRICS_PORT, 0),
            metrics_addr=e.get(env.METRICS_ADDR) or "127.0.0.1",
            liveness_seconds=_float(e, env.LIVENESS_SECONDS, 0.0),
            log_format=(e.get(env.LOG_FORMAT) or "text").strip().lower(),
            batch_size=_int(e, env.BATCH_SIZE, 32),
            batch_linger_ms=_int(e, env.BATCH_LINGER_MS, 0),
            log_level=e.get(env.LOG_LEVEL) or "INFO",
            duplicate_threshold=_float(e, env.DUPLICATE_THRESHOLD, DEFAULT_DUPLICATE_THRESHOLD),
            auto_threshold=float(auto) if auto else None,
            drift_window_seconds=_float(e, env.DRIFT_WINDOW_SECONDS, 60.0),
            vector_sink=e.get(env.VECTOR_SINK) or "milvus",
            retry_delays=_delays(e[env.RETRY_DELAYS], env.RETRY_DELAYS)
            if e.get(env.RETRY_DELAYS) else DEFAULT_RETRY_DELAYS,
            retry_delays_by_processor=per_processor,
            retry_jitter=_float(e, env.RETRY_JITTER, DEFAULT_RETRY_JITTER),
            max_in_flight_bytes=_int(e, env.MAX_IN_FLIGHT_BYTES, DEFAULT_MAX_IN_FLIGHT_BYTES),
            transactions=(e.get(env.TRANSACTIONS) or "1").strip().lower() not in ("0", "false", "no", "off"),
            fault_transient_rate=_float(e, env.FAULT_TRANSIENT_RATE, 0.0),
            instance_id=e.get(env.INSTANCE_ID) or None,
        )

    def retry_delays_for(self, processor: str) -> tuple[float, ...]:
        """Retry backoff schedule (seconds per attempt) of ``processor``: its
        ``CONVEYOR_RETRY_DELAYS_<PROCESSOR>`` if set, else ``CONVEYOR_RETRY_DELAYS``."""
        return dict(self.retry_delays_by_processor).get(processor, self.retry_delays)

    def kafka_config(self) -> dict[str, str]:
        """librdkafka client settings common to producers, consumers and admin.

        Security settings are passed through unchanged; the SASL password is
        revealed only here, into the client config, never into logs.
        """
        conf: dict[str, str] = {"bootstrap.servers": self.bootstrap_servers}
        if self.kafka_security_protocol:
            conf["security.protocol"] = self.kafka_security_protocol
        if self.kafka_sasl_mechanism:
            conf["sasl.mechanism"] = self.kafka_sasl_mechanism
        if self.kafka_sasl_username:
            conf["sasl.username"] = self.kafka_sasl_username
        if self.kafka_sasl_password:
            conf["sasl.password"] = self.kafka_sasl_password.get_secret_value()
        if self.kafka_ssl_ca_location:
            conf["ssl.ca.location"] = self.kafka_ssl_ca_location
        conf.update(dict(self.kafka_extra))
        return conf

    def registry_config(self) -> dict[str, Any]:
        """``SchemaRegistryClient`` settings (URL, a :data:`REGISTRY_TIMEOUT_S` HTTP timeout,
        optional basic auth and the CA file that verifies an HTTPS registry)."""
        conf: dict[str, Any] = {"url": self.schema_registry_url, "timeout": REGISTRY_TIMEOUT_S}
        if self.schema_registry_ssl_ca_location:
            conf["ssl.ca.location"] = self.schema_registry_ssl_ca_location
        if self.schema_registry_user and self.schema_registry_password:
            conf["basic.auth.user.info"] = (
                f"{self.schema_registry_user}:{self.schema_registry_password.get_secret_value()}"
            )
        return conf

    def milvus_token_value(self) -> str:
        """The Milvus token in clear (for the client only), or ``""``."""
        return self.milvus_token.get_secret_value() if self.milvus_token else ""

    @property
    def milvus_collection(self) -> str:
        """Namespaced Milvus collection name (letters, digits, underscores only)."""
        return "".join(c if c.isalnum() else "_" for c in f"{self.namespace}_chunks")

    def group_id(self, processor: str) -> str:
        """Namespaced consumer group of ``processor``."""
        return f"{self.namespace}.{processor}"
