"""Document function cues, and the document-type model that reads them beside the embedding."""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest

from conveyor.processors.classify import ClassifyProcessor
from conveyor.processors.classify.doc_cues import CUE_NAMES, cue_vector
from conveyor.processors.classify.routing import NOT_VALIDATED, auto_threshold_from, decide
from conveyor.processors.embed import EmbedProcessor
from conveyor.processors.errors import ModelIntegrityError
from conveyor.processors.models import MODELS_DIR

SROIE_RECEIPT = Path(__file__).resolve().parents[4] / "shared" / "corpus" / "sroie" / "img" / "053.jpg"
# Written for this test in the shape of a Malaysian till receipt: titled TAX INVOICE, paid in cash.
TILL_RECEIPT = """SYARIKAT PERNIAGAAN GIN KEE
TAX INVOICE
INVOICE NO: 18191 DATE: 02/01/2018 CASHIER: 1
KINGS SAFETY SHOES KWD 805 1 x 170.00 170.00
TOTAL INCLUSIVE GST @6% 170.00
CASH 200.00
CHANGE 30.00
GST SUMMARY AMOUNT TAX
SR @ 6% 160.38 9.62
THANK YOU. PLEASE COME AGAIN."""
INVOICE = """Fabrikam Supplies Ltd
Invoice number: INV-2041   Invoice date: 03/02/2024   Due date: 04/03/2024
Bill to: Contoso Residences, 12 High Street, Leeds
Consulting services, 10 hours 1,200.00
VAT 20% 240.00
Amount due 1,440.00 GBP
Payment terms: 30 days. IBAN GB29 NWBK 6016 1331 9268 19"""


def _cues(text: str) -> dict[str, float]:
    return dict(zip(CUE_NAMES, cue_vector(text).tolist()))


def test_a_paid_till_receipt_and_a_bill_have_opposite_cues_whatever_their_titles():
    receipt, invoice = _cues(TILL_RECEIPT), _cues(INVOICE)
    assert receipt["payment_made"] > 0 and receipt["point_of_sale"] > 0 and invoice["payment_made"] == 0
    assert invoice["payment_requested"] == 1.0 and receipt["payment_requested"] < invoice["payment_requested"]
    assert receipt["tax_report"] == receipt["insurance_claim"] == 0
    assert all(0.0 <= v <= 1.0 for v in receipt.values()) and cue_vector("").tolist() == [0.0] * len(CUE_NAMES)


def test_a_printed_time_of_day_is_a_cue_but_ratios_and_amounts_are_not():
    assert _cues("6/10/201913:59 Sales Associate: Paul")["time_of_day"] == 1.0  # glued to the date by OCR
    assert _cues("Datum 02.03.2020 Uhrzeit 18:04:11")["time_of_day"] == 1.0
    assert _cues(INVOICE)["time_of_day"] == 0.0
    assert _cues("ratio 12:30.5 and 10:15,00 EUR, 25:61")["time_of_day"] == 0.0


def _embedded(embed: EmbedProcessor, doc_id: str, text: str) -> dict:
    [[rec]] = embed.process_batch([{"doc_id": doc_id, "trace_id": doc_id, "event_time": 0, "producer": "extract",
                               "producer_version": "0", "filename": f"{doc_id}.jpg", "content_type": "image/jpeg",
                               "sha256": "0" * 64, "text": text, "pages": [], "page_count": 1, "fields": None}])
    return rec


@pytest.fixture(scope="module")
def embed() -> EmbedProcessor:
    return EmbedProcessor(intra_op_threads=1)


@pytest.mark.skipif(not SROIE_RECEIPT.exists(), reason="../shared corpus not present")
def test_the_shipped_model_reads_the_cues_and_never_routes_a_type_it_was_not_validated_for(embed):
    """A real Malaysian till receipt titled TAX INVOICE (SROIE) is a receipt, a type validated for auto
    routing; the invoice type is not (too few out-of-source invoices), whatever the override says."""
    from conveyor.processors.extract import extract_bytes

    text = extract_bytes(SROIE_RECEIPT.read_bytes(), SROIE_RECEIPT.name)["text"]
    assert "TAXINVOICE" in text.upper()  # as OCR reads it
    proc = ClassifyProcessor()
    [receipt], [invoice] = proc.process_batch([_embedded(embed, "r", text), _embedded(embed, "i", INVOICE)])
    assert receipt["label"] == "receipt" and invoice["label"] == "invoice"
    per_type = json.loads((MODELS_DIR / "doctype" / "manifest.json").read_text())["auto_routing"]["per_type"]
    assert per_type["receipt"]["enabled"] and not per_type["invoice"]["enabled"]
    assert not any(r.startswith(NOT_VALIDATED) for r in receipt["reasons"])
    assert invoice["routing"] == "review" and invoice["reasons"][0].startswith(NOT_VALIDATED)
    overridden = ClassifyProcessor(auto_threshold=0.5)  # CONVEYOR_AUTO_THRESHOLD does not enable a type
    assert overridden.thresholds["document"]["receipt"] == 0.5 and math.isinf(overridden.thresholds["document"]["invoice"])
    assert set(overridden.thresholds["text"].values()) == {0.5}


def test_auto_routing_disabled_in_a_manifest_means_review_with_its_reason():
    threshold = auto_threshold_from({"auto_threshold": None, "auto_routing": {"enabled": False}})
    assert math.isinf(threshold)
    assert decide(kind="document", label="invoice", confidence=0.99, threshold=threshold,
                  fields={"total_amount": "1.00", "dates": ["2024-01-01"], "document_number": "F-1"}) == \
        ("review", [f"{NOT_VALIDATED} (confidence 0.99)"])
    assert auto_threshold_from({"auto_threshold": 0.8}) == 0.8


def test_a_model_trained_on_other_cues_is_refused(tmp_path):
    shutil.copytree(MODELS_DIR, tmp_path / "models")
    path = tmp_path / "models" / "doctype" / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["input"]["cues"] = manifest["input"]["cues"][:-1] + ["line_count"]
    path.write_text(json.dumps(manifest))
    with pytest.raises(ModelIntegrityError, match="retrain"):
        ClassifyProcessor(tmp_path / "models")
