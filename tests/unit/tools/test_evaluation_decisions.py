"""The decisions section: a document is auto only when its type is and every required field of the
predicted type is emitted; straight-through only when all of that is right."""
from __future__ import annotations

import json

import pytest

from conveyor.tools.evaluation.decisions import decide_documents, decisions_section, summarise
from conveyor.tools.evaluation.report import EvalContext, SkipSection

TYPES = {
    "r1": {"source": "s", "label": "receipt", "predicted": "receipt", "type_auto": True},
    "r2": {"source": "s", "label": "receipt", "predicted": "receipt", "type_auto": True},
    "r3": {"source": "s", "label": "receipt", "predicted": "receipt", "type_auto": False},
    "f1": {"source": "t", "label": "form", "predicted": "receipt", "type_auto": True},
    "c1": {"source": "t", "label": "contract", "predicted": "contract", "type_auto": False},
}
OK = {"emitted": True, "right": True}
FIELDS = {
    "r1": {"fields": {"dates": OK, "total_amount": OK, "vendor": {"emitted": False, "right": False}}},
    "r2": {"fields": {"dates": OK, "total_amount": {"emitted": True, "right": False}}},
    "r3": {"fields": {"dates": OK, "total_amount": OK}},
    "f1": {"fields": {"dates": {"emitted": True, "right": False}, "total_amount": OK}},
}


def test_auto_needs_the_type_and_the_required_fields_and_straight_through_needs_them_right():
    rows = {sha: r for sha, r in zip(TYPES, decide_documents(TYPES, FIELDS))}
    assert rows["r1"]["auto"] and rows["r1"]["right"]  # the vendor is not required of a receipt
    assert rows["r2"]["auto"] and not rows["r2"]["right"]  # a wrong total emitted: auto, not straight-through
    assert not rows["r3"]["auto"]  # its type is below the threshold
    assert rows["f1"]["auto"] and not rows["f1"]["type_right"]  # a form taken for a receipt
    assert not rows["c1"]["auto"] and not rows["c1"]["verifiable"]  # a contract's parties are unlabelled here
    s = summarise(list(rows.values()))
    assert (s["documents"], s["auto"], s["auto_verifiable"], s["auto_right"]) == (5, 3, 3, 1)
    assert s["auto_share"] == 0.6 and s["straight_through"] == 0.2 and s["type_accuracy"] == 0.8
    assert s["fields"]["total_amount"] == {"labelled": 4, "emitted": 4, "right": 3, "coverage": 0.75,
                                           "precision": 0.75}
    assert s["auto_precision_lower_bound"] < s["auto_precision"] == pytest.approx(1 / 3, abs=1e-4)


def test_the_section_reads_the_left_out_files_or_says_how_to_make_them(tmp_path):
    ctx = EvalContext(corpus=tmp_path, cache_dir=tmp_path, models_dir=tmp_path)
    with pytest.raises(SkipSection, match="make models"):
        decisions_section(ctx)
    (tmp_path / "doctype-left-out.json").write_text(json.dumps({"documents": TYPES}))
    (tmp_path / "keyfields-left-out.json").write_text(json.dumps({"documents": FIELDS}))
    result = decisions_section(ctx)
    rows = {r.metric: r for r in result.rows}
    assert rows["all sources: auto share"].value == 0.6 and rows["all sources: auto share"].met
    assert rows["receipts: straight-through share"].value == pytest.approx(1 / 3, abs=1e-4)
    assert rows["s: total_amount precision"].value == pytest.approx(2 / 3, abs=1e-4)
    assert result.details["per_source"]["t"]["auto"] == 1


def test_a_joint_threshold_holds_back_documents_whose_required_fields_are_not_sure_enough():
    fields = {"r1": {"fields": {"dates": {**OK, "confidence": 0.99}, "total_amount": {**OK, "confidence": 0.90}}},
              "r2": {"fields": {"dates": {**OK, "confidence": 0.99}, "total_amount": {**OK, "confidence": 0.99}}}}
    types = {sha: TYPES[sha] for sha in ("r1", "r2")}
    rows = decide_documents(types, fields, {"receipt": 0.95})
    assert [r["auto"] for r in rows] == [False, True]


def test_the_joint_threshold_is_the_lowest_that_keeps_auto_documents_right(tmp_path):
    from conveyor.tools.training.train_keyfields import joint_thresholds

    types, fields = {}, {}
    for i in range(60):  # 40 sure and right, 20 less sure, of which 5 wrong
        sha = f"d{i}"
        types[sha] = {"source": "s", "label": "receipt", "predicted": "receipt", "type_auto": True}
        right = not (i >= 40 and i % 4 == 0)
        conf = 0.999 if i < 40 else 0.90
        fields[sha] = {"fields": {"dates": {"emitted": True, "right": True, "confidence": 0.999},
                                  "total_amount": {"emitted": True, "right": right, "confidence": conf}}}
    (tmp_path / "doctype-left-out.json").write_text(json.dumps({"documents": types}))
    out = joint_thresholds(tmp_path, fields)
    assert out["threshold"]["receipt"] == pytest.approx(0.999 * 0.999, abs=1e-6)
    assert out["evidence"]["receipt"] == {"auto_before": 60, "right_before": 55, "auto": 40, "right": 40,
                                          "precision": 1.0}
