"""Field-level confidence: a field is emitted only where its kind of evidence is right often enough;
a caption or an amount that is not printed is never a value; records written before these fields
existed still read."""
from __future__ import annotations

import copy
import io

import fastavro

from conveyor.processors.classify.routing import decide
from conveyor.processors.extract.fields import extract_fields
from conveyor.processors.extract.fields.confidence import gate
from conveyor.processors.extract.fields.evidence import EXTRA_FIELDS, locate
from conveyor.schemas import schema_json

TABLE = {"fields": {"total_amount": {"total label": {"n": 30, "correct": 30, "precision": 1.0}},
                    "dates": {"date label": {"n": 20, "correct": 20, "precision": 1.0},
                              "date": {"n": 20, "correct": 18, "precision": 0.9}},
                    "vendor": {"legal form": {"n": 20, "correct": 20, "precision": 1.0}}}}
FORM = ["c Employer's name, address and ZIP code", "CONTOSO LTD", "Wages 2.00", "Date: 03/02/2024", "TOTAL 15.00"]


def _gated(lines: list[str], fields: dict | None = None) -> dict:
    text = "\n".join(lines)
    fields = fields or extract_fields(text)
    return gate(fields, locate(fields, [{"text": text, "method": "text_layer"}]), TABLE)


def test_a_field_is_emitted_with_its_confidence_and_evidence_only_when_its_rule_is_calibrated_high():
    out = _gated(["ACME Trading GmbH", "Datum 02.03.2020", "Summe EUR 7,16", "Bar 10,00", "Rückgeld 2,84"])
    assert out["total_amount"] == "7.16" and out["confidence"]["total_amount"] == 1.0
    assert out["dates"] == ["2020-03-02"] and out["confidence"]["dates"] == 1.0
    [total] = [e for e in out["evidence"] if e["field"] == "total_amount"]
    assert total == {"field": "total_amount", "rule": "total label", "page": 1, "line": 2, "text": "Summe EUR 7,16",
                     "bbox": None, "source": "text layer"}
    assert out["withheld"].get("currency", "").startswith("rule ")  # an uncalibrated rule is withheld, not guessed


def test_a_caption_is_never_a_vendor_and_an_unprinted_amount_is_never_a_total():
    fields = {"dates": [], "total_amount": "2.50", "currency": None, "document_number": None,
              "vendor": "c Employer's name, address and ZIP code CONTOSO LTD"}
    out = _gated(FORM, fields)
    assert out["vendor"] is None and "'caption' is never emitted" in out["withheld"]["vendor"]
    assert out["total_amount"] is None and "'not printed' is never emitted" in out["withheld"]["total_amount"]


def test_a_withheld_field_sends_the_document_to_review_with_its_name():
    out = _gated(["Lidl", "02.03.2020", "Summe 7,16"])
    assert out["dates"] == [] and out["withheld"]["dates"].endswith("candidate '2020-03-02'")
    routing, reasons = decide(kind="document", label="receipt", confidence=0.99, threshold=0.5, fields=out)
    assert routing == "review" and "low-confidence field dates" in reasons
    assert "missing required field: dates" not in reasons  # said once, as low confidence


def _without_new_fields(schema: dict) -> dict:
    old = copy.deepcopy(schema)
    for field in old["fields"]:
        if field["name"] == "fields":
            rec = field["type"] if isinstance(field["type"], dict) else next(t for t in field["type"] if isinstance(t, dict))
            rec["fields"] = [f for f in rec["fields"]
                             if f["name"] not in ("confidence", "withheld", "evidence") + EXTRA_FIELDS]
    return old


def _value(schema):
    """Some valid value of an Avro ``schema`` (null where allowed)."""
    if isinstance(schema, list):
        return None if "null" in schema else _value(schema[0])
    if isinstance(schema, dict):
        kind = schema["type"]
        if kind == "record":
            return {f["name"]: _value(f["type"]) for f in schema["fields"]}
        if kind in ("array", "map"):
            return [] if kind == "array" else {}
        return schema["symbols"][0] if kind == "enum" else _value(kind)
    return {"string": "x", "int": 1, "long": 1, "double": 1.0, "float": 1.0, "boolean": False, "bytes": b""}[schema]


def test_records_written_with_the_old_schemas_read_with_the_new_ones():
    for name in ("extracted", "embedded", "prediction"):
        new = schema_json(f"{name}.avsc")
        old = _without_new_fields(new)
        record = _value(old)
        record["fields"] = {"dates": ["2020-03-02"], "total_amount": "7.16", "currency": "EUR",
                            "document_number": None, "vendor": "Lidl"}
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, fastavro.parse_schema(old), record)
        buf.seek(0)
        read = fastavro.schemaless_reader(buf, fastavro.parse_schema(old), fastavro.parse_schema(new))
        assert read["fields"]["total_amount"] == "7.16", name
        assert read["fields"]["confidence"] == {} and read["fields"]["withheld"] == {} and read["fields"]["evidence"] == []
        assert all(read["fields"][name] is None for name in EXTRA_FIELDS), name


def test_a_tax_form_keeps_no_receipt_fields_even_when_they_were_read_confidently():
    from conveyor.processors.classify.routing import fields_for_type

    fields = {"dates": ["2024-01-05"], "total_amount": "5000.00", "currency": "USD", "document_number": None,
              "vendor": None, "confidence": {"total_amount": 1.0}, "withheld": {}, "evidence": []}
    form = fields_for_type("tax_form", fields)
    assert form["total_amount"] is None and form["currency"] is None and form["dates"] == ["2024-01-05"]
    assert form["withheld"]["total_amount"] == "not a field of a tax_form; candidate '5000.00'"
    assert "total_amount" not in form["confidence"]
    assert fields_for_type("invoice", fields)["total_amount"] == "5000.00" and fields_for_type("other", None) is None
    # what the type does not hold is withheld with its reason, and does not hold the form back
    assert decide(kind="document", label="tax_form", confidence=0.99, threshold=0.5, fields=form) == ("auto", [])
