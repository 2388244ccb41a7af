"""Avro serde through the schema registry, in the Confluent wire format.

Values are written by ``confluent_kafka.schema_registry.avro.AvroSerializer``
(fastavro underneath): magic byte ``0``, a 4-byte big-endian schema id, then the
Avro body. Schemas are registered under the topic-name strategy
(``<topic>-value``) from the ``.avsc`` files in ``schemas/``. Keys are the
document id as UTF-8 bytes.
"""
from __future__ import annotations

import datetime as dt
import threading
from typing import Any, Optional

import httpx
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from processors.errors import ConveyorError, TransientError
from streams.settings import Settings
from streams.topics import catalogue

COMPATIBILITY = "BACKWARD"
"""Compatibility level set on every subject: consumers on the new schema read old records."""


class DecodeError(ConveyorError):
    """A record value cannot be decoded: not Confluent-framed Avro, unknown schema id,
    or bytes that do not match the writer schema. Permanent."""


class RegistryUnavailableError(TransientError):
    """The schema registry did not answer (connection error, timeout, 5xx, 429). Transient:
    the runner backs off and retries instead of dead-lettering."""


def registry_unavailable(exc: BaseException) -> bool:
    """True when ``exc`` (or its cause) means the registry is unreachable or overloaded,
    as opposed to an answer about the schema itself (e.g. 404 unknown schema id)."""
    seen = 0
    while exc is not None and seen < 5:
        status = getattr(exc, "http_status_code", None)
        if isinstance(status, int) and status > 0:
            return status >= 500 or status in (408, 429)
        if isinstance(exc, (httpx.TransportError, ConnectionError, TimeoutError)):
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


class EncodeError(ConveyorError):
    """A record does not match its topic's schema. Permanent."""


def key_bytes(doc_id: str) -> bytes:
    """Kafka key of a record: its document/text id, UTF-8 encoded."""
    return doc_id.encode("utf-8")


def _to_millis(obj: Any) -> Any:
    """Turn ``datetime`` values (fastavro's ``timestamp-millis``) back into epoch ms."""
    if isinstance(obj, dt.datetime):
        if obj.tzinfo is None:
            obj = obj.replace(tzinfo=dt.timezone.utc)
        return int(obj.timestamp() * 1000)
    if isinstance(obj, dict):
        return {k: _to_millis(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_to_millis(v) for v in obj]
    return obj


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
        self._deserializer = AvroDeserializer(self.client, None, from_dict=lambda d, _ctx: _to_millis(d))
        self._lock = threading.Lock()

    def schema_str(self, topic: str) -> str:
        """The ``.avsc`` text of ``topic``'s value schema.

        Raises:
            KeyError: the topic is not in the catalogue or has no schema (DLQ topics).
        """
        spec = self._specs[topic]
        if spec.schema_path is None:
            raise KeyError(f"topic {topic} carries raw bytes, not Avro")
        return spec.schema_path.read_text()

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
            return self._serializer(topic)(value, ctx)
        except (ValueError, TypeError) as exc:
            raise EncodeError(f"record does not match the schema of {topic}: {exc}") from exc
        except Exception as exc:
            if registry_unavailable(exc):
                raise RegistryUnavailableError(f"schema registry unavailable while encoding for {topic}: {exc}") from exc
            if type(exc).__name__ == "SerializationError":
                raise EncodeError(f"record does not match the schema of {topic}: {exc}") from exc
            raise

    def decode(self, topic: str, data: Optional[bytes]) -> dict[str, Any]:
        """Deserialize a value read from ``topic`` using the writer schema from the registry.

        Raises:
            DecodeError: null value, bad framing, unknown schema id or corrupt body.
            RegistryUnavailableError: the registry did not answer (transient).
        """
        if not data:
            raise DecodeError(f"empty value on {topic}")
        if data[0] != 0 or len(data) < 5:
            raise DecodeError(f"value on {topic} is not Confluent-framed Avro (magic byte {data[0]})")
        ctx = SerializationContext(topic, MessageField.VALUE)
        try:
            value = self._deserializer(data, ctx)
        except Exception as exc:  # SerializationError, SchemaRegistryError (unknown id), EOFError…
            if registry_unavailable(exc):
                raise RegistryUnavailableError(f"schema registry unavailable while decoding {topic}: {exc}") from exc
            name = type(exc).__name__
            raise DecodeError(f"cannot decode value on {topic} ({name}): {exc}") from exc
        if not isinstance(value, dict):
            raise DecodeError(f"value on {topic} is not a record")
        return value

    def set_compatibility(self, topic: str, level: str = COMPATIBILITY) -> None:
        """Set the compatibility level of ``<topic>-value`` (default BACKWARD)."""
        self.client.set_compatibility(subject_name=f"{topic}-value", level=level)

    def register(self, topic: str) -> int:
        """Register ``topic``'s schema under ``<topic>-value``; return its schema id."""
        from confluent_kafka.schema_registry import Schema

        return self.client.register_schema(f"{topic}-value", Schema(self.schema_str(topic), "AVRO"))
