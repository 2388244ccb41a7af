"""SROIE (ICDAR 2019, task 3) receipts: ``althayr/ICDAR-2019-SROIE-dataset``, ``training_data/`` only.

``training_data/images/NNN.jpg`` with ``labels/NNN.json`` ``{company, date, address, total}``
(human key fields). 675 entries, 621 distinct images: byte-identical images are dropped by the
builder (sha256). The repository's ``testing_data/`` is kept for an evaluation outside the project.
"""
from __future__ import annotations

import json
from collections.abc import Iterator

from conveyor.processors.extract.fields.normalise import normalise_amount, normalise_company, normalise_date
from conveyor.tools.datasets.base import DatasetSource, Item
from conveyor.tools.datasets.clones import Clone, labelled_files

SPLIT = "training_data"


def sroie_truth(labels: dict) -> dict:
    """KeyFields truth of one SROIE label file: vendor, vendor_address, dates (day first), total_amount.

    A label that does not parse (an empty date, a total without digits) is left unlabelled.
    """
    truth: dict = {}
    if str(labels.get("company") or "").strip():
        truth["vendor"] = " ".join(str(labels["company"]).split())
    if str(labels.get("address") or "").strip():
        truth["vendor_address"] = " ".join(str(labels["address"]).split())
    date = normalise_date(str(labels.get("date") or ""), day_first=True)
    if date:
        truth["dates"] = [date]
    amount, _ = normalise_amount(str(labels.get("total") or ""))
    if amount is not None:
        truth["total_amount"] = f"{amount:.2f}"
    return truth


def items(clone: Clone) -> Iterator[Item]:
    """Every training receipt with its labels (images without a label file are skipped)."""
    for path, data, label_path, raw in labelled_files(clone, SPLIT, "images", ".jpg", "labels"):
        labels = json.loads(raw.decode("utf-8", errors="replace"))
        yield Item(path=path, data=data, doc_type="receipt",
                   type_rule="SROIE: scanned Malaysian point-of-sale receipts (ICDAR 2019 task 3)",
                   truth=sroie_truth(labels), label_source=label_path,
                   group="sroie:" + (normalise_company(labels.get("company")) or path), raw=labels)


SOURCE = DatasetSource(
    name="sroie", repo="althayr/ICDAR-2019-SROIE-dataset", split=SPLIT,
    licence="ICDAR 2019 SROIE data: licence not stated (research competition data); read, never committed",
    items=items,
)
