"""What every dataset source gives the builder: labelled documents (:class:`Item`)."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from conveyor.tools.datasets.clones import Clone

__all__ = ["DatasetSource", "Item"]


@dataclass
class Item:
    """One labelled document of a source.

    Attributes:
        path: the file's path in the repository.
        data: its bytes.
        doc_type: its document type (``docs/documents.md``).
        type_rule: why it has that type (the label's origin, one line).
        truth: true key fields, in ``KeyFields`` names and normal forms (ISO dates, decimal
            strings; names and addresses as printed): e.g. ``{"vendor": "…", "dates": ["2018-02-11"],
            "total_amount": "11.80"}``; a field absent from the dict is unlabelled, ``None`` means
            the document does not print it.
        label_source: the repository file(s) the labels were read from.
        group: CV group within the source (documents that must not be split across folds, e.g. one
            shop's receipts).
        raw: the labels as the source states them (for the manifest).
    """

    path: str
    data: bytes
    doc_type: str
    type_rule: str
    truth: dict[str, Any]
    label_source: str
    group: str
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DatasetSource:
    """A public repository of labelled documents and the one split the project may learn from.

    Attributes:
        name: the source's name in manifests and reports (e.g. ``"sroie"``).
        repo: ``"owner/name"`` on GitHub.
        split: the folder of the repository the project may train, tune and look at errors on;
            every other split is kept for an evaluation outside the project and never read.
        licence: what the repository says of its licence (files are never committed).
        items: ``(clone) -> Item, ...``.
    """

    name: str
    repo: str
    split: str
    licence: str
    items: Callable[[Clone], Iterator[Item]]
