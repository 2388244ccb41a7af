"""End to end: every processor as its own process on real documents and texts.

Checks that every input is accounted for exactly once (predictions ∪ dead letters),
that damaged files end as dead letters with a reason while no processor dies, and
that Milvus holds exactly the expected chunk rows.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from conveyor.streams.kafka.admin import create_topics
from conveyor.streams.kafka.io import InputProducer, iter_files, read_texts_csv
from conveyor.streams.kafka.serde import AvroSerde
from conveyor.streams.kafka.topics import topic
from conveyor.streams.runtime.supervisor import Supervisor, process_groups
from conveyor.tools.accounting import collect
from conveyor.tools.demo.run import CORPUS, count_milvus_rows
from tests.integration.helpers import read_all

pytestmark = pytest.mark.slow

SHARED_BAD = Path(__file__).resolve().parents[2].parent / "shared" / "corpus" / "bad_and_edge_files"
# Files in ../shared/corpus/bad_and_edge_files that are damaged, empty or unsupported: each must
# end as a dead letter with a reason. (The odd-but-valid scans there OCR fine, slowly; the extract
# unit tests cover them.)
DAMAGED = {
    "pillow/truncated_jpeg.jpg", "pillow/broken.png", "pillow/photoshop-200dpi-broken.jpg",
    "mindee/blank.pdf", "mindee/blank_1.pdf", "mindee/receipt.heic",
    "ocrmypdf/invalid.pdf", "ocrmypdf/livecycle.pdf", "ocrmypdf/no_contents.pdf",
}
N_TEXTS = 40


def test_pipeline_accounts_for_every_input_once(settings, tmp_path):
    settings = dataclasses.replace(settings, metrics_port=0)
    create_topics(settings)
    supervisor = Supervisor(settings, process_groups(settings), log_dir=tmp_path / "logs", grace=60)
    supervisor.start()
    names: dict[str, str] = {}
    try:
        with InputProducer(settings) as producer:
            for path, err in iter_files([CORPUS]):
                assert err is None
                if path.suffix != ".csv":
                    names[producer.document(path)["doc_id"]] = "demo/" + path.relative_to(CORPUS).as_posix()
            if SHARED_BAD.is_dir():
                for rel in sorted(DAMAGED):
                    names[producer.document(SHARED_BAD / rel)["doc_id"]] = f"bad/{rel}"
            texts = {}
            for _, text in read_texts_csv(CORPUS / "texts" / "banking77_sample.csv", "text", None, N_TEXTS):
                texts[producer.text(text)["doc_id"]] = text
        ledger = collect(settings, set(names) | set(texts), timeout=900, settle=5, on_idle=supervisor.check)
        for child in supervisor.children:
            assert child.proc.poll() is None, f"{child.group} died; see {child.log_path}"
            assert child.restarts == 0
    finally:
        codes = supervisor.stop()
    logs = {str(c.log_path): c.log_path.read_text()[-3000:] for c in supervisor.children if c.log_path.exists()}
    assert not ledger.missing, f"unaccounted: {[names.get(i, i) for i in ledger.missing]}\n{logs}"
    assert not ledger.duplicated, [names.get(i, i) for i in ledger.duplicated]
    assert ledger.unexpected == 0
    assert all(code == 0 for code in codes.values()), (codes, logs)

    by_name = {v: k for k, v in names.items()}
    # Damaged files end as dead letters with a reason; good demo documents get predictions.
    for rel in ["demo/damaged/truncated_jpeg.jpg", "demo/damaged/broken.png"] + (
            [f"bad/{d}" for d in DAMAGED] if SHARED_BAD.is_dir() else []):
        dead = ledger.dead_letters.get(by_name[rel])
        assert dead, f"{rel} should be a dead letter"
        assert dead[0]["reason"] and dead[0]["processor"] == "extract", dead
    for doc_id, rel in names.items():
        if rel.startswith("demo/") and "/damaged/" not in rel:
            assert doc_id in ledger.predictions, f"{rel}: {ledger.dead_letters.get(doc_id)}"
    for doc_id in texts:
        pred = ledger.predictions[doc_id][0]
        assert pred["kind"] == "text" and pred["model_name"] and 0 <= pred["confidence"] <= 1
    # The uncropped re-scan of a receipt is flagged as a duplicate of the cropped scan (or vice versa).
    scan_a, scan_b = by_name["demo/receipts/lidl_02032020_02_00716.jpg"], by_name["demo/receipts/lidl_02032020_02_00716_B.jpg"]
    flagged = {d["doc_id"] for d in ledger.predictions[scan_a][0]["duplicates"]} | {
        d["doc_id"] for d in ledger.predictions[scan_b][0]["duplicates"]}
    assert flagged & {scan_a, scan_b}, "re-scanned receipt not flagged as a duplicate"
    receipt = ledger.predictions[by_name["demo/receipts/aldi_02032020_19_02423.jpg"]][0]
    assert receipt["kind"] == "document" and receipt["routing"] in ("auto", "review")
    # Documents are decided: the demo's clean receipts go straight through with their date and total,
    # and a document is auto only with no reason against it (issue 24).
    decided = [ledger.predictions[by_name[f"demo/receipts/{n}"]][0] for n in (
        "toom_04042020_03_04877.jpg", "marktkauf_03042020_12_02881.jpg", "hornbach_23092016_03_15200.jpg")]
    auto = [p for p in decided if p["routing"] == "auto"]
    assert len(auto) >= 2, [(p["filename"], p["routing"], p["reasons"]) for p in decided]
    for p in auto:
        assert p["label"] == "receipt" and p["fields"]["dates"] and p["fields"]["total_amount"] and not p["reasons"]
    for preds in ledger.predictions.values():
        assert preds[0]["routing"] == "review" or not preds[0]["reasons"]

    # Milvus holds exactly one row per chunk of every embedded input.
    serde = AvroSerde(settings)
    embedded = [serde.decode(m.topic(), m.value()) for m in read_all(settings, topic(settings, "embedded"),
                                                                     expect=len(ledger.predictions))]
    expected_rows = {c["chunk_id"] for e in embedded for c in e["chunks"]}
    assert {e["doc_id"] for e in embedded} == set(ledger.predictions)
    assert count_milvus_rows(settings, set(names) | set(texts)) == len(expected_rows)
