"""ZUGFeRD / Factur-X invoices and Order-X orders: ``stephanstapel/ZUGFeRD-csharp``, ``documentation/``.

Each sample PDF of the specification packages carries its truth as embedded XML (UN/CEFACT
Cross Industry Invoice ``factur-x.xml`` / ``zugferd-invoice.xml`` / ``xrechnung.xml``, ZUGFeRD 1.0
``ZUGFeRD-invoice.xml``, Order-X ``order-x.xml``), read with pypdfium2's attachment API and
parsed by element local names (the namespaces differ per version). Left out:

* the **"Lesbarmachung" renderings** — from ZUGFeRD 2.2 on, the sample PDFs are generic
  renderings of the XML ("Beispiel-Rechnungen für ZUGFeRD …", one ``Name:`` / ``Anschrift:``
  field per line), not invoices as a supplier lays them out (:func:`is_rendering`);
* **the same sample in several specification versions or profiles** (one type, number and grand
  total) — kept once, from the first folder of :data:`PREFERENCE`;
* PDFs without embedded XML (the specifications themselves).

Types by UNTDID 1001 document code (``ExchangedDocument/TypeCode``): 220 order, 230 order change,
231 order response → ``purchase_order``; 381 credit note, 389 self-billed invoice ("Gutschrift"),
and any document with a negative total (a correction crediting the customer) → ``credit_note``;
every other invoice code (380, 326, 384, 387 rental, 575 insurer's, 751 accounting information, 877 …)
→ ``invoice``. Two PDFs are one sample when type, number and total agree.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from decimal import Decimal, InvalidOperation

from conveyor.tools.datasets.base import DatasetSource, Item
from conveyor.tools.datasets.clones import Clone

SPLIT = "documentation"
#: Folders tried first when one sample exists in several versions (the newest laid-out German originals).
PREFERENCE = ("zugferd211de", "zugferd21de", "zugferd211en", "zugferd20", "zugferd10", "Order-x_100_EN")
ORDER_CODES = {"220", "230", "231"}
CREDIT_CODES = {"381", "389"}


def _local(element: ET.Element) -> str:
    return element.tag.rsplit("}", 1)[-1]


def _first(root: ET.Element | None, *names: str) -> ET.Element | None:
    """First descendant of ``root`` whose local name is one of ``names``."""
    if root is None:
        return None
    for element in root.iter():
        if _local(element) in names:
            return element
    return None


def _child(root: ET.Element | None, name: str) -> ET.Element | None:
    if root is None:
        return None
    return next((c for c in root if _local(c) == name), None)


def _text(element: ET.Element | None) -> str | None:
    text = (element.text or "").strip() if element is not None else ""
    return text or None


def _date(element: ET.Element | None) -> str | None:
    """ISO date of a ``DateTimeString`` (format 102, ``YYYYMMDD``) or of an ISO string."""
    text = _text(_first(element, "DateTimeString")) if element is not None else None
    digits = "".join(ch for ch in text or "" if ch.isdigit())
    return f"{digits[:4]}-{digits[4:6]}-{digits[6:8]}" if len(digits) >= 8 else None


def _amount(summation: ET.Element | None, name: str, currency: str | None) -> str | None:
    """The amount ``name`` of the summation (in ``currency`` when several are given), 2 decimals."""
    values = [e for e in (summation.iter() if summation is not None else []) if _local(e) == name]
    chosen = next((e for e in values if currency and e.get("currencyID") == currency), values[0] if values else None)
    try:
        return f"{Decimal(_text(chosen) or ''):.2f}" if chosen is not None else None
    except InvalidOperation:
        return None


def _party(root: ET.Element, role: str) -> tuple[ET.Element | None, str | None]:
    party = _first(root, role)
    name = _text(_child(party, "Name"))
    return party, " ".join(name.split()) if name else None


def parse_truth(xml: bytes) -> tuple[str, dict, dict]:
    """``(type code, truth, raw)`` of one embedded CII / Order-X document.

    ``truth`` uses KeyFields names: document_number, dates, due_date, total_amount (grand total),
    net_amount (tax basis total), tax_amount, currency, vendor and vendor_address (the seller),
    supplier_tax_id (the seller's VAT id, scheme ``VA``), iban (the first payee account), customer
    (the buyer). A value the XML lacks is left out (unlabelled). Raises ``ET.ParseError``.
    """
    root = ET.fromstring(xml)
    header = _first(root, "ExchangedDocument", "HeaderExchangedDocument")
    code = _text(_child(header, "TypeCode")) or ""
    settlement = _first(root, "ApplicableHeaderTradeSettlement", "ApplicableSupplyChainTradeSettlement")
    currency = _text(_first(settlement, "InvoiceCurrencyCode", "OrderCurrencyCode"))
    summation = _first(settlement, "SpecifiedTradeSettlementHeaderMonetarySummation",
                       "SpecifiedTradeSettlementMonetarySummation")
    seller, seller_name = _party(root, "SellerTradeParty")
    _buyer, buyer_name = _party(root, "BuyerTradeParty")
    address = _child(seller, "PostalTradeAddress")
    address_parts = [_text(_child(address, n)) for n in ("LineOne", "LineTwo", "LineThree", "PostcodeCode", "CityName")]
    vat = next((_text(_child(reg, "ID")) for reg in (seller.iter() if seller is not None else [])
                if _local(reg) == "SpecifiedTaxRegistration" and (reg_id := _child(reg, "ID")) is not None
                and reg_id.get("schemeID") == "VA"), None)
    truth = {
        "document_number": _text(_child(header, "ID")),
        "dates": [d] if (d := _date(_child(header, "IssueDateTime"))) else None,
        "due_date": _date(_first(_first(settlement, "SpecifiedTradePaymentTerms"), "DueDateDateTime")),
        "total_amount": _amount(summation, "GrandTotalAmount", currency),
        "net_amount": _amount(summation, "TaxBasisTotalAmount", currency),
        "tax_amount": _amount(summation, "TaxTotalAmount", currency),
        "currency": currency,
        "vendor": seller_name,
        "vendor_address": " ".join(" ".join(p.split()) for p in address_parts if p) or None,
        "supplier_tax_id": vat.replace(" ", "") if vat else None,
        "iban": (_text(_first(_first(settlement, "PayeePartyCreditorFinancialAccount"), "IBANID")) or "")
                .replace(" ", "") or None,
        "customer": buyer_name,
    }
    truth = {k: v for k, v in truth.items() if v is not None}
    return code, truth, {"type_code": code, **truth}


def doc_type_of(code: str, truth: dict) -> tuple[str, str]:
    """``(document type, why)`` of a UNTDID 1001 code (see the module docstring)."""
    if code in ORDER_CODES:
        return "purchase_order", f"Order-X document code {code} (order, order change or order response)"
    if code in CREDIT_CODES or str(truth.get("total_amount", "")).startswith("-"):
        return "credit_note", (f"document code {code}: credits the recipient (credit note, self-billed Gutschrift, "
                               "or a negative total)")
    return "invoice", f"invoice document code {code}"


def is_rendering(first_page_text: str) -> bool:
    """Is this PDF FeRD's generic rendering of the XML ("Lesbarmachung") rather than a laid-out document?"""
    return "Beispiel-Rechnungen für" in first_page_text or (
        "Verkäufer" in first_page_text and "Anschrift:" in first_page_text)


def _embedded_xml(data: bytes) -> tuple[bytes | None, str]:
    """``(the embedded XML, first page text)`` of a PDF; ``(None, "")`` for an unreadable PDF."""
    import pypdfium2 as pdfium

    try:
        pdf = pdfium.PdfDocument(data)
    except pdfium.PdfiumError:
        return None, ""
    try:
        xml = None
        for i in range(pdf.count_attachments()):
            attachment = pdf.get_attachment(i)
            if attachment.get_name().lower().endswith(".xml"):
                xml = bytes(attachment.get_data())
                break
        text = pdf[0].get_textpage().get_text_range() if xml is not None and len(pdf) else ""
        return xml, text
    finally:
        pdf.close()


def _rank(path: str) -> int:
    return next((i for i, folder in enumerate(PREFERENCE) if f"/{folder}/" in f"/{path}"), len(PREFERENCE))


def items(clone: Clone) -> Iterator[Item]:
    """One item per distinct sample (laid-out PDFs with embedded XML, renderings left out)."""
    files = clone.files(SPLIT)
    chosen: dict[tuple, tuple[int, str, bytes, str, dict, dict]] = {}
    for path, blob in sorted(files.items()):
        if not path.lower().endswith(".pdf"):
            continue
        data = clone.read(blob)
        if data is None:
            continue
        xml, first_text = _embedded_xml(data)
        if xml is None or is_rendering(first_text):
            continue
        try:
            code, truth, raw = parse_truth(xml)
        except ET.ParseError:
            continue
        key = (doc_type_of(code, truth)[0], truth.get("document_number"), truth.get("total_amount"))
        rank = (_rank(path), path)
        if key not in chosen or rank < chosen[key][:2]:
            chosen[key] = (*rank, data, code, truth, raw)
    for _, path, data, code, truth, raw in sorted(chosen.values(), key=lambda v: v[1]):
        doc_type, why = doc_type_of(code, truth)
        yield Item(path=path, data=data, doc_type=doc_type, type_rule=why, truth=truth,
                   label_source=f"{path} (embedded XML)", group=f"zugferd:{truth.get('vendor') or path}", raw=raw)


SOURCE = DatasetSource(
    name="zugferd", repo="stephanstapel/ZUGFeRD-csharp", split=SPLIT,
    licence="repository Apache-2.0; the samples are FeRD's specification examples (fictitious parties): "
            "read, never committed",
    items=items,
)
