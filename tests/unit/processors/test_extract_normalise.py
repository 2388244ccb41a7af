"""Normal forms of key-field values (dateparser, price-parser, Babel, cleanco) and the
post-OCR digit/letter repair."""
from __future__ import annotations

from decimal import Decimal

import pytest

from conveyor.processors.extract.fields.normalise import (
    currency_code,
    has_legal_form,
    legal_form_suffix,
    normalise_address,
    normalise_amount,
    normalise_company,
    normalise_date,
    strip_legal_form,
)
from conveyor.processors.extract.postocr import fix_confusions


@pytest.mark.parametrize(
    "text, iso",
    [
        ("17/01/2018", "2018-01-17"),
        ("24 MAR 2018", "2018-03-24"),
        ("28 MAR 18", "2018-03-28"),
        ("02/JAN/2017", "2017-01-02"),
        ("05-JAN-2017", "2017-01-05"),
        ("18-10-17", "2017-10-18"),
        ("2014-08-03", "2014-08-03"),
        ("06.04.2020", "2020-04-06"),
        ("3. März 2020", "2020-03-03"),  # German
        ("02 Juillet 2015", "2015-07-02"),  # French
        ("19 april 2014", "2014-04-19"),  # Dutch
        ("5 de mayo de 2021", "2021-05-05"),  # Spanish
        ("March 3, 2020", "2020-03-03"),
    ],
)
def test_dates_in_many_formats_and_languages_become_iso(text, iso):
    assert normalise_date(text) == iso


def test_ambiguous_numeric_dates_follow_the_requested_order():
    assert normalise_date("04/05/2021") == "2021-05-04"
    assert normalise_date("04/05/2021", day_first=False) == "2021-04-05"
    assert normalise_date("03/20/2023", day_first=False) == "2023-03-20"


@pytest.mark.parametrize("text", ["", "no date here", "12", "Tel 0521/12/34", "31.02.2020", "01.01.1850"])
def test_non_dates_and_impossible_dates_give_none(text):
    assert normalise_date(text) is None


@pytest.mark.parametrize(
    "text, value, currency",
    [
        ("RM5.00", "5.00", "MYR"),
        ("$9.20", "9.20", "USD"),
        ("1.234,56 €", "1234.56", "EUR"),
        ("EUR 1,234.56", "1234.56", "EUR"),
        ("1 234,56", "1234.56", None),
        ("CHF 1'234.50", "1234.50", "CHF"),
        ("£12", "12.00", "GBP"),
        ("Rs 1939", "1939.00", "INR"),
        ("12.345.678,9 zł", "12345678.90", "PLN"),
        (4.11, "4.11", None),
    ],
)
def test_amounts_with_separators_and_currency_symbols(text, value, currency):
    assert normalise_amount(text) == (Decimal(value), currency)


def test_amount_without_number_and_currency_codes():
    assert normalise_amount("total") == (None, None)
    assert normalise_amount(None) == (None, None)
    assert currency_code("€") == "EUR" and currency_code("rm") == "MYR" and currency_code("chf") == "CHF"
    assert currency_code("XYZ") is None and currency_code(None) is None


def test_company_and_address_normal_forms_ignore_case_spacing_and_punctuation():
    assert normalise_company("MR. D.I.Y. SDN BHD") == normalise_company("Mr D I Y Sdn. Bhd.") == "mrdiysdnbhd"
    assert normalise_company("UNIHAKKAINTERNATIONALSDNBHD") == normalise_company("Unihakka International Sdn Bhd")
    assert normalise_address("NO.53, JALAN BESAR,\n45600") == normalise_address("No. 53 Jalan Besar 45600")
    assert normalise_company(None) == normalise_address("") == ""


@pytest.mark.parametrize(
    "name, form",
    [
        ("NANDO'S CHICKENLAND MALAYSIA SDN BHD", "sdnbhd"),
        ("Coolblue B.V.", "bv"),
        ("toom Baumarkt GmbH", "gmbh"),
        ("99 SPEED MART S/B (519537-X)", "sb"),
        ("GARDENIABAKERIES(KL)SDNBHD(139386X)", "sdnbhd"),  # glued by OCR, registration number dropped
        ("TEO HENG STATIONERY & BOOKS", ""),
        ("Summe", ""),
        ("ZINC", ""),
    ],
)
def test_legal_forms_are_recognised_with_cleanco(name, form):
    assert legal_form_suffix(name) == form
    assert has_legal_form(name) is bool(form)


def test_strip_legal_form():
    assert strip_legal_form("Amazon Web Services, Inc.") == "Amazon Web Services"
    assert strip_legal_form("Bäckerei Müller") == "Bäckerei Müller"


@pytest.mark.parametrize(
    "text, fixed",
    [
        ("L0T 1851-A", "LOT 1851-A"),
        ("Leve1 6,Ja1an SS21/39", "Level 6,Jalan SS21/39"),
        ("7/1l8B", "7/118B"),
        ("4115O KLANG", "41150 KLANG"),
        ("GST1D:000381399040", "GSTID:000381399040"),
        ("KL001 C01 T0369 Uptown3 21003B-K 12S", "KL001 C01 T0369 Uptown3 21003B-K 12S"),  # codes untouched
        ("TOTAL RM27.55", "TOTAL RM27.55"),
    ],
)
def test_post_ocr_digit_letter_confusions(text, fixed):
    assert fix_confusions(text) == fixed


def test_dates_with_month_words_of_other_languages_are_found_in_text():
    from conveyor.processors.extract.fields import find_dates

    assert find_dates(["Data wystawienia: 15 stycznia 2021"]) == ["2021-01-15"]  # Polish, via dateparser
    assert find_dates(["Tarikh: 5 Ogos 2019"]) == ["2019-08-05"]  # Malay
    assert find_dates(["12 items 2020", "Qty 3 Stk 20"]) == []


@pytest.mark.parametrize(
    "lines, first",
    [
        (["Invoice Date: August3,2014", "billing period July 1 - July 31 , 2014"], "2014-08-03"),  # OCR glued
        (["01/03/1819:14 Slip No.:0010104733"], "2018-03-01"),  # 2-digit year glued to the time
        (["28Mar 1818:32:36"], "2018-03-28"),
        (["ORD #07-REG#19-10/03/2018 17:24:07"], "2018-03-10"),
        (["27.02.2020 15:56 Bed.Nr.:120", "Rabatt auf Produkte vom 28.01.2020"], "2020-02-27"),  # date + time ranks as labelled
    ],
)
def test_ocr_damaged_dates(lines, first):
    from conveyor.processors.extract.fields import find_dates

    assert find_dates(lines)[:1] == [first]
