"""The raw libraries the stages wrap, measured alone on the same inputs: the ceiling each
stage is compared with.

* :func:`embedding` — MiniLM-L6 int8 through onnxruntime (the embed stage's own embedder, its
  default threads and batch size) over the texts: texts per second.
* :func:`ocr` — RapidOCR (the extract stage's engine, default settings) on the demo corpus'
  scans: seconds per page.
* :func:`milvus_upsert` — ``MilvusClient.upsert`` of chunk rows into a Milvus Lite file, 500
  rows a call (the sink's batch): rows per second.
"""
from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np


def embedding(texts: Sequence[str], batch: int = 32) -> dict:
    """Texts per second of the raw embedder over ``texts`` in batches of ``batch``."""
    from conveyor.processors.embed.model import MiniLMEmbedder

    embedder = MiniLMEmbedder()
    embedder.embed(list(texts[:8]))  # warm-up
    t = time.perf_counter()
    for i in range(0, len(texts), batch):
        embedder.embed(list(texts[i:i + batch]))
    dt = time.perf_counter() - t
    return {"library": "onnxruntime MiniLM-L6 int8", "texts": len(texts), "seconds": round(dt, 3),
            "texts_per_s": round(len(texts) / dt, 2)}


def embed_stage(texts: Sequence[str], batch: int = 32) -> dict:
    """Texts per second of the embed stage's processor in process (decoded records in, Embedded
    records out: tokenising, chunking, embedding, pooling) over the same ``texts``."""
    from conveyor.processors.embed import EmbedProcessor
    from conveyor.streams.kafka.io import text_record

    records = [text_record(t) for t in texts]
    proc = EmbedProcessor()
    proc.process_batch(records[:8])
    t = time.perf_counter()
    for i in range(0, len(records), batch):
        proc.process_batch(records[i:i + batch])
    dt = time.perf_counter() - t
    return {"stage": "embed (same texts)", "texts": len(texts), "seconds": round(dt, 3),
            "texts_per_s": round(len(texts) / dt, 2)}


def ocr(images: Sequence[Path]) -> dict:
    """Seconds per page of raw RapidOCR (file path in, boxes out) on ``images``."""
    from rapidocr_onnxruntime import RapidOCR

    engine = RapidOCR()
    engine(str(images[0]))  # warm-up: loads the models
    t = time.perf_counter()
    for path in images:
        engine(str(path))
    dt = time.perf_counter() - t
    return {"library": "rapidocr-onnxruntime", "pages": len(images), "seconds": round(dt, 3),
            "seconds_per_page": round(dt / len(images), 3)}


def milvus_upsert(rows: int = 5000, dim: int = 384) -> dict:
    """Rows per second of ``MilvusClient.upsert`` into a Milvus Lite file (500 rows a call)."""
    from pymilvus import DataType, MilvusClient

    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(rows, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    with tempfile.TemporaryDirectory() as tmp:
        client = MilvusClient(str(Path(tmp) / "raw.db"))
        schema = client.create_schema(auto_id=False)
        schema.add_field("chunk_id", DataType.VARCHAR, is_primary=True, max_length=256)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
        index = client.prepare_index_params()
        index.add_index("vector", index_type="FLAT", metric_type="COSINE")
        client.create_collection("raw", schema=schema, index_params=index)
        data = [{"chunk_id": f"d{i}:0", "vector": vectors[i].tolist()} for i in range(rows)]
        t = time.perf_counter()
        for i in range(0, rows, 500):
            client.upsert("raw", data[i:i + 500])
        dt = time.perf_counter() - t
        client.close()
    return {"library": "pymilvus MilvusClient (Milvus Lite)", "rows": rows, "seconds": round(dt, 3),
            "rows_per_s": round(rows / dt, 1)}
