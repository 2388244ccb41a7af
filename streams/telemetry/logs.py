"""Logging of a Conveyor process: plain text (default) or one JSON object a line
(``CONVEYOR_LOG_FORMAT=json``, formatted by python-json-logger), with the processor, doc id
and trace id of the record a line is about; third-party libraries quiet at INFO.

The processor comes from :func:`bind_processor` (each runner thread binds its stage); doc and
trace ids come from a log call's ``extra`` (``log.warning(..., extra=record_context(...))``).
"""
from __future__ import annotations

import contextvars
import logging
import os
import sys
from typing import Optional

from pythonjsonlogger.json import JsonFormatter

_PROCESSOR: contextvars.ContextVar[Optional[str]] = contextvars.ContextVar("conveyor_processor", default=None)
FIELDS = ("processor", "doc_id", "trace_id")
"""Context fields every line carries (``None`` when unknown)."""
QUIET = ("httpx", "httpx2", "httpcore", "urllib3", "aiokafka", "faust", "mode", "pymilvus", "milvus_lite", "grpc",
         "asyncio", "onnxruntime", "rapidocr_onnxruntime", "RapidOCR", "faiss")
"""Third-party loggers held at WARNING: at INFO they log every registry request, each Kafka
(re)connection and every gRPC channel event."""
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def bind_processor(name: str) -> None:
    """Lines logged from now on in this thread (and tasks it starts) carry ``processor=name``."""
    _PROCESSOR.set(name)


def record_context(doc_id: object = None, trace_id: object = None) -> dict[str, object]:
    """``extra`` for a log call about one record (keys and ids as text)."""
    def text(v: object) -> Optional[str]:
        if isinstance(v, (bytes, bytearray)):
            return bytes(v).decode("utf-8", "replace")
        return None if v is None else str(v)
    return {"doc_id": text(doc_id), "trace_id": text(trace_id)}


class _Context(logging.Filter):
    """Adds :data:`FIELDS` to every record (the bound processor; ids from ``extra``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "processor", None) is None:
            record.processor = _PROCESSOR.get()
        for name in ("doc_id", "trace_id"):
            if not hasattr(record, name):
                setattr(record, name, None)
        return True


def configure(level: str = "INFO", fmt: str = "text") -> None:
    """Log to stderr at ``level`` in ``fmt`` (``text`` or ``json``), replacing earlier handlers;
    quiet the :data:`QUIET` loggers and gRPC's C core (``GRPC_VERBOSITY=ERROR`` unless set).

    Raises:
        ValueError: ``fmt`` is neither ``text`` nor ``json``.
    """
    if fmt not in ("text", "json"):
        raise ValueError(f"CONVEYOR_LOG_FORMAT must be text or json, got {fmt!r}")
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")  # Milvus Lite's GOAWAY lines come from the C core
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_Context())
    if fmt == "json":
        handler.setFormatter(JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s %(processor)s "
                                           "%(doc_id)s %(trace_id)s",
                                           rename_fields={"asctime": "time", "levelname": "level", "name": "logger"}))
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    for name in QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)
