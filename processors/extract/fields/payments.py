"""How a document was or is to be paid: the issuer's IBAN and the payment method.

* IBAN — candidates are ISO 13616 shaped tokens (two letters, two check digits, up to 30
  alphanumerics, printed in groups of four or not); a candidate counts only when its ISO 7064
  mod 97-10 check digits and its country's length hold (:mod:`stdnum.iban`, python-stdnum). An
  IBAN on a line that names the customer's account ("your IBAN", "Ihre IBAN", "debited from") is
  not the issuer's and is skipped. Rules: ``checksum`` (valid), ``invalid checksum`` (printed after
  an IBAN label but fails the check: never emitted).
* Payment method — one of :data:`PAYMENT_METHODS`, from the words receipts and invoices print
  (Bar / EC-Karte / girocard / Visa / Überweisung / Lastschrift / PayPal / iDEAL …). Rules:
  ``payment line`` (the word stands on a line with an amount or a payment label: "EC-Karte 7,16",
  "Zahlart: Überweisung"), ``keyword`` (the word alone), ``conflicting`` (payment lines name two
  methods: never emitted).
"""
from __future__ import annotations

import re
from collections.abc import Sequence

from stdnum import iban as stdnum_iban

from conveyor.processors.extract.fields.amounts import amounts_in_line
from conveyor.processors.extract.fields.evidence import Finding

#: Normalised payment methods (the ``payment_method`` field's values).
PAYMENT_METHODS = ("cash", "card", "bank transfer", "direct debit", "online")

_IBAN_TOKEN = re.compile(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]){11,30}\b")
_IBAN_LABEL = re.compile(r"\biban\b", re.IGNORECASE)
_CUSTOMERS_ACCOUNT = re.compile(
    r"\b(?:your|ihre[rm]?|ihr|votre|uw|customer'?s?|kunden\w*|debited\s+from|abgebucht\s+von|von\s+ihrem)\b",
    re.IGNORECASE)

_METHOD_WORDS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("direct debit", re.compile(r"lastschrift|direct\s*debit|pr[ée]l[èe]vement|sepa[- ]?mandat|incasso", re.IGNORECASE)),
    ("bank transfer", re.compile(r"[üu]berweisung|bank\s*transfer|wire\s*transfer|virement|overschrijving|"
                                 r"bonifico|transferencia", re.IGNORECASE)),
    ("online", re.compile(r"\b(?:paypal|ideal|klarna|sofort)\b", re.IGNORECASE)),
    ("card", re.compile(r"\b(?:ec[- ]?(?:karte|cash)|elec(?:tronic)?[.\s-]*cash|girocard|kartenzahlung|"
                        r"kredit\s*karte|visa|master\s*card|maestro|amex|american\s+express|v\s*pay|debit\s*card|"
                        r"credit\s*card|kontaktlos|contactless|carte\s+bancaire|pinpas)\b", re.IGNORECASE)),
    ("cash", re.compile(r"(?<!elec\.-)(?<!elec\.)(?<!electronic )\b(?:bar|bargeld|cash|gegeben|esp[èe]ces|contant|"
                        r"tunai|efectivo|contanti)\b", re.IGNORECASE)),
)
_PAYMENT_LABEL = re.compile(
    r"zahlung|zahlart|bezahl|gezahlt|payment|paid|pay\s*by|tender|paiement|r[èe]glement|betaling|betaald|"
    r"pagamento|pago|bayaran", re.IGNORECASE)
#: Lines that talk about payment methods without one having been used ("we accept Visa, cash").
_NOT_A_PAYMENT = re.compile(r"\b(?:accept|akzeptier|nehmen|annehmen)\w*\b|\bkarten?nr|\bkundenkarte|\bpayback\b",
                            re.IGNORECASE)


def find_iban(lines: Sequence[str]) -> Finding | None:
    """The issuer's IBAN in ``lines``: electronic format (no spaces, upper case), or None.

    Returns:
        ``Finding(value, line index, rule)``; rule ``checksum`` for a valid IBAN,
        ``invalid checksum`` for an IBAN-labelled token failing mod 97 (shown to reviewers only).
    """
    invalid: Finding | None = None
    for i, line in enumerate(lines):
        if _CUSTOMERS_ACCOUNT.search(line):
            continue
        for m in _IBAN_TOKEN.finditer(line.upper()):
            token = m.group(0).replace(" ", "")
            # the greedy token may have swallowed a following word: try shorter prefixes too
            for end in range(len(token), 14, -1):
                if stdnum_iban.is_valid(token[:end]):
                    return Finding(stdnum_iban.compact(token[:end]), i, "checksum")
            if invalid is None and _IBAN_LABEL.search(line):
                invalid = Finding(token, i, "invalid checksum")
    return invalid


#: Card words too common elsewhere ("Memory card", "Karte" in a product name): only on a payment line.
_WEAK_CARD = re.compile(r"\b(?:card|karte|cb|pin)\b", re.IGNORECASE)


def _methods_in(line: str) -> list[str]:
    found = [name for name, pattern in _METHOD_WORDS if pattern.search(line)]
    if not found and _WEAK_CARD.search(line) and _PAYMENT_LABEL.search(line):
        found = ["card"]
    return found


def find_payment_method(lines: Sequence[str]) -> Finding | None:
    """How the document was (receipt) or is to be (invoice) paid: one of :data:`PAYMENT_METHODS`.

    A method named on a payment line (an amount or a payment label beside it) wins over one
    named alone; two different methods on payment lines give rule ``conflicting`` (never emitted).

    Returns:
        ``Finding(method, line index, rule)`` or None when no payment word is printed.
    """
    on_payment_lines: list[tuple[int, str]] = []
    alone: list[tuple[int, str]] = []
    for i, line in enumerate(lines):
        if _NOT_A_PAYMENT.search(line):
            continue
        methods = _methods_in(line)
        if not methods:
            continue
        target = on_payment_lines if (_PAYMENT_LABEL.search(line) or amounts_in_line(line)) else alone
        target.extend((i, method) for method in methods[:1])
    if on_payment_lines:
        names = {method for _, method in on_payment_lines}
        i, method = on_payment_lines[0]
        return Finding(method, i, "payment line" if len(names) == 1 else "conflicting")
    if alone:
        i, method = alone[0]
        return Finding(method, i, "keyword")
    return None
