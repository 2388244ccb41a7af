"""``make datasets``: the training split of each repository, read from a real git clone, labelled,
deduplicated and recorded in a manifest; the other splits are never read."""
from __future__ import annotations

import json
import lzma
import subprocess
from pathlib import Path

import pytest

from conveyor.tools.datasets import funsd, kleister, load_manifest, sroie, zugferd
from conveyor.tools.datasets.build import build, manifest_digest
from conveyor.tools.datasets.clones import find_clone


def _repo(work: Path, files: dict[str, bytes]) -> Path:
    """A git repository at ``work`` holding ``files`` in one commit."""
    for rel, data in files.items():
        (work / rel).parent.mkdir(parents=True, exist_ok=True)
        (work / rel).write_bytes(data)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(work)]
    subprocess.run(["git", "init", "-q", str(work)], check=True)
    subprocess.run(git + ["add", "-A"], check=True)
    subprocess.run(git + ["commit", "-q", "-m", "data"], check=True)
    return work


def _sroie_files() -> dict[str, bytes]:
    label = {"company": "POPULAR BOOK CO. (M) SDN BHD", "date": "11/02/18", "address": "NO 8, JALAN 7/118B",
             "total": "11.80"}
    return {
        "training_data/images/001.jpg": b"jpeg one", "training_data/labels/001.json": json.dumps(label).encode(),
        "training_data/images/002.jpg": b"jpeg one", "training_data/labels/002.json": json.dumps(label).encode(),
        "training_data/images/003.jpg": b"jpeg three",
        "training_data/labels/003.json": json.dumps({**label, "date": "", "total": "RM 9.00"}).encode(),
        "testing_data/images/001.jpg": b"kept for the evaluation outside the project",
        "testing_data/labels/001.json": json.dumps(label).encode(),
    }


def test_only_the_training_split_is_read_duplicates_dropped_and_labels_normalised(tmp_path):
    _repo(tmp_path / "clones" / "ICDAR-2019-SROIE-dataset", _sroie_files())
    manifest = build([tmp_path / "clones"], tmp_path / "cache", extract=False, sources=(sroie.SOURCE,))
    docs = manifest["documents"]
    assert [d["path"] for d in docs] == ["training_data/images/001.jpg", "training_data/images/003.jpg"]
    assert manifest["sources"]["sroie"]["duplicates_dropped"] == [
        {"path": "training_data/images/002.jpg", "same_bytes_as": "sroie:training_data/images/001.jpg"}]
    assert docs[0]["truth"] == {"vendor": "POPULAR BOOK CO. (M) SDN BHD", "vendor_address": "NO 8, JALAN 7/118B",
                                "dates": ["2018-02-11"], "total_amount": "11.80"}
    assert "dates" not in docs[1]["truth"] and docs[1]["truth"]["total_amount"] == "9.00"  # an empty date: unlabelled
    assert docs[0]["label_source"] == "training_data/labels/001.json" and len(docs[0]["commit"]) == 40
    assert not any("testing_data" in d["path"] for d in docs)
    cached = tmp_path / "cache" / docs[0]["file"]
    assert cached.read_bytes() == b"jpeg one" and docs[0]["sha256"] in cached.name
    loaded = load_manifest(tmp_path / "cache")
    assert loaded["manifest_sha256"] == manifest_digest(docs) and Path(loaded["documents"][0]["file"]).is_file()


def test_a_missing_clone_is_named_with_the_command_that_gets_it(tmp_path):
    manifest = build([tmp_path / "nowhere"], tmp_path / "cache", extract=False, sources=(funsd.SOURCE,))
    assert manifest["documents"] == []
    assert "git clone https://github.com/Doc-LD/funsd-bench" in manifest["sources"]["funsd"]["missing"]


def test_a_bare_mirror_in_an_owner_plus_name_folder_is_found(tmp_path):
    work = _repo(tmp_path / "src", {"training_data/images/a.png": b"png",
                                    "training_data/annotations/a.json": b'{"form": [{"label": "question"}]}'})
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(tmp_path / "m" / "Doc-LD+funsd-bench" / "repo")],
                   check=True)
    clone = find_clone([tmp_path / "m"], "Doc-LD/funsd-bench")
    items = list(funsd.items(clone))
    assert [(i.path, i.doc_type, i.raw) for i in items] == [("training_data/images/a.png", "form",
                                                             {"entities": {"question": 1}})]


def test_kleister_keys_become_parties_and_an_effective_date_and_only_train_documents_are_read(tmp_path):
    inputs = "a.pdf\teffective_date party\tt\tt\tt\tt\nb.pdf\tparty\tt\tt\tt\tt\n"
    files = {"train/in.tsv.xz": lzma.compress(inputs.encode()),
             "train/expected.tsv": b"effective_date=2001-04-18 party=Eric_Dean_Sprunk party=Nike_Inc.\nparty=X_LLC\n",
             "documents/a.pdf": b"%PDF a", "documents/b.pdf": b"%PDF b", "documents/dev.pdf": b"%PDF dev"}
    _repo(tmp_path / "kleister-nda", files)
    clone = find_clone([tmp_path], "applicaai/kleister-nda")
    items = list(kleister.items(clone))
    assert [i.path for i in items] == ["documents/a.pdf", "documents/b.pdf"]
    assert items[0].truth == {"parties": ["Eric Dean Sprunk", "Nike Inc."], "effective_date": "2001-04-18"}
    assert items[1].truth == {"parties": ["X LLC"], "effective_date": None}  # states none


CII = b"""<?xml version="1.0" encoding="UTF-8"?>
<rsm:CrossIndustryInvoice xmlns:rsm="urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100"
  xmlns:ram="urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100"
  xmlns:udt="urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100">
 <rsm:ExchangedDocument><ram:ID>471102</ram:ID><ram:TypeCode>380</ram:TypeCode>
  <ram:IssueDateTime><udt:DateTimeString format="102">20180305</udt:DateTimeString></ram:IssueDateTime>
 </rsm:ExchangedDocument>
 <rsm:SupplyChainTradeTransaction><ram:ApplicableHeaderTradeAgreement>
  <ram:SellerTradeParty><ram:Name>Lieferant
    GmbH</ram:Name><ram:PostalTradeAddress><ram:PostcodeCode>80333</ram:PostcodeCode>
   <ram:LineOne>Lieferantenstra\xc3\x9fe 20</ram:LineOne><ram:CityName>M\xc3\xbcnchen</ram:CityName></ram:PostalTradeAddress>
   <ram:SpecifiedTaxRegistration><ram:ID schemeID="FC">201/113/40209</ram:ID></ram:SpecifiedTaxRegistration>
   <ram:SpecifiedTaxRegistration><ram:ID schemeID="VA">DE123456789</ram:ID></ram:SpecifiedTaxRegistration>
  </ram:SellerTradeParty><ram:BuyerTradeParty><ram:Name>Kunden AG Mitte</ram:Name></ram:BuyerTradeParty>
 </ram:ApplicableHeaderTradeAgreement>
 <ram:ApplicableHeaderTradeSettlement><ram:InvoiceCurrencyCode>EUR</ram:InvoiceCurrencyCode>
  <ram:SpecifiedTradeSettlementPaymentMeans><ram:PayeePartyCreditorFinancialAccount>
   <ram:IBANID>DE75 5121 0800 1245 1261 99</ram:IBANID></ram:PayeePartyCreditorFinancialAccount>
  </ram:SpecifiedTradeSettlementPaymentMeans>
  <ram:SpecifiedTradePaymentTerms><ram:DueDateDateTime><udt:DateTimeString format="102">20180404</udt:DateTimeString>
  </ram:DueDateDateTime></ram:SpecifiedTradePaymentTerms>
  <ram:SpecifiedTradeSettlementHeaderMonetarySummation><ram:TaxBasisTotalAmount>198.00</ram:TaxBasisTotalAmount>
   <ram:TaxTotalAmount currencyID="USD">1.00</ram:TaxTotalAmount><ram:TaxTotalAmount currencyID="EUR">37.62</ram:TaxTotalAmount>
   <ram:GrandTotalAmount>235.62</ram:GrandTotalAmount></ram:SpecifiedTradeSettlementHeaderMonetarySummation>
 </ram:ApplicableHeaderTradeSettlement></rsm:SupplyChainTradeTransaction>
</rsm:CrossIndustryInvoice>"""


def test_zugferd_truth_is_read_from_the_embedded_cross_industry_invoice():
    code, truth, _ = zugferd.parse_truth(CII)
    assert code == "380" and truth == {
        "document_number": "471102", "dates": ["2018-03-05"], "due_date": "2018-04-04", "total_amount": "235.62",
        "net_amount": "198.00", "tax_amount": "37.62", "currency": "EUR", "vendor": "Lieferant GmbH",
        "vendor_address": "Lieferantenstraße 20 80333 München", "supplier_tax_id": "DE123456789",
        "iban": "DE75512108001245126199", "customer": "Kunden AG Mitte"}


@pytest.mark.parametrize("code, total, expected", [
    ("380", "10.00", "invoice"), ("387", "10.00", "invoice"), ("389", "10.00", "credit_note"),
    ("381", "10.00", "credit_note"), ("384", "-8.79", "credit_note"), ("384", "8.79", "invoice"),
    ("220", "1.00", "purchase_order"), ("231", "1.00", "purchase_order")])
def test_zugferd_types_follow_the_document_code_and_the_sign_of_the_total(code, total, expected):
    assert zugferd.doc_type_of(code, {"total_amount": total})[0] == expected


def test_the_readable_renderings_of_the_xml_are_left_out():
    assert zugferd.is_rendering("Beispiel-Rechnungen für ZUGFeRD 2.2, (c) FeRD 2022\nSeite 1 von 2")
    assert zugferd.is_rendering("Verkäufer\nNummer: 549910\nName: Lieferant GmbH\nAnschrift: Lieferantenstraße 20")
    assert not zugferd.is_rendering("Lieferant GmbH\nRechnung Nr. 471102\nGesamtbetrag 235,62 EUR")
