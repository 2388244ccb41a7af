"""The ``embed`` stage: Text / Extracted records → Embedded records.

Each input is chunked (:mod:`conveyor.processors.embed.chunking`), every chunk of the
whole batch is embedded in one batched model call
(:class:`conveyor.processors.embed.model.MiniLMEmbedder`), and the document vector is the
L2-normalised mean of its chunk vectors (:func:`doc_vector`).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from conveyor.processors.base import Outcome, Processor, Record
from conveyor.processors.embed.chunking import Chunk, chunk_text
from conveyor.processors.embed.model import EMBEDDING_DIM, MAX_SEQ_LENGTH, MiniLMEmbedder, l2_normalize
from conveyor.processors.errors import ModelInputError, TextLimitError
from conveyor.processors.limits import MAX_TEXT_CHARS

__all__ = [
    "EmbedProcessor",
    "MiniLMEmbedder",
    "doc_vector",
    "embed_texts_as_documents",
    "ocr_confidence",
]


def doc_vector(chunk_vectors: np.ndarray) -> np.ndarray:
    """L2-normalised mean of chunk vectors, shape ``(384,)`` float32."""
    v = np.asarray(chunk_vectors, dtype=np.float32)
    if v.ndim != 2 or v.shape[0] == 0:
        raise ModelInputError("no chunk vectors")
    return l2_normalize(v.mean(axis=0))


def ocr_confidence(pages: Sequence[Record]) -> float | None:
    """Mean ``ocr_confidence`` over OCR'd pages; None when no page was OCR'd."""
    scores = [
        float(p["ocr_confidence"])
        for p in pages
        if p.get("method") == "ocr" and p.get("ocr_confidence") is not None
    ]
    return float(np.mean(scores)) if scores else None


def _to_floats(v: np.ndarray) -> list[float]:
    return [float(x) for x in v.tolist()]


@dataclass
class _Plan:
    record: Record
    kind: str
    text: str
    chunks: list[Chunk]
    first: int = 0  # index of the first chunk in the batch's flat chunk list


def embed_texts_as_documents(
    embedder: MiniLMEmbedder,
    texts: Sequence[str],
    *,
    max_tokens: int = MAX_SEQ_LENGTH,
    overlap: int = 32,
) -> np.ndarray:
    """Doc vectors ``(n, 384)`` for ``texts`` exactly as :class:`EmbedProcessor` computes them.

    Used by training scripts so that features match what the pipeline produces.
    Raises ModelInputError for an empty text.
    """
    all_chunks = [chunk_text(t, embedder.tokenizer, max_tokens=max_tokens, overlap=overlap) for t in texts]
    flat = [c.text for cs in all_chunks for c in cs]
    vecs = embedder.embed(flat)
    out = np.empty((len(texts), EMBEDDING_DIM), dtype=np.float32)
    pos = 0
    for i, cs in enumerate(all_chunks):
        out[i] = doc_vector(vecs[pos : pos + len(cs)])
        pos += len(cs)
    return out


class EmbedProcessor(Processor):
    """Chunk and embed texts and extracted documents.

    Args:
        embedder: a loaded :class:`MiniLMEmbedder`; default one is created
            (``intra_op_threads`` and ``batch_size`` — texts per onnxruntime
            call — are passed to it). All chunks of a ``process_batch`` call
            go to one :meth:`MiniLMEmbedder.embed` call.
        max_tokens: tokens per chunk including [CLS]/[SEP] (≤ 256).
        overlap: tokens shared by consecutive chunks.
        max_text_chars: longest text (characters) embedded; a longer one is refused with
            :class:`~conveyor.processors.errors.TextLimitError` before it is tokenized (default
            :data:`conveyor.processors.limits.MAX_TEXT_CHARS`, where the cost is worked out).
    """

    name = "embed"
    version = "0.1.0"

    def __init__(
        self,
        embedder: MiniLMEmbedder | None = None,
        *,
        max_tokens: int = MAX_SEQ_LENGTH,
        overlap: int = 32,
        batch_size: int = 8,
        intra_op_threads: int = 2,
        max_text_chars: int = MAX_TEXT_CHARS,
    ) -> None:
        self.embedder = embedder or MiniLMEmbedder(intra_op_threads=intra_op_threads, batch_size=batch_size)
        self.max_tokens = max_tokens
        self.overlap = overlap
        self.max_text_chars = max_text_chars

    # ------------------------------------------------------------------ plan
    def _plan(self, record: Record) -> _Plan:
        if "pages" in record and record.get("pages") is not None:
            kind = "document"
        elif "text" in record:
            kind = "text"
        else:
            raise ModelInputError("record has neither 'text' nor 'pages'")
        text = record.get("text")
        if not isinstance(text, str) or not text.strip():
            raise ModelInputError(f"{kind} {record.get('doc_id')!r} has no text to embed")
        if len(text) > self.max_text_chars:
            raise TextLimitError(
                f"{kind} {record.get('doc_id')!r} has {len(text):,} characters, more than the limit of "
                f"{self.max_text_chars:,} (conveyor.processors.limits.MAX_TEXT_CHARS); split it into several texts"
            )
        chunks = chunk_text(text, self.embedder.tokenizer, max_tokens=self.max_tokens, overlap=self.overlap)
        return _Plan(record=record, kind=kind, text=text, chunks=chunks)

    def _build(self, plan: _Plan, vectors: np.ndarray) -> Record:
        record = plan.record
        doc_id = record["doc_id"]
        chunks_out = [
            {
                "chunk_id": f"{doc_id}:{c.chunk_index}",
                "chunk_index": c.chunk_index,
                "text": c.text,
                "token_count": c.token_count,
                "vector": _to_floats(vectors[i]),
            }
            for i, c in enumerate(plan.chunks)
        ]
        if plan.kind == "document":
            pages = record.get("pages") or []
            fields: Any = dict(record["fields"]) if record.get("fields") is not None else None
            if fields is not None and "dates" in fields:
                fields["dates"] = list(fields["dates"] or [])
            out_extra = {
                "filename": record.get("filename"),
                "ocr_confidence": ocr_confidence(pages),
                "page_count": int(record.get("page_count") or len(pages)),
                "fields": fields,
            }
        else:
            out_extra = {"filename": None, "ocr_confidence": None, "page_count": 0, "fields": None}
        return {
            **self.meta(record),
            "kind": plan.kind,
            **out_extra,
            "text_length": len(plan.text),
            "model_name": self.embedder.name,
            "model_version": self.embedder.version,
            "model_sha256": self.embedder.sha256,
            "chunks": chunks_out,
            "doc_vector": _to_floats(doc_vector(vectors)),
        }

    # ----------------------------------------------------------------- batch
    def process_batch(self, records: Sequence[Record]) -> list[Outcome]:
        """One Embedded record per input; a bad input yields its exception only."""
        plans: list[_Plan | BaseException] = []
        flat: list[str] = []
        for record in records:
            try:
                plan = self._plan(record)
            except Exception as exc:  # noqa: BLE001 - becomes this record's dead letter
                plans.append(exc)
                continue
            plan.first = len(flat)
            flat.extend(c.text for c in plan.chunks)
            plans.append(plan)

        vectors: np.ndarray | None = None
        if flat:
            try:
                vectors = self.embedder.embed(flat)
            except Exception:  # noqa: BLE001 - isolate the culprit record by record below
                vectors = None

        outcomes: list[Outcome] = []
        for planned in plans:
            if isinstance(planned, BaseException):
                outcomes.append(planned)
                continue
            plan = planned
            try:
                if vectors is not None:
                    vecs = vectors[plan.first : plan.first + len(plan.chunks)]
                else:
                    vecs = self.embedder.embed([c.text for c in plan.chunks])
                outcomes.append([self._build(plan, vecs)])
            except Exception as exc:  # noqa: BLE001 - this record's failure, the others go on
                outcomes.append(exc)
        return outcomes

    def close(self) -> None:
        self.embedder.close()
