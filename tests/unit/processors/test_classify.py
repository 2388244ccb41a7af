"""Unit tests of the ONNX classifier loader and the classify stage.

The intent model is the real shipped one (with real embeddings); document tests
use a small stand-in doctype model built in a temp folder, so that the routing
logic is tested independently of the shipped document model.
"""
from __future__ import annotations

import csv
import json
import shutil
import zlib
from pathlib import Path

import numpy as np
import pytest

from conveyor.processors.classify import ClassifyProcessor
from conveyor.processors.classify.models import OnnxClassifier
from conveyor.processors.embed import EmbedProcessor
from conveyor.processors.embed.model import MODEL_SHA256, MiniLMEmbedder
from conveyor.processors.errors import ModelInputError, ModelIntegrityError
from conveyor.processors.models import MODELS_DIR
from conveyor.schemas import schema_json

REPO = Path(__file__).resolve().parents[3]
INTENT_DIR = MODELS_DIR / "intent-banking77"
BANKING77 = REPO.parent / "shared" / "corpus" / "text_banking77"
DOC_LABELS = ["receipt", "invoice", "tax_form", "other"]

# (query, intent) pairs from the banking77 test split (CC-BY-4.0).
QUERIES = [
    ("I still have not received my new card, I ordered over a week ago.", "card_arrival"),
    ("Atm took my card", "card_swallowed"),
    ("What is the youngest someone can be to open an account?", "age_limit"),
    ("I would like to know why I was charged twice for my purchase.", "transaction_charged_twice"),
    ("I want to close my account", "terminate_account"),
    ("I found a charge for a direct debit that was not made by me.", "direct_debit_payment_not_recognised"),
    ("Can I verify the source of my funds?", "verify_source_of_funds"),
]

# Out-of-scope queries from CLINC150 oos_val (Larson et al. 2019, clinc/oos-eval, CC-BY-3.0).
OUT_OF_SCOPE_QUERIES = ["do ducks sleep", "what's the best opening gambit for a game of chess",
                        "what is the name of the 13th president"]


@pytest.fixture(scope="module")
def embed() -> EmbedProcessor:
    return EmbedProcessor(MiniLMEmbedder(intra_op_threads=2))


@pytest.fixture(scope="module")
def intent() -> OnnxClassifier:
    return OnnxClassifier.load(INTENT_DIR)


@pytest.fixture(scope="module")
def stub_models_dir(tmp_path_factory) -> Path:
    """models dir with a copy of the intent model and a stand-in doctype model.

    Class k of the stand-in is predicted for vectors near ``centers[k]``.
    """
    sklearn_lm = pytest.importorskip("sklearn.linear_model")
    pytest.importorskip("skl2onnx")
    from conveyor.tools.training.common import export_onnx, write_manifest

    base = tmp_path_factory.mktemp("models")
    shutil.copytree(INTENT_DIR, base / "intent-banking77")
    rng = np.random.default_rng(0)
    centers = _centers()
    X = np.concatenate([c + 0.02 * rng.standard_normal((30, 384)) for c in centers]).astype(np.float32)
    y = np.repeat(np.arange(len(DOC_LABELS)), 30)
    clf = sklearn_lm.LogisticRegression(C=10.0, max_iter=1000).fit(X, y)
    data = export_onnx(clf, 384, base / "doctype" / "model.onnx")
    import hashlib

    write_manifest(
        base / "doctype",
        {
            "name": "doctype-stub",
            "version": "0.0.1",
            "sha256": hashlib.sha256(data).hexdigest(),
            "labels": DOC_LABELS,
            "embedding_model": {"name": "all-MiniLM-L6-v2-int8", "version": "1.0.0", "sha256": MODEL_SHA256},
        },
    )
    return base


def _centers() -> np.ndarray:
    rng = np.random.default_rng(42)
    c = rng.standard_normal((len(DOC_LABELS), 384)).astype(np.float32)
    return c / np.linalg.norm(c, axis=1, keepdims=True)


def _doc_vector(doc_id: str, label: str) -> np.ndarray:
    """The label's centre plus a per-document direction: distinct documents are not near-duplicates."""
    noise = np.random.default_rng(zlib.crc32(doc_id.encode())).standard_normal(384).astype(np.float32)
    v = _centers()[DOC_LABELS.index(label)] + 0.8 * noise / np.linalg.norm(noise)
    return v / np.linalg.norm(v)


def _doc_record(doc_id: str, label: str, fields: dict | None = None, *, vector=None) -> dict:
    v = _doc_vector(doc_id, label) if vector is None else vector
    return {
        "doc_id": doc_id,
        "trace_id": doc_id,
        "event_time": 0,
        "producer": "embed",
        "producer_version": "0.1.0",
        "kind": "document",
        "filename": f"{doc_id}.pdf",
        "text_length": 10,
        "ocr_confidence": None,
        "page_count": 1,
        "fields": fields,
        "model_name": "all-MiniLM-L6-v2-int8",
        "model_version": "1.0.0",
        "model_sha256": MODEL_SHA256,
        "chunks": [],
        "doc_vector": [float(x) for x in v],
    }


FIELDS = {"dates": ["2024-01-31"], "total_amount": "99.00", "currency": "EUR", "document_number": "A1", "vendor": "X"}


def _text_records(embed: EmbedProcessor, texts: list[str]) -> list[dict]:
    recs = [
        {"doc_id": f"t{i}", "trace_id": f"t{i}", "event_time": 0, "producer": "cli", "producer_version": "0", "text": t}
        for i, t in enumerate(texts)
    ]
    return [o[0] for o in embed.process_batch(recs)]


# ------------------------------------------------------------------ loader
def test_shipped_intent_manifest(intent):
    m = intent.manifest
    for key in ("name", "version", "sha256", "labels", "training_data", "training_data_licence",
                "training_command", "metrics", "metric_floors", "metric_ceilings", "embedding_model",
                "created_with", "seed", "calibration", "out_of_scope", "auto_threshold"):
        assert key in m, key
    assert len(intent.labels) == 77 and intent.input_dim == 384
    assert m["embedding_model"]["sha256"] == MODEL_SHA256
    for metric, floor in m["metric_floors"].items():
        assert m["metrics"][metric] >= floor, metric
    for metric, ceiling in m["metric_ceilings"].items():
        assert m["metrics"][metric] <= ceiling, metric
    # the aims are among the pinned limits
    assert m["metric_floors"]["test_accuracy"] >= 0.93 and m["metric_ceilings"]["test_ece"] <= 0.05
    assert m["metric_floors"]["oos_test_review_rate"] >= 0.90
    assert m["calibration"]["temperature"] > 0 and intent.has_ood_score and intent.ood_threshold > 0
    p, ood = intent.predict_scores(np.zeros((2, 384), dtype=np.float32))
    assert p.shape == (2, 77) and ood.shape == (2,)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-4)


def test_model_sha256_mismatch_raises(tmp_path):
    d = tmp_path / "intent"
    shutil.copytree(INTENT_DIR, d)
    manifest = json.loads((d / "manifest.json").read_text())
    manifest["sha256"] = "0" * 64
    (d / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelIntegrityError):
        OnnxClassifier.load(d)


def test_tampered_model_file_raises(tmp_path):
    d = tmp_path / "intent"
    shutil.copytree(INTENT_DIR, d)
    data = bytearray((d / "model.onnx").read_bytes())
    data[-10] ^= 0x01
    (d / "model.onnx").write_bytes(bytes(data))
    with pytest.raises(ModelIntegrityError):
        OnnxClassifier.load(d)
    with pytest.raises(ModelIntegrityError):
        ClassifyProcessor(tmp_path, model_names={"text": "intent"})


def test_predict_proba_rejects_wrong_shape(intent):
    with pytest.raises(ModelInputError):
        intent.predict_proba(np.zeros((1, 383), dtype=np.float32))


# ----------------------------------------------------------------- intents
def test_intent_model_on_banking77_queries(embed, intent):
    records = _text_records(embed, [q for q, _ in QUERIES])
    preds = intent.predict(np.array([r["doc_vector"] for r in records], dtype=np.float32))
    assert preds == [label for _, label in QUERIES]


@pytest.mark.skipif(not (BANKING77 / "test.csv").exists(), reason="../shared corpus not present")
def test_intent_accuracy_on_banking77_test_sample(embed, intent):
    with (BANKING77 / "test.csv").open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))[::10]  # 308 queries spread over all intents
    X = embed.embedder.embed([r["text"] for r in rows])
    acc = float(np.mean([p == r["category"] for p, r in zip(intent.predict(X), rows)]))
    assert acc >= intent.manifest["metric_floors"]["test_accuracy"] - 0.03


# ----------------------------------------------------------- the processor
def test_texts_are_classified_and_routed(embed, stub_models_dir):
    proc = ClassifyProcessor(stub_models_dir)
    records = _text_records(embed, [q for q, _ in QUERIES])
    outcomes = proc.process_batch(records)
    for (_query, label), outcome in zip(QUERIES, outcomes):
        pred = outcome[0]
        assert pred["label"] == label
        assert pred["kind"] == "text" and pred["producer"] == "classify"
        assert len(pred["top_labels"]) == 3 and pred["top_labels"][0]["label"] == label
        assert pred["top_labels"][0]["score"] == pytest.approx(pred["confidence"])
        assert pred["model_name"] == "intent-banking77"
        assert pred["duplicates"] == [] and pred["fields"] is None
        assert pred["routing"] in ("auto", "review")
        out_of_scope = [r for r in pred["reasons"] if r.startswith("out_of_scope")]
        if pred["confidence"] >= proc.thresholds["text"][pred["label"]] and not out_of_scope:
            assert pred["routing"] == "auto" and pred["reasons"] == []
    # a forced high threshold sends everything to review with a reason
    strict = ClassifyProcessor(stub_models_dir, auto_threshold=1.01)
    pred = strict.process_batch(records[:1])[0][0]
    assert pred["routing"] == "review" and pred["reasons"][0].startswith("low confidence ")


def test_out_of_scope_texts_go_to_review_with_the_reason(embed, stub_models_dir):
    proc = ClassifyProcessor(stub_models_dir)
    records = _text_records(embed, OUT_OF_SCOPE_QUERIES + [QUERIES[0][0]])
    *oos, in_scope = (o[0] for o in proc.process_batch(records))
    for pred in oos:
        assert pred["routing"] == "review"
        assert pred["reasons"][0].startswith("out_of_scope: distance "), pred["reasons"]
    assert not any(r.startswith("out_of_scope") for r in in_scope["reasons"])
    assert in_scope["label"] == QUERIES[0][1]


def test_bad_vector_fails_only_its_record(embed, stub_models_dir):
    proc = ClassifyProcessor(stub_models_dir)
    good = _text_records(embed, ["I lost my card"])[0]
    short = {**good, "doc_id": "short", "doc_vector": good["doc_vector"][:100]}
    nan = {**good, "doc_id": "nan", "doc_vector": [float("nan")] * 384}
    other_model = {**good, "doc_id": "other", "model_sha256": "f" * 64}
    unknown_kind = {**good, "doc_id": "k", "kind": "audio"}
    outcomes = proc.process_batch([short, good, nan, other_model, unknown_kind, _doc_record("d", "receipt", FIELDS)])
    assert isinstance(outcomes[0], ModelInputError)
    assert isinstance(outcomes[1], list) and outcomes[1][0]["label"] == "lost_or_stolen_card"
    assert isinstance(outcomes[2], ModelInputError)
    assert isinstance(outcomes[3], ModelInputError)
    assert isinstance(outcomes[4], ModelInputError)
    assert outcomes[5][0]["label"] == "receipt"


def test_documents_fields_and_duplicates(stub_models_dir):
    calls = []

    def find_duplicates(doc_id: str, vector: list[float]) -> list[tuple[str, float]]:
        calls.append((doc_id, len(vector)))
        if doc_id == "dup":
            return [("dup", 1.0), ("original-7", 0.97), ("far", 0.5)]
        return [("far", 0.3)]

    proc = ClassifyProcessor(stub_models_dir, find_duplicates=find_duplicates, duplicate_threshold=0.95)
    outcomes = proc.process_batch(
        [
            _doc_record("ok", "invoice", FIELDS),
            _doc_record("dup", "receipt", FIELDS),
            _doc_record("nofields", "receipt", {**FIELDS, "total_amount": None, "dates": []}),
            _doc_record("form", "tax_form", None),
        ]
    )
    ok, dup, nofields, form = (o[0] for o in outcomes)
    assert ok["label"] == "invoice" and ok["routing"] == "auto" and ok["reasons"] == []
    assert ok["fields"] == FIELDS and ok["model_name"] == "doctype-stub" and ok["filename"] == "ok.pdf"
    assert dup["routing"] == "review"
    assert dup["reasons"] == ["possible duplicate of original-7 (similarity 0.97)"]
    assert dup["duplicates"] == [{"doc_id": "original-7", "score": 0.97}]
    assert nofields["routing"] == "review"
    assert nofields["reasons"] == ["missing required field: dates", "missing required field: total_amount"]
    assert form["label"] == "tax_form" and form["routing"] == "auto"
    assert sorted(calls) == [("dup", 384), ("form", 384), ("nofields", 384), ("ok", 384)]


def test_duplicate_finder_error_fails_only_its_record(stub_models_dir):
    from conveyor.processors.errors import TransientError

    def find_duplicates(doc_id, vector):
        if doc_id == "boom":
            raise TransientError("milvus unavailable")
        return []

    proc = ClassifyProcessor(stub_models_dir, find_duplicates=find_duplicates)
    outcomes = proc.process_batch([_doc_record("boom", "receipt", FIELDS), _doc_record("fine", "receipt", FIELDS)])
    assert isinstance(outcomes[0], TransientError)
    assert outcomes[1][0]["routing"] == "auto"


def test_predictions_validate_against_schema(embed, stub_models_dir):
    fastavro = pytest.importorskip("fastavro")
    schema = fastavro.parse_schema(schema_json("prediction.avsc"))
    proc = ClassifyProcessor(stub_models_dir, find_duplicates=lambda d, v: [("x", 0.99)])
    records = _text_records(embed, ["card declined"]) + [_doc_record("d", "receipt", FIELDS)]
    for outcome in proc.process_batch(records):
        assert fastavro.validation.validate(outcome[0], schema, raise_errors=True)


def test_near_duplicates_in_one_batch_are_flagged_without_the_index(stub_models_dir):
    base = _centers()[DOC_LABELS.index("receipt")]
    rescan = base + 0.05 * np.eye(len(base))[0]
    rescan = rescan / np.linalg.norm(rescan)
    proc = ClassifyProcessor(stub_models_dir, find_duplicates=lambda d, v: [], duplicate_threshold=0.9)
    first, second, other = proc.process_batch([
        _doc_record("scan-a", "receipt", FIELDS, vector=base),
        _doc_record("scan-b", "receipt", FIELDS, vector=rescan),
        _doc_record("invoice", "invoice", FIELDS),
    ])
    assert first[0]["duplicates"] == []  # the earlier document is the original
    assert [d["doc_id"] for d in second[0]["duplicates"]] == ["scan-a"]
    assert second[0]["routing"] == "review" and "possible duplicate of scan-a" in second[0]["reasons"][0]
    assert other[0]["duplicates"] == []
