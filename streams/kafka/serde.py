"""Avro serde through the schema registry, in the Confluent wire format.

Values are written by ``confluent_kafka.schema_registry.avro.AvroSerializer``
(fastavro underneath): magic byte ``0``, a 4-byte big-endian schema id, then the
Avro body. Schemas are registered under the topic-name strategy
(``<topic>-value``) from the ``.avsc`` files in ``schemas/``. Keys are the
document id as UTF-8 bytes.
"""
from __future__ import annotations

import io
import json
import ssl
import struct
import threading
from dataclasses import dataclass
from typing import Any, Optional

import fastavro
import httpx
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from conveyor.processors.errors import ConveyorError, TransientError
from conveyor.schemas import schema_json, schema_text
from conveyor.streams.config import env
from conveyor.streams.config.security import RegistryTlsError, redact_url
from conveyor.streams.config.settings import Settings
from conveyor.streams.kafka.topics import catalogue

COMPATIBILITY = "BACKWARD"
"""Compatibility level set on every subject: consumers on the new schema read old records."""


MAGIC_BYTE = 0
"""First byte of every Confluent-framed value; a 4-byte big-endian schema id follows."""
FRAME_BYTES = 5
"""Magic byte + schema id: the framing before the Avro body."""


class DecodeError(ConveyorError):
    """A record value cannot be decoded: null or empty, not Confluent-framed Avro, unknown
    schema id, another topic's schema, or bytes that do not match the writer schema. Permanent."""


class UnknownSchemaError(DecodeError):
    """The value's schema id is not in the registry (HTTP 404): written against another
    registry, or the schema was deleted. Permanent: the id will not appear by retrying."""


class SchemaMismatchError(DecodeError):
    """The value was written with a schema whose record name is not the topic's (e.g. a
    ``Text`` record produced into the documents topic), or with a non-Avro schema. Permanent."""


class RegistryUnavailableError(TransientError):
    """The schema registry did not answer (connection error, timeout, 5xx, 429) or refused
    this client's credentials (401, 403). Transient: the runner backs off and retries
    instead of dead-lettering records that are not at fault."""


REGISTRY_RETRY_STATUSES = (401, 403, 408, 429)
"""HTTP statuses below 500 that say nothing about the record: auth refused (a configuration
problem: records would be dead-lettered although nothing is wrong with them), request
timeout, rate limit."""


def registry_unavailable(exc: BaseException) -> bool:
    """True when ``exc`` (or its cause) means the registry is unreachable, overloaded or
    refusing this client (5xx and :data:`REGISTRY_RETRY_STATUSES`), as opposed to an answer
    about the schema itself (e.g. 404 unknown schema id, 422 invalid schema)."""
    seen = 0
    cause: Optional[BaseException] = exc
    while cause is not None and seen < 5:
        status = getattr(cause, "http_status_code", None)
        if isinstance(status, int) and status > 0:
            return status >= 500 or status in REGISTRY_RETRY_STATUSES
        if isinstance(cause, (httpx.TransportError, ConnectionError, TimeoutError)):
            return True
        cause = cause.__cause__ or cause.__context__
        seen += 1
    return False


class EncodeError(ConveyorError):
    """A record does not match its topic's schema. Permanent."""


def key_bytes(doc_id: str) -> bytes:
    """Kafka key of a record: its document/text id, UTF-8 encoded."""
    return doc_id.encode("utf-8")


def _drop_timestamp_types(schema: Any) -> Any:
    """``schema`` (parsed JSON) without ``timestamp-millis`` logical types, so such fields
    decode as the epoch-millisecond ``int`` they were written as (no ``datetime`` round trip)."""
    if isinstance(schema, dict):
        return {k: _drop_timestamp_types(v) for k, v in schema.items()
                if not (k == "logicalType" and v == "timestamp-millis")}
    if isinstance(schema, list):
        return [_drop_timestamp_types(v) for v in schema]
    return schema


def record_full_name(schema: Any) -> str:
    """Full name (``namespace.name``) of a record schema given as parsed JSON; ``""`` when
    the schema is not a named record (a primitive, a union, an array…)."""
    if not isinstance(schema, dict) or schema.get("type") not in ("record", "error"):
        return ""
    name = str(schema.get("name") or "")
    namespace = schema.get("namespace")
    return name if "." in name or not namespace else f"{namespace}.{name}"


@dataclass(frozen=True)
class WriterSchema:
    """The schema a value was written with, ready for decoding.

    Attributes:
        schema_id: registry id (the 4 bytes after the magic byte).
        full_name: record full name, e.g. ``io.conveyor.Text`` (``""`` if not a record).
        parsed: the fastavro-parsed schema (``timestamp-millis`` read as ``int``).
    """

    schema_id: int
    full_name: str
    parsed: Any

    @classmethod
    def from_str(cls, schema_id: int, schema_str: str) -> WriterSchema:
        """Parse an Avro schema text (as stored in the registry or a ``.avsc`` file).

        Raises:
            DecodeError: the text is not a valid Avro schema.
        """
        try:
            raw = json.loads(schema_str)
            parsed = fastavro.parse_schema(_drop_timestamp_types(raw))
        except Exception as exc:  # noqa: BLE001 - JSONDecodeError, SchemaParseException…
            raise DecodeError(f"schema id {schema_id} is not a valid Avro schema: {exc}") from None
        return cls(schema_id, record_full_name(raw), parsed)


def frame_schema_id(topic: str, data: Optional[bytes]) -> int:
    """Schema id of a Confluent-framed value (magic byte ``0``, 4-byte big-endian id, body).

    Raises:
        DecodeError: ``data`` is null/empty, shorter than the 5-byte frame, or its first
            byte is not the magic byte.
    """
    if not data:
        raise DecodeError(f"empty value on {topic} (null or 0 bytes)")
    if data[0] != MAGIC_BYTE or len(data) < FRAME_BYTES:
        raise DecodeError(f"value on {topic} is not Confluent-framed Avro (magic byte {data[0]}, "
                          f"{len(data)} bytes; expected byte 0 then a 4-byte schema id)")
    schema_id: int = struct.unpack(">I", data[1:FRAME_BYTES])[0]
    return schema_id


def decode_framed(topic: str, data: Optional[bytes], writer: WriterSchema,
                  expected_name: Optional[str]) -> dict[str, Any]:
    """Decode a Confluent-framed value with its writer schema; no registry involved.

    Args:
        topic: topic the value was read from (for messages).
        data: the whole value, frame included.
        writer: the schema named by the value's schema id (see :meth:`AvroSerde.decode`).
        expected_name: full record name of the topic's schema, e.g. ``io.conveyor.Document``;
            ``None`` accepts any record schema (raw-bytes topics such as dead letters).

    Returns:
        The record as a ``dict``; ``timestamp-millis`` fields as epoch-ms ``int``.

    Raises:
        DecodeError: bad framing, or a body that is not exactly one record of the writer
            schema (truncated, corrupt, or with bytes left over).
        SchemaMismatchError: the writer schema's record name is not ``expected_name``.
    """
    schema_id = frame_schema_id(topic, data)
    assert data is not None
    if schema_id != writer.schema_id:
        raise DecodeError(f"value on {topic} names schema id {schema_id}, not {writer.schema_id}")
    if expected_name is not None and writer.full_name != expected_name:
        raise SchemaMismatchError(
            f"value on {topic} was written with schema id {schema_id} "
            f"({writer.full_name or 'not a record schema'}), but {topic} carries {expected_name} records")
    body = io.BytesIO(data[FRAME_BYTES:])
    try:
        value = fastavro.schemaless_reader(body, writer.parsed, None)
    except Exception as exc:  # noqa: BLE001 - EOFError, UnicodeDecodeError, IndexError, ValueError…
        why = "the body ends before the record does (truncated)" if isinstance(exc, EOFError) else str(exc)
        raise DecodeError(f"cannot decode value on {topic} with schema id {schema_id} "
                          f"({writer.full_name or 'not a record'}): {type(exc).__name__}: {why}") from None
    left = len(data) - FRAME_BYTES - body.tell()
    if left != 0:
        raise DecodeError(f"value on {topic} has {left} bytes left over after its {writer.full_name} record "
                          f"(schema id {schema_id}): corrupt, or not written by an Avro serializer")
    if not isinstance(value, dict):
        raise DecodeError(f"value on {topic} is not a record")
    return value


class AvroSerde:
    """Encode/decode the values of catalogue topics.

    Thread-safe; serializers are built lazily per topic and cached. Usage::

        serde = AvroSerde(settings)
        data = serde.encode("conveyor.texts", record)   # -> bytes (wire format)
        record = serde.decode("conveyor.texts", data)   # -> dict

    Timestamps come back as epoch milliseconds (``int``), as they were written.
    """

    def __init__(self, settings: Settings, client: Optional[SchemaRegistryClient] = None):
        self.settings = settings
        self.client = client or SchemaRegistryClient(settings.registry_config())
        self._specs = {s.name: s for s in catalogue(settings).values()}
        self._serializers: dict[str, AvroSerializer] = {}
        self._writers: dict[int, WriterSchema] = {}
        self._expected: dict[str, Optional[str]] = {}
        self._lock = threading.Lock()

    def registry_answers(self, timeout: float = 3.0) -> bool:
        """Whether the schema registry answers ``GET /subjects`` with 200 within ``timeout`` s."""
        conf = self.settings.registry_config()
        auth = tuple(conf["basic.auth.user.info"].split(":", 1)) if "basic.auth.user.info" in conf else None
        try:
            return httpx.get(f"{self.settings.schema_registry_url.rstrip('/')}/subjects", timeout=timeout,
                             auth=auth, verify=ssl.create_default_context(cafile=conf.get("ssl.ca.location"))).status_code == 200
        except (httpx.HTTPError, OSError, ssl.SSLError):
            return False

    def check_tls(self, timeout: float = 10.0) -> None:
        """Fail fast when the registry is ``https://`` and its certificate does not verify
        against ``settings.schema_registry_ssl_ca_location`` (else the system's CAs). A registry
        that does not answer is left to the runner's retries (transient), as before.

        Raises:
            RegistryTlsError: the CA file cannot be read, or the certificate does not verify: one
                line naming the URL, OpenSSL's reason (e.g. ``certificate has
                expired``, ``unable to get local issuer certificate``, ``Hostname mismatch``) and the
                variables to check.
        """
        url = self.settings.schema_registry_url.rstrip("/")
        if not url.lower().startswith("https://"):
            return
        cafile = self.settings.schema_registry_ssl_ca_location
        try:
            context = ssl.create_default_context(cafile=cafile)
        except (OSError, ssl.SSLError) as exc:
            raise RegistryTlsError(f"cannot read the schema registry's CA file {cafile}: {exc}; check "
                                   f"{env.SCHEMA_REGISTRY_SSL_CA_LOCATION}") from None
        try:
            httpx.get(f"{url}/subjects", timeout=timeout, verify=context)
        except httpx.ConnectError as exc:
            cause: Optional[BaseException] = exc
            while cause is not None and not isinstance(cause, ssl.SSLCertVerificationError):
                cause = cause.__cause__ or cause.__context__
            if cause is not None:
                raise RegistryTlsError(
                    f"schema registry TLS handshake failed on {redact_url(url)}: "
                    f"{(cause.verify_message or str(cause)).rstrip('.')}; check {env.SCHEMA_REGISTRY_SSL_CA_LOCATION} and "
                    f"{env.SCHEMA_REGISTRY_URL}") from None
        except httpx.HTTPError:
            return

    def schema_str(self, topic: str) -> str:
        """The ``.avsc`` text of ``topic``'s value schema.

        Raises:
            KeyError: the topic is not in the catalogue or has no schema (DLQ topics).
        """
        spec = self._specs[topic]
        if spec.schema_path is None:
            raise KeyError(f"topic {topic} carries raw bytes, not Avro")
        return schema_text(spec.schema_path)

    def _serializer(self, topic: str) -> AvroSerializer:
        with self._lock:
            ser = self._serializers.get(topic)
            if ser is None:
                ser = AvroSerializer(self.client, self.schema_str(topic),
                                     conf={"auto.register.schemas": True})
                self._serializers[topic] = ser
            return ser

    def encode(self, topic: str, value: dict[str, Any]) -> bytes:
        """Serialize ``value`` for ``topic`` (registers the schema on first use).

        Raises:
            EncodeError: ``value`` does not fit the topic's schema.
            RegistryUnavailableError: the registry did not answer (transient).
            confluent_kafka.schema_registry.SchemaRegistryError: the registry rejected the schema.
        """
        ctx = SerializationContext(topic, MessageField.VALUE)
        try:
            data = self._serializer(topic)(value, ctx)
        except (ValueError, TypeError) as exc:
            raise EncodeError(f"record does not match the schema of {topic}: {exc}") from exc
        except Exception as exc:
            if registry_unavailable(exc):
                raise RegistryUnavailableError(f"schema registry unavailable while encoding for {topic}: {exc}") from exc
            if type(exc).__name__ == "SerializationError":
                raise EncodeError(f"record does not match the schema of {topic}: {exc}") from exc
            raise
        if data is None:  # the serializer returns None only for a None value
            raise EncodeError(f"no record to encode for {topic}")
        return data

    def expected_name(self, topic: str) -> Optional[str]:
        """Full record name of ``topic``'s ``.avsc`` schema, e.g. ``io.conveyor.Text``;
        ``None`` for raw-bytes topics (dead letters) and topics outside the catalogue,
        whose values may carry any schema."""
        if topic not in self._expected:
            spec = self._specs.get(topic)
            path = spec.schema_path if spec is not None else None
            self._expected[topic] = record_full_name(schema_json(path)) if path else None
        return self._expected[topic]

    def writer_schema(self, topic: str, schema_id: int) -> WriterSchema:
        """The registry's schema ``schema_id`` (cached per id: ids never change).

        Raises:
            UnknownSchemaError: the registry does not know the id (HTTP 404).
            SchemaMismatchError: the id names a non-Avro schema (JSON Schema, Protobuf).
            RegistryUnavailableError: the registry did not answer (transient).
            DecodeError: any other registry refusal, or an unparseable schema.
        """
        writer = self._writers.get(schema_id)
        if writer is not None:
            return writer
        try:
            schema = self.client.get_schema(schema_id)
        except Exception as exc:
            if registry_unavailable(exc):
                raise RegistryUnavailableError(
                    f"schema registry unavailable while decoding {topic} (schema id {schema_id}): {exc}") from exc
            if getattr(exc, "http_status_code", None) == 404:
                raise UnknownSchemaError(
                    f"value on {topic} names schema id {schema_id}, which the registry at "
                    f"{redact_url(self.settings.schema_registry_url)} does not know (HTTP 404): written against another "
                    f"registry, or its schema was deleted") from None
            raise DecodeError(f"registry refused schema id {schema_id} for a value on {topic}: {exc}") from exc
        kind = (schema.schema_type or "AVRO").upper()
        if kind != "AVRO":
            raise SchemaMismatchError(f"value on {topic} was written with schema id {schema_id}, a {kind} "
                                      f"schema; {topic} carries Avro {self.expected_name(topic) or ''} records")
        if schema.references:
            raise DecodeError(f"schema id {schema_id} of a value on {topic} uses schema references, "
                              "which no Conveyor schema does")
        if schema.schema_str is None:
            raise DecodeError(f"registry returned no schema text for schema id {schema_id} ({topic})")
        writer = WriterSchema.from_str(schema_id, schema.schema_str)
        with self._lock:
            self._writers[schema_id] = writer
        return writer

    def decode(self, topic: str, data: Optional[bytes]) -> dict[str, Any]:
        """Deserialize a value read from ``topic`` using the writer schema from the registry.

        The writer schema must be a record with the same full name as the topic's
        ``.avsc`` (its evolved versions qualify; raw-bytes and unknown topics accept any
        record); the value is decoded with it as written.

        Raises:
            DecodeError: null value, bad framing, corrupt body, or bytes left over.
            UnknownSchemaError: the schema id is not in the registry (a DecodeError).
            SchemaMismatchError: written with another topic's schema (a DecodeError).
            RegistryUnavailableError: the registry did not answer (transient).
        """
        schema_id = frame_schema_id(topic, data)
        return decode_framed(topic, data, self.writer_schema(topic, schema_id), self.expected_name(topic))

    def set_compatibility(self, topic: str, level: str = COMPATIBILITY) -> None:
        """Set the compatibility level of ``<topic>-value`` (default BACKWARD)."""
        self.client.set_compatibility(subject_name=f"{topic}-value", level=level)

    def register(self, topic: str) -> int:
        """Register ``topic``'s schema under ``<topic>-value``; return its schema id."""
        from confluent_kafka.schema_registry import Schema

        return self.client.register_schema(f"{topic}-value", Schema(self.schema_str(topic), "AVRO"))
