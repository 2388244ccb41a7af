"""A document as rows: every page's lines with their position, one list for the whole document.

OCR-ed pages bring their layout (:func:`conveyor.processors.extract.layout.page_layout`: reading
order rows with boxes and relative print size); text-layer pages bring only their lines, placed
one under the other (``top = line / lines``, full width, print size 1). The key-field model
reads both the same way, with ``geometry`` telling them apart.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from conveyor.processors.extract.layout import LayoutRow, page_layout

__all__ = ["DocRow", "document_rows", "page_rows"]


@dataclass(frozen=True)
class DocRow:
    """One line of a document.

    Attributes:
        text: the line's text (whitespace runs collapsed).
        page: 0-based page index.
        line: 0-based index of the line within its page's text (evidence line numbers).
        left, top, right, bottom: box as fractions of the page (0 = left/top edge).
        height: print size relative to the page's median box height (1.0 for text-layer lines).
        geometry: True when the box comes from OCR, False for a text-layer line.
        ocr_score: the lowest recognition confidence of the row's OCR boxes (0..1; 1.0 for a
            text-layer line).
    """

    text: str
    page: int
    line: int
    left: float
    top: float
    right: float
    bottom: float
    height: float
    geometry: bool
    ocr_score: float = 1.0


def _squash(text: str) -> str:
    return " ".join(text.split())


def page_rows(page: dict[str, Any], index: int, layout: Sequence[LayoutRow] | None = None) -> list[DocRow]:
    """Rows of one page dict of :func:`conveyor.processors.extract.extract_pages` (0-based ``index``).

    The OCR layout (``layout``, when the caller has already computed it, else from the page's boxes)
    is used when its rows are exactly the page's text lines (as the extract stage builds them);
    otherwise the text lines are placed without boxes.
    """
    lines = str(page.get("text") or "").splitlines()
    if layout is not None or page.get("lines"):
        layout = layout if layout is not None else page_layout(page["lines"], page.get("size"))
        if [_squash(r.text) for r in layout] == [_squash(x) for x in lines]:
            return [DocRow(_squash(r.text), index, i, r.left, r.top, r.right, r.bottom, r.height, True,
                           min(c.score for c in r.cells)) for i, r in enumerate(layout)]
    n = max(len(lines), 1)
    return [DocRow(_squash(text), index, i, 0.0, i / n, 1.0, (i + 1) / n, 1.0, False) for i, text in enumerate(lines)]


def document_rows(pages: Sequence[dict[str, Any]], first_layout: Sequence[LayoutRow] | None = None) -> list[DocRow]:
    """Rows of every page, in page order (empty lines kept, so ``line`` matches the page text);
    ``first_layout``: the first page's layout rows when already computed."""
    return [row for index, page in enumerate(pages)
            for row in page_rows(page, index, first_layout if index == 0 else None)]
