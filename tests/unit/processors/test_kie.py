"""The key-field model's pieces: rows, candidates, features, and a small model trained, exported to
ONNX, loaded, and applied as the extract stage applies it."""
from __future__ import annotations

import json

import numpy as np
import pytest

from conveyor.processors.errors import ModelIntegrityError
from conveyor.processors.extract.fields.confidence import gate
from conveyor.processors.extract.kie import MODEL_RULE, KeyFieldModel, apply
from conveyor.processors.extract.kie.candidates import candidates, name_value
from conveyor.processors.extract.kie.features import feature_matrix, feature_names
from conveyor.processors.extract.kie.rows import document_rows
from conveyor.processors.extract.ocr import OcrLine

RECEIPT = """POPULAR BOOK
CO. (M) SDN 3HD
NO 8, JALAN 7/118B, DESA TUN RAZAK
56000 KUALA LUMPUR
(GST REG NO. 001492992000)
TAX INVOICE
Date: 11/02/2018 14:52
ITEM 2 X 5.90 11.80
TOTAL 11.80
CASH 20.00
CHANGE 8.20"""

CONTRACT = """NON-DISCLOSURE AGREEMENT
This Agreement is made as of the 4th day of May 2005 by and between NEON SYSTEMS, INC., a Delaware
corporation (the "Company"), and John J. Smith ("Employee").
1. Confidential Information shall mean any information disclosed by the Company.
IN WITNESS WHEREOF, the parties have signed this Agreement on June 1, 2005."""


def _text_page(text: str) -> list[dict]:
    return [{"page_number": 1, "text": text, "method": "text_layer", "lines": [], "size": None}]


def _ocr_page(text: str) -> list[dict]:
    lines = [OcrLine(text=row, box=((10.0, 30.0 * i), (400.0, 30.0 * i), (400.0, 30.0 * i + 20), (10.0, 30.0 * i + 20)),
                     score=0.9 - 0.01 * i) for i, row in enumerate(text.splitlines())]
    return [{"page_number": 1, "text": text, "method": "ocr", "lines": lines, "size": (500, 30 * len(lines) + 10)}]


def test_rows_carry_ocr_boxes_and_scores_or_the_text_layer_line_positions():
    ocr = document_rows(_ocr_page(RECEIPT))
    assert [r.text for r in ocr] == RECEIPT.splitlines() and all(r.geometry for r in ocr)
    assert ocr[0].top < ocr[1].top and ocr[0].ocr_score == pytest.approx(0.9)
    text = document_rows(_text_page("a\nb\nc\nd"))
    assert [r.geometry for r in text] == [False] * 4 and [r.top for r in text] == [0.0, 0.25, 0.5, 0.75]


def test_receipt_candidates_hold_the_right_values_with_the_evidence_that_tells_them_apart():
    rows = document_rows(_ocr_page(RECEIPT))
    cands = candidates(rows, {"total_amount": "11.80", "dates": ["2018-02-11"], "vendor": None})
    date = next(c for c in cands["dates"] if c.value == "2018-02-11")
    assert date.signals["with_time"] == 1.0 and date.signals["label_rank"] <= 1 and date.signals["rule_pick"] == 1.0
    total = [c for c in cands["total_amount"] if c.value == "11.80" and c.signals["kind_weak"]]
    assert total and total[0].signals["in_paid"] == 1.0  # cash 20.00 - change 8.20
    change = next(c for c in cands["total_amount"] if c.value == "8.20")
    assert change.signals["kind_change"] == 1.0
    vendors = {c.value: c for c in cands["vendor"]}
    assert "POPULAR BOOK CO. (M) SDN BHD" in vendors and vendors["POPULAR BOOK CO. (M) SDN BHD"].signals["repaired"] == 1.0
    assert "NO 8, JALAN 7/118B, DESA TUN RAZAK 56000 KUALA LUMPUR" in {c.value for c in cands["vendor_address"]}


def test_a_label_before_a_colon_and_a_misread_legal_form_are_taken_off_a_name():
    assert name_value("Dimiliki:banh mi cafe sdn bhd 1110644-W") == ("banh mi cafe sdn bhd", True, False)
    assert name_value("WAHIN HARDWARE SIN BHI") == ("WAHIN HARDWARE SDN BHD", False, True)
    assert name_value("TAX INVOICE") == ("TAX INVOICE", False, False)


def test_contract_candidates_read_the_preamble_and_the_signature_block():
    rows = document_rows(_text_page(CONTRACT))
    cands = candidates(rows, {}, ["effective_date", "parties"])
    effective = {c.value: c for c in cands["effective_date"]}
    assert set(effective) == {"2005-05-04", "2005-06-01"}  # "the 4th day of May 2005" is a date too
    assert effective["2005-05-04"].signals["as_of"] == 1.0 and effective["2005-06-01"].signals["witness"] == 1.0
    parties = {c.value: c for c in cands["parties"]}
    assert {"NEON SYSTEMS, INC.", "John J. Smith"} <= set(parties)
    assert parties["NEON SYSTEMS, INC."].signals["between"] == 1.0 and parties["John J. Smith"].signals["alias_after"] == 1.0


def test_features_have_the_named_width_and_hash_words_the_same_way_every_time():
    rows = document_rows(_ocr_page(RECEIPT))
    cands = candidates(rows, {}, ["total_amount"])["total_amount"]
    X = feature_matrix("total_amount", cands, rows)
    assert X.shape == (len(cands), len(feature_names("total_amount"))) and X.dtype == np.float32
    assert np.array_equal(X, feature_matrix("total_amount", cands, rows))
    names = feature_names("total_amount")
    total = [i for i, c in enumerate(cands) if c.signals["kind_weak"]][0]
    assert X[total, names.index("signal_kind_weak")] == 1.0 and X[total, names.index("ocr_score_min")] > 0


@pytest.fixture(scope="module")
def total_model(tmp_path_factory):
    """A total scorer trained on 40 variants of the receipt above, exported as the trainer exports it."""
    pytest.importorskip("skl2onnx")
    from conveyor.tools.training.train_keyfields import export_field, make_classifier

    X, y = [], []
    for k in range(40):
        total = f"{10 + k}.{k % 10}0"
        text = RECEIPT.replace("11.80", total).replace("20.00", f"{50 + k}.00")
        rows = document_rows(_ocr_page(text))
        cands = candidates(rows, {}, ["total_amount"])["total_amount"]
        X.append(feature_matrix("total_amount", cands, rows))
        y += [c.value == total and c.signals["kind_weak"] == 1.0 for c in cands]
    clf = make_classifier().set_params(max_iter=30, min_samples_leaf=2).fit(np.vstack(X), np.array(y, dtype=int))
    folder = tmp_path_factory.mktemp("keyfields")
    name, sha = export_field(clf, X[0].shape[1], folder, "total_amount")
    manifest = {"name": "keyfields", "version": "0.0.1", "fields": {"total_amount": {
        "file": name, "sha256": sha, "features": list(feature_names("total_amount")), "use": "model",
        "calibration": {"a": 1.0, "b": 0.0}, "emit_threshold": 0.5}}}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def test_the_model_chooses_the_total_and_the_extract_stage_emits_it_with_its_evidence(total_model):
    model = KeyFieldModel.load(total_model)
    pages = _ocr_page(RECEIPT.replace("11.80", "42.50").replace("20.00", "50.00").replace("8.20", "7.50"))
    values, evidence = {"total_amount": "7.50", "dates": []}, {}
    learned = apply(values, evidence, pages, None, model)
    assert values["total_amount"] == "42.50" and evidence["total_amount"].rule == MODEL_RULE
    assert evidence["total_amount"].text == "TOTAL 42.50" and learned["total_amount"][1] == 0.5
    out = gate(values, evidence, learned=learned)
    assert out["total_amount"] == "42.50" and out["confidence"]["total_amount"] >= 0.5 and not out["withheld"]
    below = gate(values, evidence, learned={"total_amount": (0.4, 0.5)})
    assert below["total_amount"] is None
    assert below["withheld"]["total_amount"] == "model confidence 0.40 < 0.50; candidate '42.50'"


def test_a_model_file_that_does_not_match_its_manifest_is_refused(total_model, tmp_path):
    for change in ("sha256", "features"):
        folder = tmp_path / change
        folder.mkdir()
        manifest = json.loads((total_model / "manifest.json").read_text())
        (folder / "total_amount.onnx").write_bytes((total_model / "total_amount.onnx").read_bytes())
        spec = manifest["fields"]["total_amount"]
        spec[change] = "0" * 64 if change == "sha256" else spec["features"][:-1]
        (folder / "manifest.json").write_text(json.dumps(manifest))
        with pytest.raises(ModelIntegrityError):
            KeyFieldModel.load(folder)
