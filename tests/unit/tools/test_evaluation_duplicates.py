"""Duplicate-evaluation helpers and the known-issuer templates (no model, no corpus)."""
from __future__ import annotations

from conveyor.processors.extract.fields.issuers import load_issuer_templates, match_issuer
from conveyor.tools.evaluation.duplicates import document_numbers, fields_conflict, numbers_agree


def test_numbers_of_a_rescan_agree_and_those_of_two_fills_of_a_form_do_not():
    receipt = document_numbers("LIDL 02.03.20 15:59\nEmmentaler 2,59 x2 5,18\nzu zahlen 7,16\nBar 10,00")
    rescan = document_numbers("LIDL 02.03.20 15:59\nEmmentaler 2.59 x2 5.18\nzu zahlen 7.16\nBar 1O,00")  # one misread
    assert numbers_agree(receipt, rescan)
    form_a = document_numbers("Form W-9 (Rev. 10-2018)\nSSN 123-45-6789\nZIP 98005\nAccount 123456789123")
    form_b = document_numbers("Form W-9 (Rev. 10-2018)\nSSN 233-44-5566\nZIP 15213\nAccount 333444567890")
    assert not numbers_agree(form_a, form_b)
    assert document_numbers("7,16 and 7.16 and 12") == {"716": 2}


def test_key_fields_conflict_only_when_both_sides_have_a_value():
    a = {"total_amount": "7.16", "dates": ["2020-03-02"], "document_number": None}
    assert not fields_conflict(a, dict(a))
    assert not fields_conflict(a, {"total_amount": None, "dates": [], "document_number": "42"})
    assert fields_conflict(a, {**a, "total_amount": "7.61"})


def test_issuer_templates_match_on_all_keywords(tmp_path):
    (tmp_path / "acme.yml").write_text("issuer: ACME Corp\nkeywords:\n  - ACME\n  - 'VAT: DE\\d+'\n", encoding="utf-8")
    (tmp_path / "other.json").write_text('{"issuer": "Other", "keywords": ["Other Ltd"], "exclude_keywords": ["Credit"]}',
                                         encoding="utf-8")
    (tmp_path / "broken.yml").write_text("issuer: Broken\nkeywords: ['(']\n", encoding="utf-8")
    templates = load_issuer_templates(tmp_path)
    assert [t.issuer for t in templates] == ["ACME Corp", "Other"]
    assert match_issuer("ACME invoice, VAT: DE123", templates) == "ACME Corp"
    assert match_issuer("ACME invoice without its VAT id", templates) is None
    assert match_issuer("Other Ltd invoice", templates) == "Other"
    assert match_issuer("Other Ltd Credit note", templates) is None
