"""Leave-one-source-out evaluation of the document-type model (issue 10's aims).

For every source ``S`` of :mod:`conveyor.tools.training.doc_sources` a model is trained on the
*shippable* sources other than ``S`` (the shipped model's own regime: read-only sets are never
trained on) and tested on ``S``; a read-only source is thus scored by a model trained on every
shippable source, exactly the shipped one. Several feature sets are compared, so that each cue
group of :mod:`conveyor.processors.classify.doc_cues` shows what it adds (a set without it).
Auto-routing thresholds are chosen per predicted type on the out-of-source predictions
(:func:`auto_routing_per_type`: Wilson lower bound, as for the intent model); a type without
enough evidence stays on review.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from conveyor.processors.classify.doc_cues import CUE_NAMES
from conveyor.processors.classify.routing import WILSON_Z, choose_auto_threshold
from conveyor.tools.training.doc_sources import LABELS

#: Inverse regularisation strengths of the LogisticRegression compared by :func:`select_C`.
C_GRID = (0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
#: Aims of issue 10: accuracy on each left-out source; precision of the auto-routed share
#: (Wilson lower bound, one-sided 95 %, as for the intent model).
SOURCE_ACCURACY_AIM = 0.90
AUTO_PRECISION_AIM = 0.98


def feature_sets(emb: np.ndarray, cues: np.ndarray) -> dict[str, np.ndarray]:
    """Named feature matrices ``(n, d)``: the embedding, cues, both, and both less one cue."""
    sets = {"embedding": emb, "cues": cues, "embedding+cues": np.hstack([emb, cues])}
    for j, name in enumerate(CUE_NAMES):
        sets[f"embedding+cues-{name}"] = np.hstack([emb, np.delete(cues, j, axis=1)])
    return sets


def label_proba(clf: Any, X: np.ndarray) -> np.ndarray:
    """``(n, len(LABELS))`` probabilities of a fitted classifier over every label; a label it was
    not fitted on (absent from ``clf.classes_``) gets 0."""
    out = np.zeros((len(X), len(LABELS)))
    out[:, clf.classes_] = clf.predict_proba(X)
    return out


def out_of_source(X: np.ndarray, docs: Sequence[dict[str, Any]], make: Callable[[], Any]) -> np.ndarray:
    """Probabilities ``(n, len(LABELS))`` of each document by a model that never saw its source.

    The model for source ``S`` is fitted on the shippable documents outside ``S``.
    """
    sources = [d["source"] for d in docs]
    train_ok = np.array([d["shippable"] and d["label"] in LABELS for d in docs])
    y = np.array([LABELS.index(d["label"]) if d["label"] in LABELS else -1 for d in docs])
    proba = np.zeros((len(docs), len(LABELS)))
    for src in sorted(set(sources)):
        test = np.array([s == src for s in sources])
        train = train_ok & ~test
        clf = make().fit(X[train], y[train])
        proba[test] = label_proba(clf, X[test])
    return proba


def out_of_source_distances(X: np.ndarray, docs: Sequence[dict[str, Any]]) -> np.ndarray:
    """Out-of-scope scores ``(n,)`` (squared Mahalanobis distance to the nearest type mean,
    :class:`conveyor.processors.classify.ood.MahalanobisScorer`) of each document, the scorer
    fitted like :func:`out_of_source`'s models: on the shippable documents outside its source."""
    from conveyor.processors.classify.ood import MahalanobisScorer

    sources = [d["source"] for d in docs]
    train_ok = np.array([d["shippable"] and d["label"] in LABELS for d in docs])
    y = np.array([LABELS.index(d["label"]) if d["label"] in LABELS else -1 for d in docs])
    dist = np.zeros(len(docs))
    for src in sorted(set(sources)):
        test = np.array([s == src for s in sources])
        train = train_ok & ~test
        present = sorted(set(y[train].tolist()))  # a left-out source may take a type's only documents
        remap = {c: i for i, c in enumerate(present)}
        scorer = MahalanobisScorer.fit(X[train], np.array([remap[c] for c in y[train]]), len(present))
        dist[test] = scorer.score(X[test])
    return dist


def per_source(proba: np.ndarray, docs: Sequence[dict[str, Any]], threshold: float | dict[str, float | None] | None,
               ood_flags: Sequence[bool] | np.ndarray | None = None) -> list[dict]:
    """One row per source: documents, accuracy (aim met?), the auto-routed share at ``threshold``
    (one for every type, or ``{type: threshold or None}``; None: auto disabled) with its precision,
    documents flagged out of scope (``ood_flags``, one per document, or None); plus the errors.

    ``taught_accuracy`` is the accuracy over the source's documents whose type some *other* shippable
    source teaches (``taught``: their count): with the source left out, a type no other source holds
    (Kleister's contracts, most forms) cannot be named, so ``accuracy`` mixes what the model failed
    to generalise with what it was never shown."""
    rows = []
    pred = proba.argmax(1)
    conf = proba.max(1)

    def auto_at(i: int) -> bool:
        t = threshold.get(LABELS[pred[i]]) if isinstance(threshold, dict) else threshold
        return t is not None and conf[i] >= t

    for src in sorted({d["source"] for d in docs}, key=lambda s: [d["source"] for d in docs].index(s)):
        idx = [i for i, d in enumerate(docs) if d["source"] == src]
        right = [LABELS[pred[i]] == docs[i]["label"] for i in idx]
        auto = [i for i in idx if auto_at(i)]
        auto_right = sum(LABELS[pred[i]] == docs[i]["label"] for i in auto)
        acc = sum(right) / len(idx)
        taught_labels = {d["label"] for d in docs if d["shippable"] and d["source"] != src}
        taught = [ok for i, ok in zip(idx, right) if docs[i]["label"] in taught_labels]
        rows.append({
            "source": src, "shippable": docs[idx[0]]["shippable"], "documents": len(idx),
            "labels": dict(sorted({d: sum(docs[i]["label"] == d for i in idx) for d in
                                   {docs[i]["label"] for i in idx}}.items())),
            "accuracy": round(acc, 4), "aim": SOURCE_ACCURACY_AIM, "met": acc >= SOURCE_ACCURACY_AIM,
            "taught": len(taught), "taught_accuracy": round(sum(taught) / len(taught), 4) if taught else None,
            "auto": len(auto), "auto_precision": round(auto_right / len(auto), 4) if auto else None,
            "out_of_scope": (int(sum(bool(ood_flags[i]) for i in idx)) if ood_flags is not None else None),
            "errors": [{"file": docs[i]["rel"], "label": docs[i]["label"], "predicted": LABELS[pred[i]],
                        "confidence": round(float(conf[i]), 3)} for i, ok in zip(idx, right) if not ok],
        })
    return rows



def known_type_mean(rows: Sequence[dict[str, Any]]) -> float:
    """Mean ``taught_accuracy`` of :func:`per_source` rows over the sources holding documents of a type
    another source teaches: a source of only untaught types (CMS-1500's claim forms; Kleister's
    contracts) is left out, as :meth:`conveyor.tools.training.retrain.Evaluation.floors_metrics` leaves it."""
    accs = [r["taught_accuracy"] for r in rows if r.get("taught")]
    return round(float(np.mean(accs)), 4) if accs else 0.0


def compare_feature_sets(sets: dict[str, np.ndarray], docs: Sequence[dict[str, Any]],
                         make: Callable[[], Any]) -> dict[str, dict[str, Any]]:
    """Per feature set: accuracy on each left-out source, their mean and minimum."""
    out = {}
    for name, X in sets.items():
        proba = out_of_source(X, docs, make)
        rows = per_source(proba, docs, None)
        accs = [r["accuracy"] for r in rows]
        out[name] = {"per_source": {r["source"]: r["accuracy"] for r in rows},
                     "mean": round(float(np.mean(accs)), 4), "min": round(float(np.min(accs)), 4)}
    return out


#: Folds of :func:`grouped_cv` (a fold is a tenth of the groups).
CV_FOLDS = 10
#: Fewest documents of a type for its F1 to count in :func:`macro_f1`.
MIN_F1_SUPPORT = 10


def macro_f1(y: np.ndarray, pred: np.ndarray, min_support: int = MIN_F1_SUPPORT) -> float:
    """Macro-F1 over the types with at least ``min_support`` documents in ``y`` (all of them when none
    has): a type of three documents (ZUGFeRD's credit notes) would swing the mean by a third of its
    weight on one document, so it is reported in the confusion matrix, not averaged here."""
    from sklearn.metrics import f1_score

    values, counts = np.unique(y, return_counts=True)
    labels = [int(v) for v, c in zip(values, counts) if c >= min_support] or [int(v) for v in values]
    return float(f1_score(y, pred, average="macro", labels=labels))


def grouped_cv(X: np.ndarray, docs: Sequence[dict[str, Any]], make: Callable[[], Any],
               folds: int = CV_FOLDS) -> np.ndarray:
    """Probabilities ``(n, len(LABELS))`` of the shippable documents (in ``docs`` order, the others
    left out), each by a model fitted on the shippable documents outside its fold; folds are whole
    groups (a document and its near-duplicates, or one shop's receipts: ``doc["group"]``), split
    ``folds`` ways by scikit-learn's ``GroupKFold`` (leave-one-group-out when there are fewer groups)."""
    from sklearn.model_selection import GroupKFold, LeaveOneGroupOut

    train = [i for i, d in enumerate(docs) if d["shippable"]]
    Xs = X[train]
    y = np.array([LABELS.index(docs[i]["label"]) for i in train])
    groups = np.array([docs[i]["group"] for i in train])
    splitter = GroupKFold(n_splits=folds) if len(set(groups)) > folds else LeaveOneGroupOut()
    proba = np.zeros((len(y), len(LABELS)))
    for tr, te in splitter.split(Xs, y, groups):
        clf = make().fit(Xs[tr], y[tr])
        proba[te] = label_proba(clf, Xs[te])
    return proba


def auto_routing_per_type(proba: np.ndarray, docs: Sequence[dict[str, Any]], target: float) -> dict[str, dict[str, Any]]:
    """Per predicted type, the auto threshold from the out-of-source predictions of that type.

    A document predicted ``T`` with confidence at or above ``T``'s threshold is auto-routed (its
    type; its fields are checked separately). The threshold is the lowest whose predictions of
    ``T`` at or above it have a Wilson lower bound (one-sided 95 %) of precision >= ``target``
    (:func:`conveyor.processors.classify.routing.choose_auto_threshold` over the predictions of ``T``
    only); a type without one stays on review, with the reason.

    Returns:
        ``{type: {"enabled", "threshold", "predicted", "right", "auto", "auto_right", "precision",
        "precision_lower_bound", "reason"}}`` for every type of :data:`LABELS`.
    """
    pred = proba.argmax(1)
    conf = proba.max(1)
    truth = np.array([d["label"] for d in docs])
    needed = int(np.ceil(target * WILSON_Z ** 2 / (1 - target)))
    out = {}
    for k, label in enumerate(LABELS):
        mine = pred == k
        right = truth[mine] == label
        entry: dict[str, Any] = {"predicted": int(mine.sum()), "right": int(right.sum())}
        sources_with_type = sorted({d["source"] for d in docs if d["label"] == label})
        if mine.sum():
            threshold, table = choose_auto_threshold(conf[mine], right, target)
            row = next(r for r in table if r["threshold"] == threshold)
            lower_bound = row["precision_lower_bound"]
            enabled = lower_bound >= target
        else:
            enabled, threshold, lower_bound = False, None, 0.0
        if enabled:
            sel = conf[mine] >= threshold
            entry.update(enabled=True, threshold=threshold, auto=int(sel.sum()), auto_right=int(right[sel].sum()),
                         precision=round(float(right[sel].mean()), 4),
                         precision_lower_bound=lower_bound, reason=None)
        else:
            if len(sources_with_type) < 2:
                why = (f"only {len(sources_with_type)} source holds {label} documents "
                       f"({', '.join(sources_with_type) or 'none'}): left out, no other source teaches the type, "
                       "so there is no out-of-source evidence")
            else:
                why = (f"no threshold reaches a Wilson lower bound (z={WILSON_Z}) of {target} on the "
                       f"{int(mine.sum())} out-of-source predictions of {label} ({int(right.sum())} right); "
                       f"even all right it takes >= {needed}")
            entry.update(enabled=False, threshold=None, auto=0, auto_right=0, precision=None,
                         precision_lower_bound=lower_bound, reason=why)
        out[label] = entry
    return out


def select_C(X: np.ndarray, docs: Sequence[dict[str, Any]], make: Callable[[float], Any],
             grid: Sequence[float] = C_GRID) -> tuple[float, list[dict[str, Any]]]:
    """The regularisation strength of the shipped model, chosen on the **shippable** sources only.

    For each ``C`` of ``grid``: the mean accuracy over the shippable sources each left out
    (:func:`out_of_source`; over each source's documents of types another source teaches,
    ``taught_accuracy``), then the grouped cross-validation accuracy (:func:`grouped_cv`)
    as the tie-break; the read-only sources (Mindee, CMS-1500) play no part, so their
    left-out figures stay a test. ``make(C)`` returns an unfitted classifier.

    Returns:
        ``(C, [{"C", "loso_shippable_mean", "loso_shippable_min", "cv_accuracy"}, ...])``.
    """
    ship = [d for d in docs if d["shippable"]]
    Xs = X[[i for i, d in enumerate(docs) if d["shippable"]]]
    y = np.array([LABELS.index(d["label"]) for d in ship])
    table = []
    for C in grid:
        rows = per_source(out_of_source(Xs, ship, lambda: make(C)), ship, None)  # noqa: B023 - called now
        accs = [r["taught_accuracy"] for r in rows if r["taught"]]
        cv = float((grouped_cv(Xs, ship, lambda: make(C)).argmax(1) == y).mean())  # noqa: B023 - called now
        table.append({"C": C, "loso_shippable_mean": round(float(np.mean(accs)), 4),
                      "loso_shippable_min": round(float(np.min(accs)), 4), "cv_accuracy": round(cv, 4)})
    best = max(table, key=lambda r: (r["loso_shippable_mean"], r["cv_accuracy"], -r["C"]))
    return best["C"], table
