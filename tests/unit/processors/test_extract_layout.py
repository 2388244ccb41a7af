"""Layout rows from OCR boxes, and the total / issuer chosen with layout evidence
(synthetic boxes: no OCR runs here)."""
from __future__ import annotations

import math

import pytest

from conveyor.processors.extract.fields import extract_key_fields
from conveyor.processors.extract.fields.parties import find_address, find_company
from conveyor.processors.extract.fields.totals import find_total, total_candidates
from conveyor.processors.extract.layout import group_rows, page_layout, skew_angle
from conveyor.processors.extract.ocr import OcrLine, lines_to_text

PAGE = (1000, 2000)


def box(text: str, x: float, y: float, w: float = 200, h: float = 30, angle_deg: float = 0.0) -> OcrLine:
    """An OCR box with its top-left corner at (x, y), rotated by ``angle_deg`` about the page origin."""
    a = math.radians(angle_deg)

    def rot(px: float, py: float) -> tuple[float, float]:
        return (px * math.cos(a) - py * math.sin(a), px * math.sin(a) + py * math.cos(a))

    corners = [rot(x, y), rot(x + w, y), rot(x + w, y + h), rot(x, y + h)]
    return OcrLine(text=text, box=tuple(corners), score=0.99)


def receipt(angle: float = 0.0, total_height: float = 30) -> list[OcrLine]:
    rows = [("ACME STORE SDN BHD", None), ("12, JALAN BESAR,", None), ("45600 SELANGOR", None),
            ("TEL: 03-1234 5678", None), ("COFFEE", "4.50"), ("SANDWICH", "8.90"),
            ("SUB-TOTAL", "13.40"), ("TOTAL TAX", "0.80"), ("TOTAL", "14.20"), ("CASH", "20.00"),
            ("CHANGE", "5.80"), ("GST SUMMARY TOTAL", "13.40")]
    lines = []
    for i, (label, amount) in enumerate(rows):
        y = 100 + 60 * i
        h = total_height if label == "TOTAL" else 30
        lines.append(box(label, 100, y, w=300 if amount else 500, h=h, angle_deg=angle))
        if amount:
            lines.append(box(amount, 800, y + (30 - h) / 2, w=100, h=h, angle_deg=angle))
    return lines


def test_rows_join_label_and_amount_and_keep_geometry():
    layout = page_layout(receipt(), PAGE)
    texts = [row.text for row in layout]
    assert "TOTAL 14.20" in texts and "CASH 20.00" in texts
    total = layout[texts.index("TOTAL 14.20")]
    assert total.left == pytest.approx(0.1) and total.right == pytest.approx(0.9)
    assert 0 < total.top < total.bottom < 1
    assert [cell.text for cell in total.cells] == ["TOTAL", "14.20"]


def test_skewed_page_is_deskewed_before_grouping_rows():
    lines = receipt(angle=3.0)  # 3 degrees: the amount column sits ~36 px lower than its label
    assert math.degrees(skew_angle([line.box for line in lines])) == pytest.approx(3.0, abs=0.1)
    assert "TOTAL 14.20" in lines_to_text(lines).splitlines()
    undeskewed = ["\n".join(" ".join(i[0].text for i in row) for row in group_rows(lines, deskew=False))]
    assert "TOTAL 14.20" not in undeskewed[0].splitlines()


def test_total_is_the_labelled_amount_confirmed_by_cash_minus_change():
    lines = receipt()
    layout = page_layout(lines, PAGE)
    text = [row.text for row in layout]
    assert find_total(text, layout) == "14.20"
    scores = {str(c.value): c.score for c in total_candidates(text, layout)}
    assert scores["14.20"] > scores["13.40"]  # the GST summary "total" row is not the total


def test_large_print_wins_between_two_plain_total_labels():
    lines = [box("TOTAL", 100, 100), box("9.99", 800, 100, w=100),
             box("TOTAL", 100, 200, h=60), box("12.50", 800, 200, w=100, h=60)]
    layout = page_layout(lines, PAGE)
    assert [row.height for row in layout][1] > 1.25
    assert find_total([row.text for row in layout], layout) == "12.50"
    # Without layout the larger amount wins the tie (a total includes its parts).
    assert find_total(["TOTAL 12.50", "TOTAL 9.99"]) == "12.50"


@pytest.mark.parametrize(
    "lines, total",
    [
        (["Total Sales Incl GST 48.93", "Rounding Adjustment 0.02", "Total After Rounding 48.95"], "48.95"),
        (["Sub Total 129.30", "Amt Due 129.30", "GST@6% 7.30"], "129.30"),
        (["T0TAL 27.55", "CASH 50.00", "CHANGE 22.45"], "27.55"),  # OCR-damaged label
        (["Total Saving 0.00 Total 4150", "MASTER 41.50", "Change 0.00", "A 1.00", "B 2.50"], "41.50"),
        (["SUBTOTAL RM20.40", "CASH RM20.40"], "20.40"),  # no total row: the paid subtotal
        (["Razem: 257,59 59,24 316,83"], "316.83"),  # Polish
        (["Summe EUR 7,16", "Bar 10,00", "Rückgeld -2,84"], "7.16"),
        (["SUMME EUR 5.417", "Bar EUR 5,47", "E 7,0% 0,36 5,11 5,47"], "5.47"),  # more than was paid: misread
        (["Total Qty 3", "Rounding Adj 0.01"], None),
    ],
)
def test_total_rules(lines, total):
    assert find_total(lines) == total


def test_company_and_address_from_header_rows():
    rows = ["3180404", "POPULAR BOOK", "CO. (M) SDN BHD", "(CO. NO. 113825-W)", "(GST REG NO. 001492992000)",
            "NO 8, JALAN 7/118B, DESA TUN RAZAK", "56000 KUALA LUMPUR, MALAYSIA", "SUNWAY VELOCITY",
            "TEL: 03-9201 6281", "01/03/18 19:14"]
    name, last = find_company(rows)
    assert (name, last) == ("POPULAR BOOK CO. (M) SDN BHD", 2)
    assert find_address(rows, last) == "NO 8, JALAN 7/118B, DESA TUN RAZAK 56000 KUALA LUMPUR, MALAYSIA"


def test_company_without_legal_form_and_sentence_rows():
    assert find_company(["*** WELCOME ***", "TEO HENG STATIONERY & BOOKS", "(001451637-M)"])[0] == "TEO HENG STATIONERY & BOOKS"
    rows = ["Dat betaal ik zelf wel.", "Coolblue B.V.", "Weena 664", "3012 CN Rotterdam"]
    assert find_company(rows)[0] == "Coolblue B.V."
    assert find_company(["All AWS Services are sold by Amazon Web Services, Inc.", "Amazon Web Services, Inc."])[0] \
        == "Amazon Web Services, Inc."
    assert find_address(["ACME GmbH", "Detmolder Str. 4", "33102 Paderborn", "Nordrhein-Westfalen", "Kasse 3"], 0) \
        == "Detmolder Str. 4 33102 Paderborn Nordrhein-Westfalen"


def test_address_keeps_a_region_row_whose_words_ocr_glued():
    rows = ["TEO HENG STATIONERY & BOOKS", "NO.53,JALANBESAR,45600BATANG BERJUNTAI", "SELANGORDARUL EHSAN",
            "TEL:03-32719872"]
    assert find_address(rows, 0) == "NO.53,JALANBESAR,45600BATANG BERJUNTAI SELANGORDARUL EHSAN"
    # a short region name ("Goa") at the start of an ordinary word is not a region
    assert find_address(["ACME", "12 Main Road", "40001 Mumbai", "GOAHEAD TRADING"], 0) == "12 Main Road 40001 Mumbai"


def test_key_fields_use_the_layout_of_an_ocr_page():
    lines = receipt(total_height=60)
    text = lines_to_text(lines)
    fields = extract_key_fields(text, layout=page_layout(lines, PAGE))
    assert fields["total_amount"] == "14.20"
    assert fields["vendor"] == "ACME STORE SDN BHD"
    assert fields["address"] == "12, JALAN BESAR, 45600 SELANGOR"
