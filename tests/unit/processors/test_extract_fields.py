"""Baseline key-field rules of the extract stage (pure text in, KeyFields dict out)."""
from __future__ import annotations

from decimal import Decimal

import pytest

from conveyor.processors.extract.fields import (
    extract_fields,
    find_currency,
    find_dates,
    find_document_number,
    find_total,
    find_vendor,
    parse_amount,
)


@pytest.mark.parametrize(
    "line, iso",
    [
        ("Datum: 02.03.2020", "2020-03-02"),
        ("Date: 28/11/2022", "2022-11-28"),
        ("2014-08-03", "2014-08-03"),
        ("Invoice Date: March 3, 2020", "2020-03-03"),
        ("Invoice Date: August 3 , 2014", "2014-08-03"),
        ("Factuurdatum: 19 april 2014", "2014-04-19"),
        ("Facture n°562044387 du 02 Juillet 2015", "2015-07-02"),
        ("Rechnungsdatum 3. März 2020", "2020-03-03"),
        ("Order Date: 15-10-15", "2015-10-15"),
        ("3182 748433701 02.03.20 15:59", "2020-03-02"),
        ("Due 03-Aug-2014", "2014-08-03"),
        ("Payed 2017-Jan-22", "2017-01-22"),
    ],
)
def test_date_formats_become_iso(line, iso):
    assert find_dates([line]) == [iso]


def test_invalid_dates_and_non_dates_are_ignored():
    assert find_dates(["31.02.2020", "version 1.2.3", "IBAN 1234 5678", "Tel 0521/12/34"]) == []


def test_invoice_date_ranks_before_order_and_due_dates():
    lines = ["Order Date: 15-10-2015", "Invoice Date: 20-10-2015", "Due Date:", "04/11/2015"]
    assert find_dates(lines) == ["2015-10-20", "2015-10-15", "2015-11-04"]


def test_slash_dates_are_day_first_unless_us_context():
    assert find_dates(["Date: 04/05/2021"]) == ["2021-05-04"]
    assert find_dates(["Date: 04/05/2021"], month_first=True) == ["2021-04-05"]
    assert find_dates(["Invoice Date:", "03/20/2023"]) == ["2023-03-20"]  # 20 cannot be a month


@pytest.mark.parametrize(
    "token, value",
    [("12.50", "12.50"), ("1.234,56", "1234.56"), ("1,234.56", "1234.56"), ("12,5", "12.5"),
     ("1,234", "1234"), ("-2,84", "-2.84"), ("1939", "1939")],
)
def test_parse_amount_handles_both_separator_conventions(token, value):
    assert parse_amount(token) == Decimal(value)


def test_total_prefers_strong_label_then_bottom_most_line():
    receipt = [
        "LIDL", "Emmentaler 2,59x2 5,18A", "zu zahlen 7,16", "Bar 10,00", "Ruckgeld -2,84",
        "MWST% MWST+ Netto Brutto", "A 7% 0,47 6,69 7,16", "Summe 0,47 6,69 7,16",
    ]
    assert find_total(receipt) == "7.16"
    invoice = ["Subtotal $ 262.90", "Tax 15% on $ 112.90 $ 16.94", "Total $ 279.84"]
    assert find_total(invoice) == "279.84"
    assert find_total(["Total HT : 46,68 €", "TVA 20% : 9,34 €", "Total TTC : 56,02 €"]) == "56.02"
    assert find_total(["Grand Total Rs 1939", "Balance ( if any ) Rs 0"]) == "1939.00"


def test_total_value_on_the_next_line():
    assert find_total(["Amount due:", "1,234.50", "Thank you"]) == "1234.50"
    assert find_total(["Total:", "Notes: none"]) is None


@pytest.mark.parametrize(
    "lines, code",
    [
        (["Total TTC : 56,02 €"], "EUR"),
        (["TOTAL AMOUNT DUE $4.11"], "USD"),
        (["Grand Total Rs 1939"], "INR"),
        (["TOTAL RM 12.50"], "MYR"),
        (["Total £9.99"], "GBP"),
        (["ZU ZAHLEN EURO 10,90"], "EUR"),
        (["Amount 12.00", "All prices in CHF", "CHF"], "CHF"),
        (["Total ₹ 319.00"], "INR"),
        (["nothing here 12.00"], None),
    ],
)
def test_currency_from_symbols_and_codes(lines, code):
    assert find_currency(lines) == code


@pytest.mark.parametrize(
    "lines, number",
    [
        (["Invoice Number: 42183017"], "42183017"),
        (["Invoice No : # BLR_WFLD20151000982590"], "BLR_WFLD20151000982590"),
        (["Facture n° 2022089083"], "2022089083"),
        (["Factuurnummer: 993548900"], "993548900"),
        (["Rechnungsnr.: RE-2020-0042"], "RE-2020-0042"),
        (["TA-Nr 447300 BNr 1150"], "1150"),
        (["Bon-Nr. 4711"], "4711"),
        (["Receipt #", "000123"], "000123"),
        (["Invoice INV/2023/03/0008"], "INV/2023/03/0008"),
        (["Invoice Date: 03/20/2023"], None),
    ],
)
def test_document_number_from_labels(lines, number):
    assert find_document_number(lines) == number


def test_vendor_skips_labels_addresses_and_dates():
    lines = ["RECHNUNG", "02.03.2020", "Warburger Straße 130", "33100 Paderborn", "Bäckerei Müller", "Brot 2,50"]
    assert find_vendor(lines) == "Bäckerei Müller"
    assert find_vendor(["for details", "Amazon Web Services, Inc.", "410 Terry Ave North"]) == "Amazon Web Services, Inc."
    assert find_vendor(["12345", "***", ""]) is None


def test_extract_fields_shape_matches_keyfields_record():
    fields = extract_fields("ACME GmbH\nRechnung Nr. 2020-17\nDatum 03.04.2020\nGesamtbetrag 1.234,56 EUR")
    assert fields == {
        "dates": ["2020-04-03"],
        "total_amount": "1234.56",
        "currency": "EUR",
        "document_number": "2020-17",
        "vendor": "ACME GmbH",
    }
    assert extract_fields("") == {
        "dates": [], "total_amount": None, "currency": None, "document_number": None, "vendor": None,
    }
