"""The key fields beyond the first five: each read with its rule, and what must never be a value
(an IBAN failing its check digits, opening hours, a customer number, a product called "card")."""
from __future__ import annotations

from conveyor.processors.classify.routing import decide, fields_for_type
from conveyor.processors.extract import fields_from_pages
from conveyor.processors.extract.fields import extract_extra_fields, extract_fields
from conveyor.processors.extract.fields.confidence import gate
from conveyor.processors.extract.fields.evidence import locate

RECEIPT = ["Marktkauf Bielefeld", "Mo-Sa 7:30-21:00 Uhr", "Summe EUR 7,16", "MWST% MWST + Netto = Brutto",
           "A 7% 0,47 6,69 7,16", "EC-Karte 7,16", "USt-IdNr.: DE 811 569 869", "02.03.2020 14:52 Bon 4711"]
INVOICE = ["Coolblue B.V.", "Factuur 993548900", "Bill to: Pino Bluebird", "Invoice date   Due date",
           "19-04-2014   03-05-2014", "Subtotal 593,36", "BTW 21% 124,61", "Total 717,97",
           "IBAN NL50 INGB 0683 2513 09", "BTW-nummer NL810433941B01", "Betaald met iDEAL"]


def _extra(lines: list[str]) -> tuple[dict, dict]:
    text = "\n".join(lines)
    return extract_extra_fields([{"text": text, "method": "text_layer"}], extract_fields(text))


def test_a_receipt_gives_time_tax_table_payment_and_vat_id_with_their_rules():
    values, evidence = _extra(RECEIPT)
    assert values == {"due_date": None, "time": "14:52", "net_amount": "6.69", "tax_amount": "0.47",
                      "supplier_tax_id": "DE811569869", "iban": None, "customer": None, "payment_method": "card"}
    assert {name: ev.rule for name, ev in evidence.items()} == {
        "time": "beside date", "net_amount": "sums to total", "tax_amount": "sums to total",
        "supplier_tax_id": "checksum", "payment_method": "payment line"}
    assert evidence["tax_amount"].line == 4 and evidence["tax_amount"].text == "A 7% 0,47 6,69 7,16"


def test_an_invoice_gives_due_date_customer_iban_and_net_plus_tax_equal_to_the_total():
    values, evidence = _extra(INVOICE)
    assert values["due_date"] == "2014-05-03" and evidence["due_date"].rule == "due label, column"
    assert values["customer"] == "Pino Bluebird" and evidence["customer"].rule == "customer label"
    assert values["iban"] == "NL50INGB0683251309" and evidence["iban"].rule == "checksum"
    assert (values["net_amount"], values["tax_amount"]) == ("593.36", "124.61")
    assert evidence["net_amount"].rule == "sums to total"
    assert values["supplier_tax_id"] == "NL810433941B01" and values["payment_method"] == "online"


def test_a_tills_time_glued_by_ocr_to_its_date_wins_over_the_card_slips_minute_before():
    """German tills print date, time and receipt number in one row, which OCR glues together; the
    card slip above prints its own time a minute earlier (lines as OCR read softmatic receipts)."""
    from conveyor.processors.extract.fields.terms import find_time

    slip = ["Datum 07.04.20 14:37 Uhr", "AS-Zeit 07.04. 14:37 Uhr"]
    assert find_time(slip + ["3182 762902704 07.04.2014:38"]).value == "14:38"
    assert find_time(slip + ["06.04.202014:4328753535352 3351"]).value == "14:43"
    assert find_time(["Datum 08.09.17 15:20 Uhr", "6042 S337 104 11780608.09.2017 15:21"]).value == "15:21"
    assert (find_time(["29.04.2009:48 8665109 0013"]).value, find_time(["29.04.2009:48 8665109 0013"]).rule) == \
        ("09:48", "beside date")
    assert find_time(["28.02.20 09:580000545 004021 8130"]).value == "09:58"  # the receipt number glued on
    # not a date beside a time: a phone number, an IP address; not a time: a third minute digit
    assert find_time(["Tel 06-12-34-56-78 14:30"]).rule == find_time(["IP 192.168.1.10 12:30"]).rule == "time"
    assert find_time(["12.03.2020 12:345"]) is None
    assert fields_from_pages([{"text": "\n".join(RECEIPT), "method": "ocr"}])["time"] == "14:52"  # emitted


def test_what_must_never_be_a_value():
    values, evidence = _extra(["IBAN DE00 1234 5678 9012 3456 78", "Kundennummer: 6669263", "Customer: 12345",
                               "Memory card 16 GB 319,00", "Öffnungszeiten 8:00-20:00", "Total 319,00"])
    assert values["iban"] == "DE00123456789012345678" and evidence["iban"].rule == "invalid checksum"
    assert values["customer"] is None and values["payment_method"] is None and values["time"] is None
    out = gate({**extract_fields("x"), **values}, evidence, {"fields": {"iban": {"invalid checksum": {
        "n": 50, "correct": 50, "precision": 1.0}}}})
    assert out["iban"] is None and "'invalid checksum' is never emitted" in out["withheld"]["iban"]


def test_an_uncalibrated_extra_field_is_withheld_but_does_not_hold_the_document_back():
    text = "\n".join(INVOICE)
    fields = extract_fields(text)
    values, evidence = extract_extra_fields([{"text": text, "method": "text_layer"}], fields)
    table = {"fields": {"total_amount": {"total label": {"n": 30, "correct": 30, "precision": 1.0}},
                        "iban": {"checksum": {"n": 2, "correct": 2, "precision": 1.0}}}}
    out = gate({**fields, **values}, {**locate(fields, [{"text": text}]), **evidence}, table)
    assert out["iban"] is None and "not calibrated (measured on 2 < 5 documents)" in out["withheld"]["iban"]
    _, reasons = decide(kind="document", label="invoice", confidence=0.99, threshold=0.5, fields=out)
    assert not any("iban" in r for r in reasons)  # an invoice does not require its IBAN (REQUIRED_FIELDS)


def test_the_shipped_table_emits_the_calibrated_extra_fields_of_a_receipt():
    out = fields_from_pages([{"text": "\n".join(RECEIPT), "method": "text_layer"}])
    assert out["tax_amount"] == "0.47" and out["confidence"]["tax_amount"] >= 0.97
    assert out["supplier_tax_id"] == "DE811569869" and out["payment_method"] == "card"
    receipt = fields_for_type("receipt", out)
    assert receipt["payment_method"] == "card" and receipt["tax_amount"] == "0.47"
    form = fields_for_type("tax_form", out)
    assert form["tax_amount"] is None and form["withheld"]["tax_amount"].startswith("not a field of a tax_form")


def test_a_low_confidence_candidate_of_another_types_field_is_named_as_such():
    fields = {"dates": [], "total_amount": None, "tax_amount": None, "confidence": {}, "evidence": [],
              "withheld": {"tax_amount": "rule 'tax label' not calibrated (measured on 1 < 5 documents); candidate '2018.00'"}}
    form = fields_for_type("tax_form", fields)
    assert form["withheld"]["tax_amount"] == "not a field of a tax_form; candidate '2018.00'"
    assert decide(kind="document", label="tax_form", confidence=0.99, threshold=0.5, fields=form) == ("auto", [])
