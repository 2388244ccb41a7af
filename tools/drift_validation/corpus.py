"""Real inputs for validating the drift monitor offline (``../shared/corpus``), cached.

Nothing here runs in the pipeline; :mod:`conveyor.tools.drift_validation.scenarios` and the tests use it.

* **texts** (:func:`load_texts`): BANKING77 train/test and CLINC150 test queries from
  the domains other than ``banking`` and ``credit_cards``, with their intents; their
  all-MiniLM-L6-v2 doc vectors (:func:`conveyor.processors.embed.embed_texts_as_documents`, exactly
  what the ``embed`` processor publishes) and the shipped intent model's predicted labels.
* **documents** (:func:`load_documents`): receipts and tax forms of the shippable corpus
  folders (labels from :mod:`conveyor.tools.training.doc_sources`), with text length, OCR
  confidence (mean over OCR'd pages, None for text-layer documents) and doc vectors.

Caches live under ``CONVEYOR_TRAIN_CACHE`` (default ``~/.cache/conveyor/train``), outside
the repository:

* the full BANKING77 train/test embeddings written by ``make models``
  (``banking77-{train,test}-<model sha>-<digest>.npy``) are reused when present,
  otherwise a seeded subset is embedded and cached as ``drift-*.npy``;
* document extraction (the slow part: 2-15 s of OCR per receipt on 2 cores) is cached
  per file sha256 in ``drift-extract/<sha256>.json``; the text-only cache of
  ``make models`` (``doctype-extract/``) is used when a file has no OCR entry yet and
  ``extract=False`` (then its OCR confidence is unknown: None).
"""
from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import numpy as np

from conveyor.processors.models import model_dir
from conveyor.streams.config import env
from conveyor.tools.training.common import DEFAULT_CORPUS as _DEFAULT_CORPUS
from conveyor.tools.training.common import cached_array as _cached
from conveyor.tools.training.common import text_digest as _digest

if TYPE_CHECKING:
    from conveyor.processors.classify.models import OnnxClassifier
    from conveyor.processors.embed.model import MiniLMEmbedder

DEFAULT_CORPUS = _DEFAULT_CORPUS
"""The shared corpus (:data:`conveyor.tools.training.common.DEFAULT_CORPUS`)."""

OTHER_DOMAINS_EXCLUDED = ("banking", "credit_cards")
"""CLINC150 domains left out of the domain-shift stream (they overlap BANKING77's topics)."""


def cache_dir() -> Path:
    """``CONVEYOR_TRAIN_CACHE`` or ``~/.cache/conveyor/train``."""
    return Path(os.environ.get(env.TRAIN_CACHE) or Path.home() / ".cache" / "conveyor" / "train")


def corpus_available(corpus: Path = DEFAULT_CORPUS) -> bool:
    """Whether the text corpora needed by the scenarios are present under ``corpus``."""
    return (corpus / "text_banking77" / "train.csv").is_file() and \
        (corpus / "text_clinc150" / "data_full.json").is_file()


@dataclass
class TextSet:
    """One set of texts: ``texts`` (n), ``intents`` (n, true labels), ``vectors`` (n, 384)
    float32 unit doc vectors, ``predicted`` (n, labels of the intent model)."""

    name: str
    texts: list[str]
    intents: list[str]
    vectors: np.ndarray
    predicted: list[str]

    def __len__(self) -> int:
        return len(self.texts)


class _Embedder:
    """Lazily loaded MiniLM embedder + intent model, shared by the loaders."""

    def __init__(self) -> None:
        self._embedder: Optional[MiniLMEmbedder] = None
        self._classifier: Optional[OnnxClassifier] = None

    @property
    def sha(self) -> str:
        from conveyor.processors.embed.model import MODEL_SHA256

        return MODEL_SHA256

    def embed(self, texts: list[str]) -> np.ndarray:
        from conveyor.processors.embed import embed_texts_as_documents
        from conveyor.processors.embed.model import MiniLMEmbedder

        if self._embedder is None:
            self._embedder = MiniLMEmbedder(intra_op_threads=1)
        return np.asarray(embed_texts_as_documents(self._embedder, texts), dtype=np.float32)

    def predict(self, vectors: np.ndarray) -> list[str]:
        from conveyor.processors.classify.models import OnnxClassifier

        if self._classifier is None:
            self._classifier = OnnxClassifier.load(model_dir("intent-banking77"))
        return list(self._classifier.predict(np.asarray(vectors, dtype=np.float32)))


def _banking77(corpus: Path, split: str) -> tuple[list[str], list[str]]:
    with open(corpus / "text_banking77" / f"{split}.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    return [r["text"] for r in rows], [r["category"] for r in rows]


def _clinc_other_domains(corpus: Path) -> tuple[list[str], list[str]]:
    base = corpus / "text_clinc150"
    domains = json.loads((base / "domains.json").read_text(encoding="utf-8"))
    excluded = {i for d in OTHER_DOMAINS_EXCLUDED for i in domains.get(d, [])}
    rows = json.loads((base / "data_full.json").read_text(encoding="utf-8"))["test"]
    kept = [(t, i) for t, i in rows if i not in excluded]
    return [t for t, _ in kept], [i for _, i in kept]


def _subset(texts: list[str], labels: list[str], n: Optional[int], seed: int) -> tuple[list[str], list[str]]:
    idx = list(range(len(texts)))
    if n is not None and n < len(idx):
        idx = sorted(random.Random(seed).sample(idx, n))
    return [texts[i] for i in idx], [labels[i] for i in idx]


def _text_set(name: str, texts: list[str], labels: list[str], n: Optional[int], seed: int,
              emb: _Embedder, cache: Path, full_tag: Optional[str] = None) -> TextSet:
    """Embed (or load) ``texts``: the full set's ``make models`` cache when it exists, else a
    seeded subset of ``n`` cached as ``drift-<name>-...npy``."""
    full = cache / f"{full_tag}-{emb.sha[:12]}-{_digest(texts)}.npy" if full_tag else None
    if full is not None and full.exists():
        vectors = np.load(full)
        sub_t, sub_l = _subset(texts, labels, n, seed)
        if len(sub_t) < len(texts):
            pos = {t: i for i, t in enumerate(texts)}
            vectors = vectors[[pos[t] for t in sub_t]]
        texts, labels = sub_t, sub_l
    else:
        texts, labels = _subset(texts, labels, n, seed)
        vectors = _cached(cache / f"drift-{name}-{emb.sha[:12]}-{_digest(texts)}.npy", lambda: emb.embed(texts))
    vectors = np.asarray(vectors, dtype=np.float32)
    pred_path = cache / f"drift-{name}-pred-{emb.sha[:12]}-{_digest(texts)}.json"
    if pred_path.exists():
        predicted = json.loads(pred_path.read_text(encoding="utf-8"))
    else:
        predicted = emb.predict(vectors)
        pred_path.parent.mkdir(parents=True, exist_ok=True)
        pred_path.write_text(json.dumps(predicted), encoding="utf-8")
    return TextSet(name, texts, labels, vectors, predicted)


def load_texts(corpus: Path = DEFAULT_CORPUS, *, n_train: Optional[int] = 2000, n_test: Optional[int] = 2000,
               n_other: Optional[int] = 1000, seed: int = 0) -> dict[str, TextSet]:
    """``{"b77_train", "b77_test", "clinc_other"}`` text sets (``n_*`` texts each, seeded
    subsets; None = all), embedded and classified, from the caches where possible.

    Raises:
        FileNotFoundError: the corpus is missing (check :func:`corpus_available` first).
    """
    cache = cache_dir()
    emb = _Embedder()
    train = _text_set("b77-train", *_banking77(corpus, "train"), n_train, seed, emb, cache, "banking77-train")
    test = _text_set("b77-test", *_banking77(corpus, "test"), n_test, seed, emb, cache, "banking77-test")
    other = _text_set("clinc-other", *_clinc_other_domains(corpus), n_other, seed, emb, cache)
    return {"b77_train": train, "b77_test": test, "clinc_other": other}


@dataclass
class Document:
    """One extracted document: ``label`` (receipt / tax_form), ``text_length`` (characters),
    ``ocr_confidence`` ([0, 1] mean over OCR'd pages, None without OCR or unknown),
    ``vector`` (384,) float32 unit doc vector."""

    file: str
    label: str
    text_length: int
    ocr_confidence: Optional[float]
    vector: np.ndarray


def _extract(path: Path, rel: str, label: str, cache: Path, extract: bool) -> Optional[dict]:
    data = path.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    mine = cache / "drift-extract" / f"{sha}.json"
    if mine.exists():
        return json.loads(mine.read_text(encoding="utf-8"))
    if not extract:
        theirs = cache / "doctype-extract" / f"{sha}.json"
        if not theirs.exists():
            return None
        d = json.loads(theirs.read_text(encoding="utf-8"))
        return {"file": rel, "label": label, "text": d["text"], "ocr_confidence": None, "ocr_known": False}
    from conveyor.processors.embed import ocr_confidence
    from conveyor.processors.extract import extract_bytes

    t0 = time.perf_counter()
    out = extract_bytes(data, path.name)
    result = {"file": rel, "label": label, "text": out["text"], "ocr_confidence": ocr_confidence(out["pages"]),
              "ocr_known": True, "page_count": out["page_count"], "seconds": round(time.perf_counter() - t0, 2)}
    mine.parent.mkdir(parents=True, exist_ok=True)
    mine.write_text(json.dumps(result, ensure_ascii=False), encoding="utf-8")
    return result


def load_documents(corpus: Path = DEFAULT_CORPUS, labels: tuple[str, ...] = ("receipt", "tax_form"), *,
                   extract: bool = False) -> list[Document]:
    """Documents of ``labels`` from the shippable corpus folders, extracted (cached) and embedded.

    With ``extract=False`` only cached extractions are used (documents without one are
    skipped); ``extract=True`` runs :func:`conveyor.processors.extract.extract_bytes` (text layer or
    OCR) on the missing ones and caches the result with its OCR confidence.
    """
    from conveyor.tools.training.doc_sources import SHIPPABLE_SOURCES, list_documents

    cache = cache_dir()
    found = []
    with contextlib.redirect_stdout(io.StringIO()):  # it prints skipped duplicates
        listed = list_documents(corpus, SHIPPABLE_SOURCES)
    for doc in listed:
        if doc["label"] not in labels or doc["group"] != doc["rel"]:  # skip near-duplicate re-scans
            continue
        d = _extract(doc["path"], doc["rel"], doc["label"], cache, extract)
        if d is not None and d["text"].strip():
            found.append(d)
    if not found:
        return []
    emb = _Embedder()
    texts = [d["text"] for d in found]
    vectors = _cached(cache / f"drift-docs-{emb.sha[:12]}-{_digest(texts)}.npy", lambda: emb.embed(texts))
    return [Document(d["file"], d["label"], len(d["text"]), d.get("ocr_confidence"),
                     np.asarray(v, dtype=np.float32)) for d, v in zip(found, vectors)]


DEGRADE_SCALE = 0.35
"""Linear scale of the degraded receipt scans (300 dpi flatbed scans -> ~105 dpi)."""
DEGRADE_QUALITY = 40
"""JPEG quality of the degraded receipt scans."""


def degrade(data: bytes, scale: float = DEGRADE_SCALE, quality: int = DEGRADE_QUALITY) -> bytes:
    """An image re-scanned worse: downscaled by ``scale`` (bilinear) and JPEG-encoded at
    ``quality`` - what a scanner set to ~100 dpi and high compression produces."""
    from PIL import Image, ImageOps

    with Image.open(io.BytesIO(data)) as im:
        rgb = ImageOps.exif_transpose(im).convert("RGB")
        small = rgb.resize((max(1, int(rgb.width * scale)), max(1, int(rgb.height * scale))), Image.Resampling.BILINEAR)
        out = io.BytesIO()
        small.save(out, "JPEG", quality=quality)
        return out.getvalue()


def load_degraded_receipts(corpus: Path = DEFAULT_CORPUS, *, extract: bool = False) -> list[Document]:
    """The image receipts of :func:`load_documents`, re-scanned worse (:func:`degrade`) and
    OCR'd again, as :class:`Document` with label ``receipt_lowres`` (cached by the sha256 of
    the degraded bytes; only cached ones unless ``extract``)."""
    from conveyor.tools.training.doc_sources import SHIPPABLE_SOURCES, list_documents

    cache = cache_dir()
    with contextlib.redirect_stdout(io.StringIO()):
        listed = list_documents(corpus, SHIPPABLE_SOURCES)
    found = []
    for doc in listed:
        if doc["label"] != "receipt" or doc["group"] != doc["rel"] or doc["path"].suffix.lower() not in (
                ".jpg", ".jpeg", ".png"):
            continue
        data = degrade(doc["path"].read_bytes())
        path = cache / "drift-degraded" / (hashlib.sha256(data).hexdigest() + ".jpg")
        if not path.exists():
            if not extract:
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        d = _extract(path, doc["rel"] + "#lowres", "receipt_lowres", cache, extract)
        if d is not None and d["text"].strip():
            found.append(d)
    return _embedded_documents(found, "receipt_lowres", "drift-lowres", cache)


def _embedded_documents(found: list[dict], label: str, tag: str, cache: Path) -> list[Document]:
    """``found`` extractions as :class:`Document` with ``label``, embeddings cached under ``tag``."""
    if not found:
        return []
    emb = _Embedder()
    texts = [d["text"] for d in found]
    vectors = _cached(cache / f"{tag}-{emb.sha[:12]}-{_digest(texts)}.npy", lambda: emb.embed(texts))
    return [Document(d["file"], label, len(d["text"]), d.get("ocr_confidence"),
                     np.asarray(v, dtype=np.float32)) for d, v in zip(found, vectors)]


def load_sroie(corpus: Path = DEFAULT_CORPUS, limit: Optional[int] = 20, *, extract: bool = False) -> list[Document]:
    """Up to ``limit`` SROIE receipts (scanned Malaysian receipts, read-only corpus folder:
    never shipped) as :class:`Document` with label ``receipt_sroie``; like
    :func:`load_documents`, only cached extractions unless ``extract``."""
    cache = cache_dir()
    found = []
    for path in sorted((corpus / "sroie" / "img").glob("*.jpg"))[:limit]:
        d = _extract(path, path.relative_to(corpus).as_posix(), "receipt_sroie", cache, extract)
        if d is not None and d["text"].strip():
            found.append(d)
    return _embedded_documents(found, "receipt_sroie", "drift-sroie", cache)


if __name__ == "__main__":  # warm the caches: python -m conveyor.tools.drift_validation.corpus [--extract]
    import sys

    t = time.perf_counter()
    sets = load_texts(n_train=None, n_test=None, n_other=None)
    print({k: len(v) for k, v in sets.items()}, f"{time.perf_counter() - t:.1f}s", flush=True)
    docs = load_documents(extract="--extract" in sys.argv)
    print({lab: sum(d.label == lab for d in docs) for lab in ("receipt", "tax_form")},
          "with OCR confidence:", sum(d.ocr_confidence is not None for d in docs), f"{time.perf_counter() - t:.1f}s",
          flush=True)
    sroie = load_sroie(extract="--extract" in sys.argv)
    print({"receipt_sroie": len(sroie)}, f"{time.perf_counter() - t:.1f}s", flush=True)
    lowres = load_degraded_receipts(extract="--extract" in sys.argv)
    print({"receipt_lowres": len(lowres)}, "with OCR confidence:", sum(d.ocr_confidence is not None for d in lowres),
          f"{time.perf_counter() - t:.1f}s")
