"""Text corpora of the intent model and their cached embeddings.

* banking77 (Casanueva et al. 2020; PolyAI-LDN/task-specific-datasets
  ``banking_data``, CC-BY-4.0): ``<corpus>/text_banking77/{train,test}.csv``
  (``text,category``) and ``categories.json`` (label order of the model).
* CLINC150 (Larson et al. 2019, "An Evaluation Dataset for Intent
  Classification and Out-of-Scope Prediction"; clinc/oos-eval, CC-BY-3.0):
  ``<corpus>/text_clinc150/data_full.json``, whose ``oos_train`` / ``oos_val`` /
  ``oos_test`` lists hold out-of-scope queries. Only ``oos_train`` and
  ``oos_val`` may be used to choose anything; ``oos_test`` is for evaluation.

Features are the ``doc_vector`` the embed stage produces for a text
(:func:`conveyor.processors.embed.embed_texts_as_documents`), cached as .npy under the
training cache (``CONVEYOR_TRAIN_CACHE``), keyed by the embedding model's
sha256 and a digest of the texts.
"""
from __future__ import annotations

import csv
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from conveyor.tools.training.common import cached_array, text_digest

BANKING77 = "text_banking77"
CLINC150 = "text_clinc150"
#: CLINC150 splits that may be used to choose thresholds (never ``oos_test``).
CLINC_OOS_VALIDATION = ("oos_train", "oos_val")


@dataclass
class Banking77:
    """banking77 texts and class indices in ``labels`` order."""

    labels: list[str]
    train_texts: list[str]
    y_train: np.ndarray
    test_texts: list[str]
    y_test: np.ndarray


def read_csv(path: Path) -> tuple[list[str], list[str]]:
    """``(texts, categories)`` of a banking77 csv (``text,category``)."""
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    return [r["text"] for r in rows], [r["category"] for r in rows]


def banking77_present(corpus: Path) -> bool:
    d = corpus / BANKING77
    return all((d / f).exists() for f in ("train.csv", "test.csv", "categories.json"))


def clinc150_present(corpus: Path) -> bool:
    return (corpus / CLINC150 / "data_full.json").exists()


def load_banking77(corpus: Path, labels: list[str] | None = None) -> Banking77:
    """Read banking77; ``labels`` (e.g. a model's manifest labels) fix the class order.

    Raises:
        FileNotFoundError: the folder is absent.
        ValueError: the labels do not cover the categories of the csv files.
    """
    d = corpus / BANKING77
    train_texts, train_cats = read_csv(d / "train.csv")
    test_texts, test_cats = read_csv(d / "test.csv")
    if labels is None:
        labels = json.loads((d / "categories.json").read_text(encoding="utf-8"))
    if not (set(train_cats) | set(test_cats)) <= set(labels):
        raise ValueError("labels do not cover the categories in train/test.csv")
    index = {c: i for i, c in enumerate(labels)}
    return Banking77(list(labels), train_texts, np.array([index[c] for c in train_cats]),
                     test_texts, np.array([index[c] for c in test_cats]))


def load_clinc_oos(corpus: Path, splits: tuple[str, ...]) -> dict[str, list[str]]:
    """Out-of-scope query texts of the given CLINC150 splits (e.g. ``("oos_test",)``)."""
    data: dict[str, Any] = json.loads((corpus / CLINC150 / "data_full.json").read_text(encoding="utf-8"))
    return {s: [text for text, _ in data[s]] for s in splits}


def embed_cached(embedder: Any, texts: list[str], cache_dir: Path, tag: str) -> np.ndarray:
    """Doc vectors ``(n, 384)`` float32 of ``texts``, from ``cache_dir`` or computed and cached."""
    from conveyor.processors.embed import embed_texts_as_documents

    path = cache_dir / f"{tag}-{embedder.sha256[:12]}-{text_digest(texts)}.npy"

    def compute() -> np.ndarray:
        t0 = time.perf_counter()
        X = embed_texts_as_documents(embedder, texts)
        dt = time.perf_counter() - t0
        print(f"  embedded {len(texts)} texts in {dt:.1f}s ({len(texts) / max(dt, 1e-9):.0f} texts/s)", flush=True)
        return X

    if path.exists():
        print(f"  cached embeddings: {path}", flush=True)
    return cached_array(path, compute)


class LazyEmbedder:
    """Creates the MiniLM embedder only when a text set is not cached yet.

    The cache key needs the embedding model's sha256, which is the pinned
    :data:`conveyor.processors.embed.model.MODEL_SHA256`, so cached runs never load the model.
    """

    def __init__(self, threads: int = 2) -> None:
        from conveyor.processors.embed.model import MODEL_NAME, MODEL_SHA256

        self.sha256 = MODEL_SHA256
        self.name = MODEL_NAME
        self._threads = threads
        self._embedder: Any = None

    def _get(self) -> Any:
        if self._embedder is None:
            from conveyor.processors.embed.model import MiniLMEmbedder

            self._embedder = MiniLMEmbedder(intra_op_threads=self._threads, batch_size=32)
        return self._embedder

    def describe(self) -> dict[str, str]:
        """``{"name", "version", "sha256"}`` of the embedding model, without loading it."""
        from conveyor.processors.embed.model import _default_model_version

        return {"name": self.name, "version": _default_model_version(), "sha256": self.sha256}

    def __getattr__(self, item: str) -> Any:  # embed(), describe(), tokenizer, ... of the real embedder
        return getattr(self._get(), item)
