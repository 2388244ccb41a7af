"""An example Conveyor sink plugin: chunk embeddings in Qdrant.

With ``CONVEYOR_VECTOR_SINK=qdrant`` the ``index`` stage upserts every chunk of each
``Embedded`` record as a Qdrant point and the ``classify`` stage searches the same collection
for near-duplicates (:class:`conveyor.sinks.base.VectorSearch`). Qdrant runs embedded in a
local folder (``CONVEYOR_QDRANT_PATH``, default ``$CONVEYOR_HOME/qdrant``; one process at a
time, so ``run all`` puts index and classify together) or as a server (``CONVEYOR_QDRANT_URL``).

Points: id ``uuid5(URL namespace, "<doc_id>:<chunk_index>")`` (upserting again never
duplicates), the vector, and a payload with ``chunk_id``, ``doc_id``, ``kind``,
``chunk_index``, ``filename`` and ``text``. Cosine distance, as the Milvus sink.
"""
from __future__ import annotations

import math
import os
import threading
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Optional

from qdrant_client import QdrantClient, models

from conveyor.sinks.base import RowError, Sink, SinkBackpressureError, SinkUnavailableError

__all__ = ["QdrantSink"]

VECTOR_DIM = 384
"""all-MiniLM-L6-v2 embeddings."""
UPSERT_BATCH = 256
"""Points per upsert request."""
PATH_ENV, URL_ENV = "CONVEYOR_QDRANT_PATH", "CONVEYOR_QDRANT_URL"


def _unavailable(exc: BaseException) -> bool:
    """Connection-level failures (server down, timeouts): retry later, nothing is wrong with the data."""
    from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

    if isinstance(exc, UnexpectedResponse):
        return exc.status_code is not None and exc.status_code >= 500
    return isinstance(exc, (ResponseHandlingException, ConnectionError, TimeoutError))


class QdrantSink(Sink):
    """Upserts chunk points into one Qdrant collection; answers similarity searches.

    Args:
        collection: collection name (created with cosine distance when missing).
        path: local storage folder (embedded Qdrant), or ``None`` with ``url``.
        url: a Qdrant server, e.g. ``http://127.0.0.1:6333``.
        dim: vector dimension.
    """

    name = "qdrant"
    version = "1.0.0"

    def __init__(self, collection: str, *, path: Optional[Path] = None, url: Optional[str] = None,
                 dim: int = VECTOR_DIM):
        if (path is None) == (url is None):
            raise ValueError("give exactly one of path (embedded Qdrant) or url (a Qdrant server)")
        self.collection, self.dim = collection, int(dim)
        self.client = QdrantClient(url=url) if url else QdrantClient(path=str(path))
        self._lock = threading.Lock()  # index and classify share the sink from two threads
        self._buffer: dict[str, models.PointStruct] = {}
        if not self.client.collection_exists(collection):
            self.client.create_collection(collection, vectors_config=models.VectorParams(
                size=self.dim, distance=models.Distance.COSINE))

    @classmethod
    def from_settings(cls, settings: Any) -> QdrantSink:
        """``CONVEYOR_QDRANT_URL`` if set, else ``CONVEYOR_QDRANT_PATH`` (default
        ``$CONVEYOR_HOME/qdrant``); collection ``<namespace>_chunks``."""
        url = os.environ.get(URL_ENV)
        path = None if url else Path(os.environ.get(PATH_ENV) or Path(settings.home) / "qdrant")
        return cls(_collection(settings.namespace), path=path, url=url)

    @classmethod
    def single_process(cls, settings: Any) -> bool:
        """Embedded Qdrant locks its folder: one process at a time."""
        return not os.environ.get(URL_ENV)

    def rows(self, record: Mapping[str, Any]) -> list[models.PointStruct]:
        """One point per chunk of an ``Embedded`` record.

        Raises:
            RowError: no doc id or chunks, or a vector that is not ``dim`` finite numbers.
        """
        doc_id, chunks = record.get("doc_id"), record.get("chunks") or []
        if not isinstance(doc_id, str) or not doc_id or not chunks:
            raise RowError(f"record {doc_id!r} has no doc id or no chunks")
        points = []
        for position, chunk in enumerate(chunks):
            index = chunk.get("chunk_index", position)
            vector = [float(x) for x in chunk.get("vector") or ()]
            if len(vector) != self.dim or not all(math.isfinite(x) for x in vector):
                raise RowError(f"chunk {doc_id}:{index}: vector is not {self.dim} finite numbers")
            key = f"{doc_id}:{index}"
            points.append(models.PointStruct(id=str(uuid.uuid5(uuid.NAMESPACE_URL, key)), vector=vector, payload={
                "chunk_id": key, "doc_id": doc_id, "kind": record.get("kind"), "chunk_index": index,
                "filename": record.get("filename") or "", "text": chunk.get("text") or ""}))
        return points

    def write(self, batch: Sequence[models.PointStruct]) -> None:
        """Buffer points (the last write of an id wins)."""
        for point in batch:
            self._buffer[str(point.id)] = point

    def flush(self) -> None:
        """Upsert every buffered point.

        Raises:
            SinkBackpressureError: Qdrant is unreachable; the points stay buffered.
        """
        points = list(self._buffer.values())
        for i in range(0, len(points), UPSERT_BATCH):
            try:
                with self._lock:
                    self.client.upsert(self.collection, points=points[i:i + UPSERT_BATCH], wait=True)
            except Exception as exc:
                if _unavailable(exc):
                    raise SinkBackpressureError(f"Qdrant unavailable: {exc}", retry_after=2.0) from exc
                raise
            for p in points[i:i + UPSERT_BATCH]:
                self._buffer.pop(str(p.id), None)

    def discard(self) -> None:
        """Drop the buffered points."""
        self._buffer.clear()

    def search_similar(self, vector: Sequence[float], *, kind: Optional[str] = None,
                       exclude_doc_id: Optional[str] = None, limit: int = 5,
                       min_score: float = 0.0) -> list[tuple[str, float]]:
        """``[(doc_id, cosine)]`` of the most similar stored documents (their best chunk), best first.

        Raises:
            SinkUnavailableError: Qdrant is unreachable (transient).
        """
        must = [models.FieldCondition(key="kind", match=models.MatchValue(value=kind))] if kind else []
        must_not = ([models.FieldCondition(key="doc_id", match=models.MatchValue(value=exclude_doc_id))]
                    if exclude_doc_id else [])
        try:
            with self._lock:
                hits = self.client.query_points(self.collection, query=[float(x) for x in vector],
                                                query_filter=models.Filter(must=must, must_not=must_not),
                                                limit=max(50, 10 * limit), score_threshold=min_score).points
        except Exception as exc:
            if _unavailable(exc):
                raise SinkUnavailableError(f"Qdrant unavailable: {exc}") from exc
            raise
        best: dict[str, float] = {}
        for hit in hits:
            doc = (hit.payload or {}).get("doc_id")
            if doc is not None and hit.score > best.get(doc, float("-inf")):
                best[doc] = float(hit.score)
        return sorted(best.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]

    def count(self, doc_id: Optional[str] = None) -> int:
        """Points stored (of ``doc_id`` only, if given)."""
        flt = (models.Filter(must=[models.FieldCondition(key="doc_id", match=models.MatchValue(value=doc_id))])
               if doc_id else None)
        with self._lock:
            return self.client.count(self.collection, count_filter=flt, exact=True).count

    def close(self) -> None:
        """Close the client (releases the local folder's lock)."""
        self.client.close()


def _collection(namespace: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in f"{namespace}_chunks")
