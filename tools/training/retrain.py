"""Retrain the document-type model from reviewers' feedback, behind a gate.

``conveyor models retrain doctype`` reads the namespace's ``feedback`` topic (the newest
``accept`` or ``correct`` decision per document answering the ``doctype`` model) and, for those
documents, their extracted text from the ``extracted`` topic. A *recipe* is the shipped training
set (the shippable corpus sources, :mod:`conveyor.tools.training.doc_sources`, and the built
datasets when ``make datasets`` has run, as the shipped model learned from them) plus a set of
feedback documents; the live model's recipe holds the feedback it was trained on (none for the
shipped model, ``training_data.feedback`` of a promoted candidate), the candidate's holds all of
it. Both recipes are scored on the same **held-out evaluation**, per source:

* each read-only corpus source (Mindee, CMS-1500: never trained on), by the recipe's
  model fitted on everything it trains on (a feedback document byte-identical to a corpus file
  is evaluated with the feedback, not twice);
* ``feedback``: the feedback documents in :data:`FOLDS` folds (by doc id), each fold scored by
  the recipe fitted without that fold, against the reviewers' labels.

The candidate is **promoted** only if its mean log loss over those sources is lower than the
live recipe's (:func:`gate`), no source has fewer documents right than under the live recipe, and
it meets the live manifest's floors (grouped CV over its training set; the leave-one-source-out
mean over each source's documents of types another source teaches, documents also in the feedback
left out), and it can name every type the live model names (a recipe without the datasets cannot
name contracts, credit notes or purchase orders). Otherwise it is **rejected**. Either way it is kept in the
model registry (:class:`conveyor.streams.ops.model_registry.ModelRegistry`) with its report; the
promotion or rejection is recorded with who and when. The out-of-scope threshold and the
auto-routing decision are the live model's (chosen on the corpus; feedback does not move them).
"""
from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

import click
import numpy as np

from conveyor.streams.config.settings import Settings
from conveyor.streams.ops.feedback.reader import input_texts, labelled_decisions
from conveyor.streams.ops.model_registry import ModelRegistry
from conveyor.tools.training.common import DEFAULT_CACHE_DIR, DEFAULT_CORPUS, check_limits, library_versions
from conveyor.tools.training.doc_sources import LABELS, all_documents
from conveyor.tools.training.doctype_loso import label_proba

MODEL_NAME = "doctype"
FOLDS = 5
"""Folds of the feedback documents in the held-out evaluation."""


def feedback_examples(settings: Settings, model_name: str = MODEL_NAME) -> tuple[list[dict], dict[str, int]]:
    """The newest ``accept``/``correct`` decision per doc id answering ``model_name``, with the
    document's extracted text: ``([{"doc_id", "label", "action", "reviewer", "text", "sha256"}],
    counts of decisions left out by reason)``. Examples are sorted by doc id."""
    decided, skipped = labelled_decisions(settings, model_name)
    newest = {k: fb for k, fb in decided.items() if fb["label"] in LABELS}
    skipped = {**skipped, "label unknown to the model": len(decided) - len(newest), "no extracted text": 0}
    texts = input_texts(settings, newest, ("extracted",))
    out = []
    for doc_id in sorted(newest):
        if doc_id not in texts:
            skipped["no extracted text"] += 1
            continue
        fb, ex = newest[doc_id], texts[doc_id]
        out.append({"doc_id": doc_id, "label": fb["label"], "action": fb["action"], "reviewer": fb["reviewer"],
                    "text": ex["text"], "sha256": ex["sha256"]})
    return out, skipped


def _make(seed: int = 0, C: float = 10.0):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=C, class_weight="balanced", max_iter=5000, random_state=seed)


def _features(texts: Sequence[str], embedder, cache: Optional[Path] = None) -> np.ndarray:
    """``(n, 384 + cues)``: the doc vector and the function cues of each text, as classify reads them."""
    from conveyor.processors.classify.doc_cues import texts_cue_matrix
    from conveyor.processors.embed import embed_texts_as_documents
    from conveyor.tools.training.common import cached_array, text_digest

    if cache is not None:
        emb = cached_array(cache / f"doctype-X-{embedder.sha256[:12]}-{text_digest(list(texts))}.npy",
                           lambda: embed_texts_as_documents(embedder, list(texts)))
    else:
        emb = embed_texts_as_documents(embedder, list(texts))
    return np.hstack([emb, texts_cue_matrix(list(texts), embedder.tokenizer)])


def _mean(rows: Sequence[dict[str, Any]], key: str) -> float | None:
    """Mean of ``key`` over held-out rows (:meth:`Evaluation.held_out`), rounded to 4 places for the
    report; None without rows."""
    return round(float(np.mean([r[key] for r in rows])), 4) if rows else None


def _score(source: str, proba: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """One held-out row: right count, accuracy and mean log loss of ``proba`` against ``y``."""
    right = int((proba.argmax(1) == y).sum())
    log_loss = float(-np.log(np.clip(proba[np.arange(len(y)), y], 1e-6, 1.0)).mean())
    return {"source": source, "documents": len(y), "right": right, "accuracy": round(right / len(y), 4),
            "log_loss": round(log_loss, 4)}


class Evaluation:
    """The corpus and feedback features, and the held-out scores of a recipe.

    Args:
        docs: corpus and dataset documents (:func:`all_documents` after extraction) with ``label``,
            ``source``, ``shippable``, ``sha256``, ``group``.
        X: their features ``(n, d)``.
        feedback: feedback examples (:func:`feedback_examples`), ``Xf`` their features.
        C: the LogisticRegression's inverse regularisation, the live model's (its manifest's
            ``estimator.params.C``), so that a candidate differs from it by its data only.
    """

    def __init__(self, docs: list[dict], X: np.ndarray, feedback: list[dict], Xf: np.ndarray, C: float = 10.0):
        self.docs, self.X, self.feedback, self.Xf, self.C = docs, X, feedback, Xf, C
        self.y = np.array([LABELS.index(d["label"]) if d["label"] in LABELS else -1 for d in docs])
        self.yf = np.array([LABELS.index(f["label"]) for f in feedback], dtype=int)
        fb_shas = {f["sha256"] for f in feedback}
        self.in_feedback = np.array([d["sha256"] in fb_shas for d in docs])
        self.train = np.array([d["shippable"] for d in docs]) & (self.y >= 0) & ~self.in_feedback
        self.fold = np.arange(len(feedback)) % FOLDS

    def _training_set(self, fb_idx: np.ndarray, recipe: dict[str, str],
                      extra_mask: Optional[np.ndarray] = None) -> tuple[np.ndarray, np.ndarray]:
        """``(X, y)``: the training corpus (``& extra_mask``) plus the feedback rows ``fb_idx``,
        labelled as ``recipe`` says."""
        train = self.train if extra_mask is None else self.train & extra_mask
        fb_y = [LABELS.index(recipe[self.feedback[i]["doc_id"]]) for i in fb_idx]
        return (np.vstack([self.X[train], self.Xf[fb_idx]]),
                np.concatenate([self.y[train], np.array(fb_y, dtype=int)]))

    def _fit(self, fb_idx: np.ndarray, recipe: dict[str, str], extra_mask: Optional[np.ndarray] = None):
        """``(classifier, X, y)`` fitted on :meth:`_training_set`."""
        X, y = self._training_set(fb_idx, recipe, extra_mask)
        return _make(C=self.C).fit(X, y), X, y

    def held_out(self, recipe: dict[str, str]) -> list[dict[str, Any]]:
        """Per held-out source ``{"source", "documents", "right", "accuracy", "log_loss"}`` of the
        recipe whose feedback set is ``recipe`` (doc id -> the label it trains with); scored against
        the corpus labels and the reviewers' current labels. ``log_loss``: the mean of
        ``-ln p(true label)`` (p clipped at 1e-6), a proper scoring rule."""
        in_recipe = np.array([f["doc_id"] in recipe for f in self.feedback], dtype=bool)
        rows = []
        clf, _, _ = self._fit(np.where(in_recipe)[0], recipe)
        for source in sorted({d["source"] for d in self.docs if not d["shippable"]}):
            idx = np.array([i for i, d in enumerate(self.docs)
                            if d["source"] == source and self.y[i] >= 0 and not self.in_feedback[i]], dtype=int)
            if len(idx) == 0:
                continue
            rows.append(_score(source, label_proba(clf, self.X[idx]), self.y[idx]))
        if len(self.feedback):
            proba = np.zeros((len(self.feedback), len(LABELS)))
            for f in range(FOLDS):
                held = np.where(self.fold == f)[0]
                if len(held) == 0:
                    continue
                clf, _, _ = self._fit(np.where(in_recipe & (self.fold != f))[0], recipe)
                proba[held] = label_proba(clf, self.Xf[held])
            rows.append(_score("feedback", proba, self.yf))
        return rows

    def floors_metrics(self, recipe: dict[str, str]) -> dict[str, float]:
        """``cv_accuracy``, ``cv_macro_f1`` (grouped cross-validation over the training set, as
        :func:`conveyor.tools.training.doctype_loso.grouped_cv` folds it; each feedback document its
        own group) and ``loso_mean_accuracy`` (the mean accuracy on each corpus source left out of the
        corpus part of the training set, over its documents of types another source teaches, as the
        live manifest's figure; documents also in the feedback are not tested) of the recipe."""
        from sklearn.model_selection import GroupKFold, LeaveOneGroupOut

        from conveyor.tools.training.doctype_loso import CV_FOLDS, macro_f1

        fb = np.array([i for i, f in enumerate(self.feedback) if f["doc_id"] in recipe], dtype=int)
        X, y = self._training_set(fb, recipe)
        groups = np.array([d["group"] for d, t in zip(self.docs, self.train) if t]
                          + [f"feedback:{self.feedback[i]['doc_id']}" for i in fb])
        splitter = GroupKFold(n_splits=CV_FOLDS) if len(set(groups)) > CV_FOLDS else LeaveOneGroupOut()
        pred = np.zeros(len(y), dtype=int)
        for tr, te in splitter.split(X, y, groups):
            clf = _make(C=self.C).fit(X[tr], y[tr])
            pred[te] = clf.classes_[clf.predict_proba(X[te]).argmax(1)]
        accs = []
        for source in sorted({d["source"] for d in self.docs}):
            outside = np.array([d["source"] != source for d in self.docs])
            taught = set(self.y[self.train & outside].tolist()) | set(self.yf[fb].tolist())
            idx = np.array([i for i, d in enumerate(self.docs) if d["source"] == source and self.y[i] in taught
                            and not self.in_feedback[i]], dtype=int)
            if len(idx) == 0:
                continue
            clf, _, _ = self._fit(fb, recipe, outside)
            accs.append(float((clf.classes_[clf.predict_proba(self.X[idx]).argmax(1)] == self.y[idx]).mean()))
        return {"cv_accuracy": round(float((pred == y).mean()), 4),
                "cv_macro_f1": round(macro_f1(y, pred), 4),
                "loso_mean_accuracy": round(float(np.mean(accs)), 4) if accs else 0.0}


def gate(live_rows: list[dict], candidate_rows: list[dict], metrics: dict[str, float],
         floors: dict[str, float], lost_types: Sequence[str] = ()) -> tuple[str, list[str]]:
    """``("promoted" | "rejected", reasons)``: promoted when the candidate's mean held-out log loss
    is lower than the live recipe's, no source has fewer documents right, the floors hold, and it can
    name every type the live model names (``lost_types``: those it cannot, its training set holding
    none, e.g. without the built datasets).

    Log loss, not accuracy, decides "better": it is a proper scoring rule (Gneiting & Raftery
    2007), so reviewers' confirmations that make the model surer of the right type count, where
    the count of right documents cannot see them; the right counts still guard every source.
    """
    live = {r["source"]: r for r in live_rows}
    reasons = []
    loss_live = float(np.mean([r["log_loss"] for r in live_rows])) if live_rows else 0.0
    loss_cand = float(np.mean([r["log_loss"] for r in candidate_rows])) if candidate_rows else 0.0
    if not loss_cand < loss_live:
        reasons.append(f"does not beat the live model: mean held-out log loss {loss_cand:.4f} vs {loss_live:.4f}")
    for r in candidate_rows:
        if r["right"] < live[r["source"]]["right"]:
            reasons.append(f"worse on {r['source']}: {r['right']}/{r['documents']} right, live "
                           f"{live[r['source']]['right']}/{r['documents']}")
    reasons += check_limits(metrics, floors)
    if lost_types:
        reasons.append(f"cannot name {', '.join(lost_types)}, which the live model names: no training document "
                       "of them (the datasets not built? make datasets)")
    return ("rejected" if reasons else "promoted"), reasons


def build_candidate(ev: Evaluation, live_dir: Path, staging: Path) -> dict:
    """Fit the candidate on the shippable corpus and every feedback document, export it
    (ONNX, the live model's out-of-scope threshold and routing) into ``staging``; returns its manifest."""
    from conveyor.processors.classify.models import OnnxClassifier
    from conveyor.tools.training.common import write_manifest
    from conveyor.tools.training.train_doctype import export_onnx_with_ood

    clf, X, y = ev._fit(np.arange(len(ev.feedback)), {f["doc_id"]: f["label"] for f in ev.feedback})
    sha = export_onnx_with_ood(clf, X, y, staging)
    live = json.loads((live_dir / "manifest.json").read_text())
    manifest = {**live, "sha256": sha, "labels": [LABELS[int(c)] for c in clf.classes_],
                "version": f"{live['version'].split('+')[0]}+feedback.{len(ev.feedback)}",
                "training_data": {**live["training_data"],
                                  "feedback": [{"doc_id": f["doc_id"], "label": f["label"], "sha256": f["sha256"]}
                                               for f in ev.feedback],
                                  "description": live["training_data"]["description"]
                                  + "; plus reviewers' labels from the feedback topic (conveyor models retrain)"},
                "training_command": "conveyor models retrain doctype", "created_with": library_versions()}
    write_manifest(staging, manifest)
    if (live_dir / "NOTICE").is_file():
        (staging / "NOTICE").write_text((live_dir / "NOTICE").read_text()
                                        + "\nRetrained with the deploying team's own reviewed documents "
                                          "(feedback topic); none is included here.\n")
    diff = float(np.abs(OnnxClassifier.load(staging).predict_proba(X.astype(np.float32)) - clf.predict_proba(X)).max())
    if diff > 1e-3:
        raise RuntimeError(f"ONNX export does not reproduce the fitted model (max |dp| = {diff:.2e})")
    return manifest


def retrain(settings: Settings, *, corpus: Path = DEFAULT_CORPUS, cache_dir: Path = DEFAULT_CACHE_DIR,
            feedback: Optional[list[dict]] = None, promote: bool = True,
            datasets: Optional[Path] = None) -> dict[str, Any]:
    """Train a candidate from the corpus and the feedback, gate it, keep it in the registry,
    promote it when the gate passes (and ``promote``); returns the report.

    ``feedback`` replaces the topic's examples (same shape as :func:`feedback_examples`).

    Raises:
        SystemExit: a corpus document matches no label rule (:func:`all_documents`).
        RuntimeError: the ONNX export does not reproduce the fitted model.
    """
    from conveyor.processors.embed.model import MiniLMEmbedder
    from conveyor.tools.training.train_doctype import load_texts

    t0 = time.perf_counter()
    skipped: dict[str, int] = {}
    if feedback is None:
        feedback, skipped = feedback_examples(settings)
    registry = ModelRegistry.of(settings)
    live = registry.live(MODEL_NAME)
    live_manifest = json.loads((Path(live["dir"]) / "manifest.json").read_text())
    live_recipe = {f["doc_id"]: f["label"] for f in (live_manifest.get("training_data") or {}).get("feedback", [])}
    docs, texts, _ = load_texts(all_documents(corpus, datasets))
    embedder = MiniLMEmbedder(intra_op_threads=2)
    X = _features(texts, embedder, cache_dir)
    Xf = _features([f["text"] for f in feedback], embedder) if feedback else np.zeros((0, X.shape[1]))
    C = float(((live_manifest.get("estimator") or {}).get("params") or {}).get("C", 10.0))
    ev = Evaluation(docs, X, feedback, Xf, C=C)
    candidate_recipe = {f["doc_id"]: f["label"] for f in feedback}
    live_rows, cand_rows = ev.held_out(live_recipe), ev.held_out(candidate_recipe)
    metrics = ev.floors_metrics(candidate_recipe)
    floors = {k: float(v) for k, v in (live_manifest.get("metric_floors") or {}).items()}
    taught = {d["label"] for d in docs if d["shippable"]} | {f["label"] for f in feedback}
    lost = [label for label in live_manifest.get("labels", []) if label not in taught]
    decision, reasons = gate(live_rows, cand_rows, metrics, floors, lost)
    staging = cache_dir / "candidates" / f"{MODEL_NAME}-retrain"
    manifest = build_candidate(ev, Path(live["dir"]), staging)
    by_label: dict[str, int] = {}
    for f in feedback:
        by_label[f["label"]] = by_label.get(f["label"], 0) + 1
    report = {
        "model": MODEL_NAME, "decision": decision, "reasons": reasons, "candidate_sha256": manifest["sha256"],
        "candidate_version": manifest["version"], "live_sha256": live["sha256"], "live_candidate": live["candidate"],
        "feedback": {"documents": len(feedback), "by_label": by_label,
                     "corrections": sum(1 for f in feedback if f["action"] == "correct"), "left_out": skipped},
        "held_out": {"rule": "read-only corpus sources by the recipe's model; feedback in "
                             f"{FOLDS} folds, each scored by the recipe fitted without it",
                     "per_source": [{"source": c["source"], "documents": c["documents"], "live_right": lv["right"],
                                     "candidate_right": c["right"], "live_accuracy": lv["accuracy"],
                                     "candidate_accuracy": c["accuracy"], "live_log_loss": lv["log_loss"],
                                     "candidate_log_loss": c["log_loss"]} for lv, c in zip(live_rows, cand_rows)],
                     "live_mean": _mean(live_rows, "accuracy"), "candidate_mean": _mean(cand_rows, "accuracy"),
                     "live_mean_log_loss": _mean(live_rows, "log_loss"),
                     "candidate_mean_log_loss": _mean(cand_rows, "log_loss")},
        "floors": floors, "candidate_metrics": metrics, "seconds": round(time.perf_counter() - t0, 1),
    }
    folder = registry.add_candidate(MODEL_NAME, staging, report)
    report["candidate"] = folder.name
    if decision == "promoted" and promote:
        registry.promote(MODEL_NAME, folder.name, reason="gate passed: " + json.dumps(
            {k: report["held_out"][k] for k in ("live_mean", "candidate_mean", "live_mean_log_loss",
                                                "candidate_mean_log_loss")}))
    return report


@click.command("retrain")
@click.argument("name", type=click.Choice([MODEL_NAME]))
@click.option("--corpus", type=click.Path(path_type=Path, file_okay=False), default=DEFAULT_CORPUS, show_default=True)
@click.option("--no-promote", is_flag=True, help="Gate and keep the candidate, but leave the live model as it is.")
def retrain_command(name: str, corpus: Path, no_promote: bool) -> None:
    """Train a NAME candidate from the corpus plus the namespace's feedback; promote it only if
    it beats the live model on the held-out evaluation (lower mean log loss, no source with fewer right)
    and meets the floors (report as JSON)."""
    from conveyor.streams.cli.common import kafka_settings

    report = retrain(kafka_settings(), corpus=corpus, promote=not no_promote)
    click.echo(json.dumps(report, indent=2))
