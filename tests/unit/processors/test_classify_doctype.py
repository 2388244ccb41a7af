"""The shipped document-type model: manifest, loading, and a text-layer smoke run."""
from __future__ import annotations

from pathlib import Path

import pytest

from conveyor.processors.classify import ClassifyProcessor
from conveyor.processors.classify.models import OnnxClassifier
from conveyor.processors.embed.model import MODEL_SHA256
from conveyor.processors.models import MODELS_DIR
from conveyor.schemas import schema_json

REPO = Path(__file__).resolve().parents[3]
CORPUS = REPO.parent / "shared" / "corpus"
DOCTYPE_DIR = MODELS_DIR / "doctype"


def test_shipped_doctype_manifest():
    clf = OnnxClassifier.load(DOCTYPE_DIR)
    m = clf.manifest
    assert {"receipt", "invoice", "credit_note", "purchase_order", "tax_form", "form", "contract",
            "other"} == set(clf.labels)
    for key in ("training_data", "training_data_licence", "training_command", "metrics", "metric_floors",
                "embedding_model", "created_with", "seed"):
        assert key in m, key
    assert m["embedding_model"]["sha256"] == MODEL_SHA256
    for metric, floor in m["metric_floors"].items():
        assert m["metrics"][metric] >= floor
    cm = m["metrics"]["cv_confusion_matrix"]["rows_true_cols_predicted"]
    assert sum(map(sum, cm)) == m["training_data"]["documents"]
    # trained on the corpus folders that may ship, the SROIE training split and the built datasets
    allowed = ("softmatic_receipts_de/", "invoice2data/", "azure_form_recognizer_samples/", "sroie/img/")
    test_only = [r["source"] for r in m["metrics"]["leave_one_source_out"]["per_source"] if not r["shippable"]]
    assert test_only == ["mindee", "cms1500"]
    assert all(f["file"].startswith(allowed) for f in m["training_data"]["corpus_files"])
    assert {"sroie", "funsd", "kleister-nda", "zugferd"} <= set(m["training_data"]["per_source"])
    assert len(m["training_data"]["datasets_manifest_sha256"]) == 64
    assert (DOCTYPE_DIR / "NOTICE").exists()


def test_default_processor_loads_shipped_models():
    proc = ClassifyProcessor()
    assert proc.classifiers["text"].name == "intent-banking77"
    assert proc.classifiers["document"].name == "doctype"
    # each type auto only where its out-of-source predictions reach the 0.98 Wilson bound
    per_type = proc.classifiers["document"].manifest["auto_routing"]["per_type"]
    for label, threshold in proc.thresholds["document"].items():
        entry = per_type[label]
        assert threshold == (entry["threshold"] if entry["enabled"] else float("inf")), label
        assert not entry["enabled"] or entry["precision_lower_bound"] >= 0.98
        assert entry["enabled"] or entry["reason"]


@pytest.mark.skipif(not CORPUS.exists(), reason="../shared corpus not present")
@pytest.mark.parametrize(
    "rel, label",
    [
        ("invoice2data/compare/AzureInterior.pdf", "invoice"),
        ("azure_form_recognizer_samples/irs_w8ben_labeled/fw8ben_1.pdf", "tax_form"),
    ],
)
def test_text_layer_documents_end_to_end(rel, label):
    """extract → embed → classify on text-layer PDFs (no OCR; in the training set: a smoke test)."""
    extract = pytest.importorskip("conveyor.processors.extract")
    from conveyor.processors.embed import EmbedProcessor

    data = (CORPUS / rel).read_bytes()
    ext = extract.extract_bytes(data, Path(rel).name)
    record = {"doc_id": "d1", "trace_id": "d1", "event_time": 0, "producer": "extract", "producer_version": "0",
              "filename": Path(rel).name, "content_type": "application/pdf", "sha256": "0" * 64, **ext}
    embedded = EmbedProcessor().process_batch([record])[0][0]
    pred = ClassifyProcessor().process_batch([embedded])[0][0]
    assert pred["label"] == label
    assert pred["kind"] == "document" and pred["model_name"] == "doctype"
    fastavro = pytest.importorskip("fastavro")
    schema = fastavro.parse_schema(schema_json("prediction.avsc"))
    assert fastavro.validation.validate(pred, schema, raise_errors=True)
