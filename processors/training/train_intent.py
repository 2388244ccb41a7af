"""Train the banking77 intent classifier shipped as ``processors/models/intent-banking77``.

Data: banking77 (PolyAI-LDN/task-specific-datasets ``banking_data``, CC-BY-4.0),
read from ``<corpus>/text_banking77/{train,test}.csv`` (``text,category``).

Features: the doc vector :class:`processors.embed.EmbedProcessor` produces for a
text (L2-normalised mean of chunk embeddings of all-MiniLM-L6-v2 int8; for these
short queries, the single chunk's embedding). Embeddings are cached as .npy files
under ``~/.cache/conveyor/train`` (``CONVEYOR_TRAIN_CACHE``), keyed by the
embedding model's sha256 and the texts, so re-runs skip the embedding.

Model: multinomial LogisticRegression; C is chosen on a stratified validation
split (10 %) carved from train.csv, then the model is refitted on all of
train.csv and evaluated once on test.csv. The auto-routing threshold is the
lowest confidence at which the validation predictions reach the target
precision. Exported with skl2onnx (zipmap off).

Run::

    python -m processors.training.train_intent [--corpus ../shared/corpus]
"""
from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import numpy as np

from processors.training.common import (
    DEFAULT_CACHE_DIR,
    DEFAULT_CORPUS,
    MODELS_DIR,
    cached_array,
    export_onnx,
    floor_metric,
    library_versions,
    text_digest,
    write_manifest,
)

MODEL_NAME = "intent-banking77"
MODEL_VERSION = "1.0.0"
DEFAULT_C_GRID = (1.0, 3.0, 10.0, 30.0, 100.0)
THRESHOLD_GRID = tuple(round(x, 2) for x in np.arange(0.30, 0.96, 0.05))


def read_csv(path: Path) -> tuple[list[str], list[str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    return [r["text"] for r in rows], [r["category"] for r in rows]


def embed_cached(embedder, texts: list[str], cache_dir: Path, tag: str) -> np.ndarray:
    from processors.embed import embed_texts_as_documents

    path = cache_dir / f"{tag}-{embedder.sha256[:12]}-{text_digest(texts)}.npy"

    def compute() -> np.ndarray:
        t0 = time.perf_counter()
        X = embed_texts_as_documents(embedder, texts)
        dt = time.perf_counter() - t0
        print(f"  embedded {len(texts)} texts in {dt:.1f}s ({len(texts) / dt:.0f} texts/s)", flush=True)
        return X

    if path.exists():
        print(f"  cached embeddings: {path}", flush=True)
    return cached_array(path, compute)


def choose_threshold(conf: np.ndarray, correct: np.ndarray, target: float) -> tuple[float, list[dict]]:
    """Lowest grid threshold whose auto-routed share has accuracy ≥ target."""
    table = []
    chosen = None
    for t in THRESHOLD_GRID:
        sel = conf >= t
        cov = float(sel.mean())
        acc = float(correct[sel].mean()) if sel.any() else 1.0
        table.append({"threshold": t, "coverage": round(cov, 4), "accuracy": round(acc, 4)})
        if chosen is None and acc >= target:
            chosen = t
    return (chosen if chosen is not None else THRESHOLD_GRID[-1]), table


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    ap.add_argument("--out", type=Path, default=MODELS_DIR / MODEL_NAME)
    ap.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--c-grid", type=lambda s: [float(x) for x in s.split(",")], default=list(DEFAULT_C_GRID))
    ap.add_argument("--val-size", type=float, default=0.1)
    ap.add_argument("--target-precision", type=float, default=0.95,
                    help="accuracy the auto-routed share must reach on validation")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)

    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.model_selection import train_test_split

    from processors.classify.models import OnnxClassifier
    from processors.embed.model import MiniLMEmbedder

    t_start = time.perf_counter()
    data_dir = args.corpus / "text_banking77"
    train_texts, train_cats = read_csv(data_dir / "train.csv")
    test_texts, test_cats = read_csv(data_dir / "test.csv")
    labels = json.loads((data_dir / "categories.json").read_text())
    if set(labels) != set(train_cats) or not set(test_cats) <= set(labels):
        raise SystemExit("categories.json does not match the labels in train/test.csv")
    index = {c: i for i, c in enumerate(labels)}
    y_train = np.array([index[c] for c in train_cats])
    y_test = np.array([index[c] for c in test_cats])
    print(f"banking77: {len(train_texts)} train, {len(test_texts)} test, {len(labels)} intents", flush=True)

    embedder = MiniLMEmbedder(intra_op_threads=args.threads, batch_size=32)
    t0 = time.perf_counter()
    X_train = embed_cached(embedder, train_texts, args.cache_dir, "banking77-train")
    X_test = embed_cached(embedder, test_texts, args.cache_dir, "banking77-test")
    t_embed = time.perf_counter() - t0

    # --- choose C on a validation split carved from train
    t0 = time.perf_counter()
    X_fit, X_val, y_fit, y_val = train_test_split(
        X_train, y_train, test_size=args.val_size, stratify=y_train, random_state=args.seed
    )
    val_scores: dict[str, float] = {}
    best = None
    for C in args.c_grid:
        clf = LogisticRegression(C=C, max_iter=3000, random_state=args.seed)
        clf.fit(X_fit, y_fit)
        proba = clf.predict_proba(X_val)
        acc = accuracy_score(y_val, proba.argmax(1))
        val_scores[str(C)] = round(float(acc), 4)
        print(f"  C={C:<6g} val accuracy {acc:.4f}", flush=True)
        if best is None or acc > best[1]:
            best = (C, acc, proba)
    best_C, best_val_acc, val_proba = best
    conf_val = val_proba.max(1)
    threshold, threshold_table = choose_threshold(conf_val, val_proba.argmax(1) == y_val, args.target_precision)

    # --- refit on all of train, evaluate on test
    clf = LogisticRegression(C=best_C, max_iter=3000, random_state=args.seed)
    clf.fit(X_train, y_train)
    t_train = time.perf_counter() - t0
    test_proba = clf.predict_proba(X_test)
    pred = test_proba.argmax(1)
    test_acc = float(accuracy_score(y_test, pred))
    test_f1 = float(f1_score(y_test, pred, average="macro"))
    auto = test_proba.max(1) >= threshold
    auto_cov = float(auto.mean())
    auto_acc = float((pred[auto] == y_test[auto]).mean()) if auto.any() else 1.0
    print(f"  best C={best_C} (val {best_val_acc:.4f}); test accuracy {test_acc:.4f}, macro-F1 {test_f1:.4f}")
    print(f"  auto_threshold {threshold}: test coverage {auto_cov:.3f}, accuracy of auto share {auto_acc:.4f}")

    # --- export, then check the ONNX model reproduces sklearn
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    data = export_onnx(clf, X_train.shape[1], out / "model.onnx", graph_name="intent_banking77")
    import hashlib

    sha = hashlib.sha256(data).hexdigest()
    manifest = {
        "name": MODEL_NAME,
        "version": MODEL_VERSION,
        "task": "intent classification of short customer-service texts (kind 'text')",
        "kind": "text",
        "sha256": sha,
        "labels": labels,
        "input": {"name": "embedding", "dim": int(X_train.shape[1]), "features": "Embedded.doc_vector"},
        "auto_threshold": threshold,
        "auto_threshold_rule": (
            f"lowest threshold in {THRESHOLD_GRID[0]}..{THRESHOLD_GRID[-1]} (step 0.05) whose auto-routed "
            f"validation predictions reach accuracy >= {args.target_precision}"
        ),
        "training_data": (
            "banking77 (Casanueva et al. 2020), PolyAI-LDN/task-specific-datasets banking_data: "
            f"train.csv ({len(train_texts)} texts; {len(X_fit)} fit / {len(X_val)} validation for choosing C), "
            f"test.csv ({len(test_texts)} texts, held out)"
        ),
        "training_data_licence": "CC-BY-4.0",
        "training_command": "python -m processors.training.train_intent --corpus ../shared/corpus",
        "estimator": {
            "type": "sklearn.linear_model.LogisticRegression",
            "params": {"C": best_C, "max_iter": 3000, "random_state": args.seed},
            "validation_accuracy_by_C": val_scores,
        },
        "metrics": {
            "test_accuracy": round(test_acc, 4),
            "test_macro_f1": round(test_f1, 4),
            "validation_accuracy": round(float(best_val_acc), 4),
            "test_auto_coverage": round(auto_cov, 4),
            "test_auto_accuracy": round(auto_acc, 4),
            "validation_threshold_table": threshold_table,
        },
        "metric_floors": {
            "test_accuracy": floor_metric(test_acc),
            "test_macro_f1": floor_metric(test_f1),
        },
        "embedding_model": embedder.describe(),
        "created_with": library_versions(),
        "seed": args.seed,
    }
    write_manifest(out, manifest)
    (out / "NOTICE").write_text(NOTICE, encoding="utf-8")
    onnx_clf = OnnxClassifier.load(out)
    onnx_proba = onnx_clf.predict_proba(X_test)
    diff = float(np.abs(onnx_proba - test_proba).max())
    onnx_acc = float((onnx_proba.argmax(1) == y_test).mean())
    print(f"  ONNX: max |p_onnx - p_sklearn| = {diff:.2e}, test accuracy {onnx_acc:.4f}")
    if onnx_acc + 1e-3 < test_acc:
        raise SystemExit("ONNX export does not reproduce the sklearn model")
    total = time.perf_counter() - t_start
    print(f"wrote {out}/model.onnx ({len(data)} bytes, sha256 {sha[:12]}…) and manifest.json")
    print(f"time: embedding {t_embed:.1f}s, model selection + fit {t_train:.1f}s, total {total:.1f}s")
    return manifest


NOTICE = """\
intent-banking77 — intent classifier (LogisticRegression over all-MiniLM-L6-v2 embeddings).

Trained on BANKING77 (Casanueva, Temcinas, Gerz, Henderson, Vulic: "Efficient Intent
Detection with Dual Sentence Encoders", 2020), PolyAI-LDN/task-specific-datasets,
banking_data — https://github.com/PolyAI-LDN/task-specific-datasets
Licensed under CC-BY-4.0 (https://creativecommons.org/licenses/by/4.0/).
The intent names in manifest.json are the dataset's categories; no texts are included.
The embedding model (not included) is sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0).
"""


if __name__ == "__main__":
    main()
