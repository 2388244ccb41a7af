"""Which Milvus/pymilvus failures mean "unavailable, retry later".

:func:`is_unavailable` decides between backpressure (the sink keeps its rows and
the runner retries) and a permanent failure (bad data or configuration). What
pymilvus 3.0.2 raises, as observed against Milvus Lite and Milvus 2.3.5:

* server down / connection refused: ``MilvusException(code=2, "Fail connecting to
  server on …, illegal connection params or server unavailable")`` — from the
  client constructor and from calls on a client whose server went away;
* gRPC failures that outlive pymilvus' own retries: ``MilvusException`` whose
  ``code`` is a ``grpc.StatusCode`` (``UNAVAILABLE``, ``DEADLINE_EXCEEDED``…), or a
  raw ``grpc.RpcError`` for codes pymilvus does not retry (``DEADLINE_EXCEEDED``);
* server-side transient states, as Milvus error codes: 1 service not ready,
  2 unavailable, 3/4/7 memory/request/disk limits, 8 rate limit, 9 force deny
  (quota), 11 time-tick lag, 503 channel not available, 901/902/905 node
  not found/offline/unavailable, 101 collection not loaded (reads right after a
  restart); or a status flagged ``retriable``.

Input errors (wrong dimension, string too long: codes 6, 1100, 65535…) are permanent.
"""
from __future__ import annotations

import re

import grpc
from pymilvus.exceptions import (
    ConnectError,
    ConnectionConfigException,
    MilvusException,
    MilvusUnavailableException,
    ParamError,
)
from yarl import URL

from conveyor.sinks.base import SinkUnavailableError

__all__ = ["MilvusUnavailableError", "describe_error", "is_unavailable", "redact_uri"]

TRANSIENT_GRPC_CODES = frozenset({
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.ABORTED,
    grpc.StatusCode.CANCELLED,
})
TRANSIENT_MILVUS_CODES = frozenset({2, 3, 4, 7, 8, 9, 11, 101, 503, 901, 902, 905})
"""Milvus (merr) codes of transient server states. 101 "collection not loaded" is
what reads get for a few seconds after a server restart, while the collection
reloads (the sink reconnects, which also loads it)."""
AMBIGUOUS_MILVUS_CODES = frozenset({1, 65535})
"""Codes that say nothing by themselves: 1 (pymilvus client-side errors) and 65535 (merr's
"unexpected error", e.g. ``[query] Retry timeout: 5.0s`` from a 2.3.5 proxy reloading a
collection after a restart); they count as transient only with a matching message."""
_TRANSIENT_MESSAGE = re.compile(
    r"unavailable|not ready|connection refused|failed to connect|fail connecting|"
    r"deadline exceeded|timed? ?out|retry timeout|retry run out|rate limit|"
    r"too many requests|channel not available|shard leader",
    re.IGNORECASE,
)


class MilvusUnavailableError(SinkUnavailableError):
    """Milvus is unreachable or unavailable for a read (count/search); transient (retryable)."""


def is_unavailable(exc: BaseException) -> bool:
    """True when ``exc`` means Milvus is (temporarily) unreachable or overloaded."""
    if isinstance(exc, (ConnectionConfigException, ParamError)):
        return False
    if isinstance(exc, (MilvusUnavailableException, ConnectError)):
        return True
    if isinstance(exc, MilvusException):
        if getattr(exc, "is_input_error", False):
            return False
        code = exc.code
        if isinstance(code, grpc.StatusCode):
            return code in TRANSIENT_GRPC_CODES
        if getattr(exc, "retriable", False) or code in TRANSIENT_MILVUS_CODES:
            return True
        return code in AMBIGUOUS_MILVUS_CODES and bool(_TRANSIENT_MESSAGE.search(str(exc.message)))
    if isinstance(exc, grpc.FutureTimeoutError):
        return True
    if isinstance(exc, grpc.RpcError) and hasattr(exc, "code"):
        try:
            return exc.code() in TRANSIENT_GRPC_CODES
        except Exception:  # noqa: BLE001 - a malformed RpcError: treat as unknown
            return False
    if isinstance(exc, ValueError) and "closed channel" in str(exc):
        return True  # another thread dropped the client after an outage
    return isinstance(exc, (ConnectionError, TimeoutError))


def describe_error(exc: BaseException) -> str:
    """Short one-line description of ``exc`` for logs and error messages."""
    if isinstance(exc, MilvusException):
        code = exc.code.name if isinstance(exc.code, grpc.StatusCode) else exc.code
        text = f"{type(exc).__name__} code={code}: {exc.message}"
    else:
        text = f"{type(exc).__name__}: {exc}"
    text = " ".join(text.split())
    return text if len(text) <= 300 else text[:297] + "..."


def redact_uri(uri: str) -> str:
    """``uri`` with any ``user:password@`` part replaced by ``***@`` (parsed with yarl)."""
    url = URL(uri)
    return str(url.with_password(None).with_user("***")) if url.user or url.password else uri
