"""Train the key-field model shipped as ``processors/models/keyfields`` (issue 24, item 2).

For each field of :data:`MODEL_FIELDS`, a gradient-boosted tree classifier
(``HistGradientBoostingClassifier``) learns which candidate of a document
(:mod:`conveyor.processors.extract.kie.candidates`: every date, every amount, every run of header
rows) is the field's value, from the candidate features of
:mod:`conveyor.processors.extract.kie.features` over the extract stage's own OCR lines and boxes
(cached), with the rules' own choice among them. Data: :mod:`.keyfield_data` (the datasets'
training splits and the labelled ``../shared`` sources).

Measured before anything is chosen, on **left-out documents only** (each fold of
:func:`.keyfield_data.fold_of` predicted by a model trained without it: whole sources left out,
and within SROIE whole shops): the best candidate's score and whether it is right. From those
out-of-fold choices:

* the calibration (isotonic: score → share right) and the emission threshold (lowest confidence
  whose left-out choices are right ≥ :data:`EMIT_PRECISION`);
* per field, whether the model or the rules (as gated by ``confidence.json``) emit more right
  values at that precision: ``use`` in the manifest;
* per source: coverage (right values emitted / labelled documents) and precision, and a learning
  curve (100 / 300 / all training documents).

The final scorers are fitted on every document, exported with skl2onnx and installed only if the
ONNX scores match scikit-learn's and the floors hold (:data:`DEFAULT_FLOORS`, or stricter ones
pinned in the committed manifest).

Run::

    python -m conveyor.tools.training.train_keyfields [--corpus ../shared/corpus] [--datasets DIR]
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections import Counter
from collections.abc import Callable, Sequence
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import numpy as np

from conveyor.tools.training.common import MODELS_DIR, model_arguments

MODEL_NAME = "keyfields"
MODEL_VERSION = "1.0.0"
MODEL_FIELDS = ("vendor", "vendor_address", "dates", "total_amount", "effective_date", "parties")
#: Fields whose label may say "the document states none" (a value emitted there is wrong).
NULLABLE_FIELDS = frozenset({"effective_date"})
#: Precision the emitted values of a field must reach on left-out documents (issue 24's target).
EMIT_PRECISION = 0.97
#: Fewest left-out choices at or above a threshold for it to count.
MIN_EMITTED = 20
LEARNING_CURVE = (100, 300)
#: Fields with several values: every candidate at or above the threshold is emitted.
MULTI_FIELDS = frozenset({"parties"})
DEFAULT_FLOORS: dict[str, float] = {}


# ------------------------------------------------------------------------------------- matching
def _norm_text(value: Any) -> str:
    from conveyor.processors.extract.fields.normalise import normalise_company

    return normalise_company(str(value or ""))


def truth_value(field: str, truth: dict[str, Any]) -> Any:
    """The labelled value of ``field`` (the first date for ``dates``), None when unlabelled."""
    value = truth.get(field)
    if field == "dates":
        return value[0] if value else None
    return value


def labelled(field: str, truth: dict[str, Any]) -> bool:
    """Does ``truth`` label ``field`` (for :data:`NULLABLE_FIELDS` an explicit None counts: "states none")?"""
    if field in NULLABLE_FIELDS:
        return field in truth
    return truth_value(field, truth) not in (None, "", [])


def party_key(name: Any) -> str:
    """A party's name for comparison: Kleister's normal form (``&`` is "and"; Incorporated, Corporation,
    Company and Limited are Inc, Corp, Co and Ltd) of both sides, then letters and digits, case-folded."""
    import re

    text = re.sub(r"&", " and ", str(name or ""))
    for long, short in (("incorporated", "inc"), ("corporation", "corp"), ("company", "co"), ("limited", "ltd")):
        text = re.sub(rf"\b{long}\b", short, text, flags=re.IGNORECASE)
    return _norm_text(text)


def same_value(field: str, predicted: Any, expected: Any) -> bool:
    """Exact match after the normal forms of :mod:`conveyor.tools.evaluation.extraction`: names and
    addresses as letters and digits, case-folded; amounts as decimals; dates and ids as given."""
    if field == "parties":
        return bool(predicted) and {party_key(p) for p in predicted} == {party_key(p) for p in expected or []}
    if predicted in (None, "", []) or expected in (None, "", []):
        return False
    if field in ("total_amount", "net_amount", "tax_amount"):
        try:
            return Decimal(str(predicted)) == Decimal(str(expected))
        except InvalidOperation:
            return False
    if field in ("dates", "due_date", "effective_date"):
        return str(predicted) == str(expected)
    return _norm_text(predicted) == _norm_text(expected)


# ----------------------------------------------------------------------------------- candidates
def rule_fields_of(pages: list[dict[str, Any]]) -> dict[str, Any]:
    """The rules' fields of a document (what the extract stage computes before the model)."""
    from conveyor.processors.extract.fields import extract_key_fields
    from conveyor.processors.extract.layout import page_layout

    text = "\n\n".join(page["text"] for page in pages).strip("\n")
    first = pages[0]
    layout = page_layout(first["lines"], first["size"]) if first.get("lines") else None
    fields = extract_key_fields(text, first_page_text=first["text"], layout=layout)
    fields["vendor_address"] = fields.pop("address")
    return fields


def prepare(docs: Sequence[dict[str, Any]], fields: Sequence[str] = MODEL_FIELDS) -> list[dict[str, Any]]:
    """Per document: rows, rule fields, and per field its candidates, features and right flags.

    Documents that fail to extract are left out (reported).
    """
    from conveyor.processors.extract.kie.candidates import candidates
    from conveyor.processors.extract.kie.features import feature_matrix
    from conveyor.processors.extract.kie.rows import document_rows
    from conveyor.tools.evaluation.corpus_cache import cached_pages

    out = []
    for doc in docs:
        try:
            pages = cached_pages(Path(doc["path"]))
        except Exception as exc:  # noqa: BLE001 - a document that does not extract is reported, not trained on
            print(f"  ! {doc['id']}: {type(exc).__name__}: {exc}", flush=True)
            continue
        rows = document_rows(pages)
        if not rows or not any(labelled(f, doc["truth"]) for f in fields):
            continue
        rules = rule_fields_of(pages)
        per_field = {}
        wanted = [f for f in fields if labelled(f, doc["truth"])]
        if not wanted:
            continue
        for field, cands in candidates(rows, rules, wanted).items():
            expected = truth_value(field, doc["truth"])
            if field == "parties":
                keys = {party_key(p) for p in expected or []}
                right = np.array([party_key(c.value) in keys for c in cands], dtype=bool)
            else:
                right = np.array([same_value(field, c.value, expected) for c in cands], dtype=bool)
            per_field[field] = {"cands": cands, "X": feature_matrix(field, cands, rows), "right": right}
        out.append({**doc, "rules": rules, "fields": per_field, "pages": pages})
    return out


# ---------------------------------------------------------------------------------------- model
def make_classifier(seed: int = 0):
    """The candidate scorer: gradient-boosted trees (scikit-learn's LightGBM-style histogram GBDT)."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(max_iter=250, learning_rate=0.08, max_leaf_nodes=31, min_samples_leaf=20,
                                          l2_regularization=1.0, random_state=seed)


def _stack(prepared: Sequence[dict[str, Any]], field: str) -> tuple[np.ndarray, np.ndarray]:
    parts = [d["fields"][field] for d in prepared if field in d["fields"]]
    if not parts:
        return np.zeros((0, 0), dtype=np.float32), np.zeros(0, dtype=int)
    return np.vstack([p["X"] for p in parts]), np.concatenate([p["right"] for p in parts]).astype(int)


def fit_field(prepared: Sequence[dict[str, Any]], field: str, seed: int = 0):
    """A scorer of ``field`` fitted on ``prepared`` (None when it has no positive candidate)."""
    X, y = _stack(prepared, field)
    if not len(y) or y.min() == y.max():
        return None
    return make_classifier(seed).fit(X, y)


def choices(prepared: Sequence[dict[str, Any]], field: str, score: Callable[[np.ndarray], np.ndarray]) -> list[dict]:
    """The best candidate of each document with ``field`` labelled: ``{"id", "source", "score",
    "right", "value", "reachable"}`` (reachable: some candidate is right); for a multi-valued field
    also every candidate's ``scores``, ``rights`` and ``values`` and the labelled ``expected`` values."""
    out = []
    for d in prepared:
        part = d["fields"].get(field)
        if part is None:
            continue
        s = score(part["X"]) if len(part["cands"]) else np.zeros(0)
        if field in MULTI_FIELDS:
            out.append({"id": d["id"], "source": d["source"], "scores": np.asarray(s, dtype=float),
                        "rights": part["right"], "values": [c.value for c in part["cands"]],
                        "expected": list(truth_value(field, d["truth"]) or []),
                        "score": float(s.max()) if len(s) else 0.0, "right": bool(part["right"].any()),
                        "value": None, "reachable": bool(part["right"].any())})
            continue
        present = truth_value(field, d["truth"]) not in (None, "", [])
        if not len(s):
            out.append({"id": d["id"], "source": d["source"], "score": 0.0, "right": False, "value": None,
                        "reachable": False, "present": present})
            continue
        best = int(np.argmax(s))
        out.append({"id": d["id"], "source": d["source"], "score": float(s[best]), "right": bool(part["right"][best]),
                    "value": part["cands"][best].value, "reachable": bool(part["right"].any()), "present": present})
    return out


def out_of_fold(prepared: Sequence[dict[str, Any]], field: str, seed: int = 0,
                train_filter: Callable[[dict], bool] = lambda d: True) -> list[dict]:
    """:func:`choices` of every document by a scorer trained without its fold."""
    out = []
    folds = sorted({d["fold"] for d in prepared if field in d["fields"]})
    for fold in folds:
        train = [d for d in prepared if d["fold"] != fold and train_filter(d)]
        test = [d for d in prepared if d["fold"] == fold]
        clf = fit_field(train, field, seed)
        score = clf.decision_function if clf is not None else (lambda X: np.full(len(X), -10.0))
        out += choices(test, field, score)
    return out


def _pairs(oof: Sequence[dict], field: str) -> tuple[np.ndarray, np.ndarray]:
    """``(scores, right)`` the calibration learns from: the best candidate of each document, or every
    candidate of a multi-valued field."""
    if field in MULTI_FIELDS:
        return (np.concatenate([c["scores"] for c in oof] or [np.zeros(0)]),
                np.concatenate([c["rights"] for c in oof] or [np.zeros(0, dtype=bool)]).astype(bool))
    return np.array([c["score"] for c in oof], dtype=float), np.array([c["right"] for c in oof], dtype=bool)


def calibrate(oof: Sequence[dict], field: str = "") -> dict[str, float]:
    """Platt scaling of the left-out choices' scores (:func:`conveyor.processors.extract.kie.model.platt`):
    ``{"a", "b"}`` of a logistic regression of "right" on the score, the scorer's log-odds (unregularised)."""
    from sklearn.linear_model import LogisticRegression

    scores, right = _pairs(oof, field)
    if len(set(right.tolist())) < 2:  # all right or all wrong: the constant share, whatever the score
        share = float(right.mean()) if len(right) else 0.0
        return {"a": 0.0, "b": round(float(np.log(max(share, 1e-6) / max(1 - share, 1e-6))), 6)}
    lr = LogisticRegression(C=1e6, max_iter=1000).fit(scores.reshape(-1, 1), right.astype(int))
    return {"a": round(float(lr.coef_[0][0]), 6), "b": round(float(lr.intercept_[0]), 6)}


def emit_threshold(confidence: np.ndarray, right: np.ndarray, aim: float = EMIT_PRECISION,
                   min_emitted: int = MIN_EMITTED) -> float:
    """Lowest confidence whose choices at or above it are right ≥ ``aim`` (at least ``min_emitted``
    of them); 1.01 (never emit) when none is."""
    order = np.argsort(-confidence, kind="stable")
    conf, ok = confidence[order], right[order].astype(float)
    cum = np.cumsum(ok) / np.arange(1, len(ok) + 1)
    best = 1.01
    for i in range(len(conf)):
        if i + 1 < len(conf) and conf[i + 1] == conf[i]:
            continue  # a threshold takes every choice of equal confidence
        if i + 1 >= min_emitted and cum[i] >= aim:
            best = float(conf[i])
    return best


def summarise(oof: Sequence[dict], confidence: np.ndarray, threshold: float, field: str = "") -> dict[str, Any]:
    """Emitted, right among emitted, precision, coverage (right emitted / documents printing the
    field), the share right if every best candidate were emitted, reachable (some candidate right).

    For a multi-valued field (``confidence`` per candidate, in :func:`_pairs` order) values are
    counted: coverage is right values emitted / labelled values, and ``documents_exact`` the share of
    documents whose emitted set is exactly the labelled one."""
    n = len(oof)
    if field in MULTI_FIELDS:
        pos, emitted_n, right_n, labelled_n, exact = 0, 0, 0, 0, 0
        for c in oof:
            conf = confidence[pos:pos + len(c["scores"])]
            pos += len(c["scores"])
            keys = {party_key(v) for v, k in zip(c["values"], conf) if k >= threshold}
            truth = {party_key(v) for v in c["expected"]}
            emitted_n += len(keys)
            right_n += len(keys & truth)
            labelled_n += len(truth)
            exact += keys == truth
        return {"documents": n, "emitted": emitted_n, "right": right_n,
                "precision": round(right_n / emitted_n, 4) if emitted_n else None,
                "coverage": round(right_n / labelled_n, 4) if labelled_n else None, "labelled_values": labelled_n,
                "documents_exact": round(exact / n, 4) if n else None,
                "reachable": round(float(np.mean([c["reachable"] for c in oof])), 4) if n else None}
    emitted = confidence >= threshold
    right = np.array([c["right"] for c in oof], dtype=bool)
    present = np.array([c.get("present", True) for c in oof], dtype=bool)
    return {"documents": n, "printing": int(present.sum()), "emitted": int(emitted.sum()),
            "right": int((emitted & right).sum()),
            "precision": round(float((emitted & right).sum() / emitted.sum()), 4) if emitted.any() else None,
            "coverage": round(float((emitted & right).sum() / present.sum()), 4) if present.any() else None,
            "right_without_abstention": round(float(right.sum() / present.sum()), 4) if present.any() else None,
            "reachable": round(float(np.mean([c["reachable"] for c in oof])), 4) if n else None}


# ----------------------------------------------------------------------------------- evaluation
def rules_choices(prepared: Sequence[dict[str, Any]], field: str) -> list[dict]:
    """What the rules emit for ``field`` as the extract stage gates them without the model
    (``confidence.json``): ``{"id", "source", "emitted", "right"}`` per labelled document."""
    out = []
    for d in prepared:
        if field not in d["fields"]:
            continue
        out.append({"id": d["id"], "source": d["source"], **_rules_result(d, field)})
    return out


def _rules_result(d: dict[str, Any], field: str) -> dict[str, Any]:
    """``{"emitted", "right"}`` of the rules' gated ``field`` of a prepared document (gated once, kept)."""
    from conveyor.processors.extract import fields_from_pages

    if "rules_gated" not in d:
        d["rules_gated"] = fields_from_pages(d["pages"], use_model=False)
    value = truth_value(field, d["rules_gated"])
    expected = truth_value(field, d["truth"])
    return {"emitted": value not in (None, "", []),
            "right": same_value(field, value, expected) if expected not in (None, "", []) else False}


def _confidences(oof: Sequence[dict], calibration: dict[str, float], field: str) -> np.ndarray:
    from conveyor.processors.extract.kie.model import platt

    scores, _ = _pairs(oof, field)
    return platt(scores, calibration)


def per_source_table(oof: Sequence[dict], calibration: dict[str, float], threshold: float,
                     rules: Sequence[dict], field: str = "") -> dict[str, dict[str, Any]]:
    """Per source: the model's :func:`summarise` beside what the rules emit (same documents)."""
    table = {}
    for source in sorted({c["source"] for c in oof}):
        mine = [c for c in oof if c["source"] == source]
        row = summarise(mine, _confidences(mine, calibration, field), threshold, field)
        ruled = [r for r in rules if r["source"] == source]
        emitted = [r for r in ruled if r["emitted"]]
        right = sum(r["right"] for r in emitted)
        row["rules"] = {"emitted": len(emitted), "right": right,
                        "precision": round(right / len(emitted), 4) if emitted else None,
                        "coverage": round(right / len(ruled), 4) if ruled else None}
        table[source] = row
    return table


def evaluate_field(prepared: Sequence[dict[str, Any]], field: str, seed: int = 0) -> dict[str, Any]:
    """Left-out choices of ``field`` → calibration, threshold, per-source table, model-or-rules: the
    model decides the field when its emitted values are right at least :data:`EMIT_PRECISION` of the
    time and it emits more right values than the rules do, or the rules (as the extract stage gates
    them) are right less often than that."""
    oof = out_of_fold(prepared, field, seed)
    calibration = calibrate(oof, field)
    confidence = _confidences(oof, calibration, field)
    threshold = emit_threshold(confidence, _pairs(oof, field)[1])
    rules = rules_choices(prepared, field)
    overall = summarise(oof, confidence, threshold, field)
    rules_right = sum(r["right"] for r in rules if r["emitted"])
    rules_emitted = sum(r["emitted"] for r in rules)
    rules_precise = rules_emitted and rules_right / rules_emitted >= EMIT_PRECISION
    model_precise = (overall["precision"] or 0) >= EMIT_PRECISION
    use = "model" if model_precise and (overall["right"] >= rules_right or not rules_precise) else "rules"
    return {"calibration": calibration, "emit_threshold": round(threshold, 6), "use": use,
            "left_out": {**overall, "rules_emitted": rules_emitted, "rules_right": rules_right},
            "per_source": per_source_table(oof, calibration, threshold, rules, field),
            "errors": [] if field in MULTI_FIELDS else [
                {"id": c["id"], "value": c["value"], "confidence": round(float(k), 3)}
                for c, k in zip(oof, confidence) if k >= threshold and not c["right"]][:50],
            "choices": oof}


def learning_curve(prepared: Sequence[dict[str, Any]], field: str, sizes: Sequence[int] = LEARNING_CURVE,
                   seed: int = 0) -> list[dict[str, Any]]:
    """Left-out coverage and precision of ``field`` trained on about ``n`` of the documents labelling it
    (a seeded random subset, ``n`` of them over all folds, so each fold trains on the subset's part
    outside it), for each ``n`` of ``sizes`` and for all of them; each size calibrated and
    thresholded on its own left-out choices (every labelled document is still tested)."""
    rng = np.random.default_rng(seed)
    labelled_docs = [d for d in prepared if field in d["fields"]]
    order = {d["id"]: float(rng.random()) for d in labelled_docs}
    rows = []
    for n in [k for k in sizes if k < len(labelled_docs)] + [None]:
        def keep(d: dict, n: int | None = n) -> bool:
            return n is None or order.get(d["id"], 1.0) < n / len(labelled_docs)

        oof = out_of_fold(prepared, field, seed, train_filter=keep)
        cal = calibrate(oof, field)
        conf = _confidences(oof, cal, field)
        thr = emit_threshold(conf, _pairs(oof, field)[1])
        rows.append({"training_documents": n or "all", **summarise(oof, conf, thr, field)})
    return rows


LEFT_OUT_FILE = "keyfields-left-out.json"
#: Precision the auto-routed documents of a type must reach: type right and every required field right.
AUTO_PRECISION = 0.98


def joint_confidence(fields: dict[str, Any], required: Sequence[str]) -> float:
    """Product of the confidences of ``required`` fields in a left-out record (1.0 for a field the
    rules decided: the rules emit only values whose rule was right >= 0.97)."""
    joint = 1.0
    for name in required:
        joint *= float((fields.get(name) or {}).get("confidence", 1.0))
    return joint


def joint_thresholds(cache_dir: Path, left_out: dict[str, Any]) -> dict[str, Any]:
    """Per document type, the lowest joint confidence of its required fields
    (:data:`conveyor.processors.classify.routing.REQUIRED_FIELDS`) at which the documents auto-routed
    on left-out data — type auto (``doctype-left-out.json``, written by ``train_doctype``), every
    required field emitted — have type and required fields right at least :data:`AUTO_PRECISION` of
    the time (20 documents at least); ``1.01`` (never auto) where no joint confidence does.

    Returns ``{"threshold": {type: value}, "evidence": {type: {...}}}``; empty without the
    document-type model's left-out file.
    """
    from conveyor.processors.classify.routing import REQUIRED_FIELDS

    try:
        types = json.loads((cache_dir / "doctype-left-out.json").read_text(encoding="utf-8"))["documents"]
    except FileNotFoundError:
        return {}
    out: dict[str, Any] = {"threshold": {}, "evidence": {}}
    for label, required in REQUIRED_FIELDS.items():
        rows = []
        for sha, t in types.items():
            fields = (left_out.get(sha) or {}).get("fields") or {}
            if t["predicted"] != label or not t["type_auto"] or not all(f in fields for f in required):
                continue
            if not all(fields[f]["emitted"] for f in required):
                continue
            right = t["label"] == label and all(fields[f]["right"] for f in required)
            rows.append((joint_confidence(fields, required), right))
        if not rows:
            continue
        conf = np.array([c for c, _ in rows])
        right = np.array([r for _, r in rows], dtype=bool)
        threshold = emit_threshold(conf, right, aim=AUTO_PRECISION)
        kept = conf >= threshold
        out["threshold"][label] = round(threshold, 6)
        out["evidence"][label] = {"auto_before": len(rows), "right_before": int(right.sum()), "auto": int(kept.sum()),
                                  "right": int((kept & right).sum()),
                                  "precision": round(float(right[kept].mean()), 4) if kept.any() else None}
    return out


def save_left_out(cache_dir: Path, prepared: Sequence[dict[str, Any]], choices_of: dict[str, list[dict]],
                  fields_spec: dict[str, Any]) -> Path:
    """Write every document's left-out field results to ``cache_dir/keyfields-left-out.json`` for the
    evaluation's decisions section: ``{"documents": {sha256: {"source", "id", "fields": {field:
    {"emitted", "right", "value", "confidence"}}}}}``; a field the rules decide (``use: rules``)
    carries the rules' gated value instead of the model's."""
    from conveyor.processors.extract.kie.model import platt

    by_id = {d["id"]: d for d in prepared}
    out: dict[str, Any] = {}
    for field, oof in choices_of.items():
        spec = fields_spec.get(field) or {}
        calibration, threshold = spec.get("calibration"), float(spec.get("emit_threshold", 1.01))
        for c in oof:
            d = by_id[c["id"]]
            entry = out.setdefault(d["sha256"], {"source": d["source"], "id": d["id"], "fields": {}})
            if spec.get("use") != "model" or calibration is None:
                entry["fields"][field] = {**_rules_result(d, field), "by": "rules"}
                continue
            if field in MULTI_FIELDS:
                confs = platt(c["scores"], calibration)
                values = sorted({v for v, k in zip(c["values"], confs) if k >= threshold})
                entry["fields"][field] = {"emitted": bool(values), "value": values, "by": "model",
                                          "right": same_value(field, values, c["expected"])}
                continue
            conf = float(platt(np.array([c["score"]]), calibration)[0])
            emitted = conf >= threshold and c["value"] is not None
            entry["fields"][field] = {"emitted": emitted, "value": c["value"] if emitted else None, "by": "model",
                                      "right": bool(emitted and c["right"]), "confidence": round(conf, 4)}
    from conveyor.processors.classify.routing import REQUIRED_FIELDS

    ruled = sorted({f for fields in REQUIRED_FIELDS.values() for f in fields} - set(choices_of))
    for d in prepared:
        for field in ruled:
            expected = truth_value(field, d["truth"])
            if expected in (None, "", []):
                continue
            entry = out.setdefault(d["sha256"], {"source": d["source"], "id": d["id"], "fields": {}})
            entry["fields"][field] = {**_rules_result(d, field), "by": "rules"}
    path = cache_dir / LEFT_OUT_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"fields": {f: {"sha256": s.get("sha256"), "use": s.get("use")}
                                           for f, s in fields_spec.items()}, "documents": out}, default=str),
                    encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------- export
@contextlib.contextmanager
def _integer_missing_flags():
    """skl2onnx 1.20 hands ``nodes_missing_value_tracks_true=False`` (a bool) to the ONNX tree nodes of
    a histogram GBDT's leaves, which onnx >= 1.23 refuses in an integer attribute ("Expected an int,
    got a boolean"); for the duration of an export, the flag is passed as 0/1."""
    from skl2onnx.common import tree_ensemble

    original = tree_ensemble.add_node

    def add_node(*args: Any, nodes_missing_value_tracks_true: Any = 0, **kwargs: Any) -> Any:
        return original(*args, nodes_missing_value_tracks_true=int(bool(nodes_missing_value_tracks_true)), **kwargs)

    tree_ensemble.add_node = add_node
    try:
        yield
    finally:
        tree_ensemble.add_node = original


def export_field(clf: Any, n_features: int, staging: Path, field: str) -> tuple[str, str]:
    """Write ``staging/<field>.onnx``; returns ``(file name, sha256)``."""
    from conveyor.tools.training.common import to_onnx

    with _integer_missing_flags():
        data = to_onnx(clf, n_features, graph_name=f"keyfields_{field}", raw_scores=True).SerializeToString()
    staging.mkdir(parents=True, exist_ok=True)
    name = f"{field}.onnx"
    (staging / name).write_bytes(data)
    return name, hashlib.sha256(data).hexdigest()


NOTICE = """\
keyfields — key-field candidate scorers (scikit-learn HistGradientBoostingClassifier, one per field).

Trained on features derived from these documents (none is included here):

* ICDAR 2019 SROIE, training split (company, date, address, total labels) —
  https://github.com/althayr/ICDAR-2019-SROIE-dataset (competition data for research; no licence stated),
  and the same split's receipts in ../shared/corpus/sroie.
* Kleister NDA, train split (party and effective_date keys) — https://github.com/applicaai/kleister-nda
  (no licence stated; the documents are public SEC EDGAR filings).
* ZUGFeRD / Factur-X / Order-X specification samples with their embedded XML —
  https://github.com/stephanstapel/ZUGFeRD-csharp (Apache-2.0; FeRD examples, fictitious parties).
* softmatic/vision-data, 2D/Receipts (CC-BY-4.0) and invoice-x/invoice2data tests (MIT), as in
  processors/models/doctype/NOTICE.

No document and no label value is included in this folder; only the fitted model weights.
"""


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = model_arguments(__doc__.split("\n")[0], MODELS_DIR / MODEL_NAME)
    ap.add_argument("--fields", nargs="*", default=list(MODEL_FIELDS))
    ap.add_argument("--no-curve", action="store_true", help="skip the learning curve")
    args = ap.parse_args(argv)

    from conveyor.processors.extract.kie.features import feature_names
    from conveyor.processors.extract.kie.model import KeyFieldModel
    from conveyor.tools.datasets import require_manifest
    from conveyor.tools.training.common import (
        check_limits,
        effective_limits,
        install_model,
        library_versions,
        write_manifest,
    )
    from conveyor.tools.training.keyfield_data import labelled_documents

    t_start = time.perf_counter()
    datasets = require_manifest(args.datasets)
    docs = labelled_documents(args.corpus, args.datasets)
    prepared = prepare(docs, args.fields)
    print(f"{len(prepared)} labelled documents ({time.perf_counter() - t_start:.0f}s): "
          f"{dict(sorted(Counter(d['source'] for d in prepared).items()))}", flush=True)
    staging = args.cache_dir / "candidates" / MODEL_NAME
    fields_spec: dict[str, Any] = {}
    metrics: dict[str, Any] = {}
    fitted: dict[str, Any] = {}
    choices_of: dict[str, list[dict]] = {}
    for field in args.fields:
        t0 = time.perf_counter()
        result = evaluate_field(prepared, field, args.seed)
        curve = [] if args.no_curve else learning_curve(prepared, field, seed=args.seed)
        choices_of[field] = result.pop("choices")
        lo = result["left_out"]
        print(f"{field}: use {result['use']}; left out: emitted {lo['emitted']} in {lo['documents']} documents, right "
              f"{lo['right']} (precision {lo['precision']}, coverage {lo['coverage']}; every value "
              f"{lo.get('right_without_abstention')}, exact sets {lo.get('documents_exact')}, reachable {lo['reachable']}); "
              f"rules emit {lo['rules_emitted']}, right {lo['rules_right']} [{time.perf_counter() - t0:.0f}s]", flush=True)
        for source, row in result["per_source"].items():
            print(f"    {source:<14} model {row['right']}/{row['emitted']} of {row['documents']} "
                  f"(precision {row['precision']}, coverage {row['coverage']})  rules {row['rules']}", flush=True)
        for row in curve:
            print(f"    curve {row['training_documents']}: coverage {row['coverage']} precision {row['precision']}")
        clf = fit_field(prepared, field, args.seed)
        if clf is None:
            print(f"{field}: no labelled candidate, left out", flush=True)
            continue
        fitted[field] = clf
        X, _ = _stack(prepared, field)
        name, sha = export_field(clf, X.shape[1], staging, field)
        fields_spec[field] = {"file": name, "sha256": sha, "features": list(feature_names(field)),
                              "calibration": result["calibration"], "emit_threshold": result["emit_threshold"],
                              "use": result["use"], "training_documents": int(sum(field in d["fields"] for d in prepared)),
                              "training_candidates": int(len(X))}
        metrics[field] = {"left_out": result["left_out"], "per_source": result["per_source"],
                          "learning_curve": curve, "emitted_errors": result["errors"]}
    left_out_path = save_left_out(args.cache_dir, prepared, choices_of, fields_spec)
    routing = joint_thresholds(args.cache_dir, json.loads(left_out_path.read_text(encoding="utf-8"))["documents"])
    for label, ev in (routing.get("evidence") or {}).items():
        print(f"auto {label}: joint confidence >= {routing['threshold'][label]:.3f}: {ev['right']} of {ev['auto']} right "
              f"(before: {ev['right_before']} of {ev['auto_before']})", flush=True)
    floors = dict(DEFAULT_FLOORS)
    if (args.out / "manifest.json").exists():
        floors, _ = effective_limits(args.out, DEFAULT_FLOORS)
    manifest = {
        "name": MODEL_NAME, "version": MODEL_VERSION,
        "task": "which candidate of a document is each key field's value (issue 24)",
        "fields": fields_spec,
        "training_data": {
            "description": "the datasets of make datasets (training splits only) and the labelled ../shared sources "
                           "(tools/training/keyfield_data.py); OCR and text layer as the extract stage reads them",
            "datasets_manifest_sha256": (datasets or {}).get("manifest_sha256"),
            "documents": len(prepared), "per_source": dict(Counter(d["source"] for d in prepared)),
        },
        "evaluation": {"rule": "left-out documents only: each source left out, SROIE in five folds of whole shops "
                               f"(tools/training/keyfield_data.fold_of); emitted values right >= {EMIT_PRECISION}",
                       "fields": metrics},
        "routing": {"rule": "a document whose type is auto and whose required fields are all emitted is auto only if "
                            "the product of those fields' confidences reaches its type's threshold, chosen on left-out "
                            f"documents so that the auto documents are right (type and required fields) >= {AUTO_PRECISION}",
                    "joint_confidence_threshold": routing.get("threshold", {}), "evidence": routing.get("evidence", {})},
        "estimator": {"type": "sklearn.ensemble.HistGradientBoostingClassifier",
                      "params": make_classifier(args.seed).get_params()},
        "training_command": "make datasets && python -m conveyor.tools.training.train_keyfields",
        "metric_floors": floors, "created_with": library_versions(), "seed": args.seed,
    }
    write_manifest(staging, manifest)
    (staging / "NOTICE").write_text(NOTICE, encoding="utf-8")
    model = KeyFieldModel.load(staging)
    failures = []
    for field in fields_spec:
        X, _ = _stack(prepared, field)
        sample = X[: min(len(X), 5000)]
        diff = float(np.abs(model.scores(field, sample) - fitted[field].decision_function(sample)).max())
        if diff > 1e-3:
            failures.append(f"{field}: ONNX scores differ from scikit-learn's decision function by {diff:.2e}")
    flat = {f"{f}_coverage": m["left_out"]["coverage"] or 0.0 for f, m in metrics.items()}
    failures += check_limits(flat, floors)
    if failures:
        raise SystemExit(f"candidate NOT installed ({staging}): " + "; ".join(failures))
    install_model(staging, args.out, names=("manifest.json", "NOTICE", *(s["file"] for s in fields_spec.values())))
    print(f"wrote {args.out} ({time.perf_counter() - t_start:.0f}s)")
    return manifest


if __name__ == "__main__":
    main()
