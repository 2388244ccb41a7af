"""Page layout from OCR boxes: reading-order rows with their positions.

RapidOCR returns one quadrilateral per text box (:class:`conveyor.processors.extract.ocr.OcrLine`).
Key fields depend on where text sits (a total is the amount on the row labelled
"total", right-aligned, usually in the lower part of a receipt; the issuer and its
address are the top rows), so the boxes are grouped into visual rows here and each
row keeps its geometry.

Rows are built after undoing the page skew: the skew angle is the median angle of
the top edges of the wider boxes (a standard projection-free deskew estimate, cf.
the Hough/box-angle methods in Smith, "A Simple and Efficient Skew Detection
Algorithm via Text Row Accumulation", ICDAR 1995); box centres are rotated by the
opposite angle, then boxes whose vertical centres are closer than half the median
box height form one row (the rule of :func:`conveyor.processors.extract.ocr.lines_to_text`).
Two-column text blocks are then read column by column (:func:`_split_columns`).
"""
from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import median
from typing import Protocol, TypeVar

from conveyor.processors.extract.postocr import fix_confusions

__all__ = ["LayoutCell", "LayoutRow", "TextBox", "group_rows", "page_layout", "skew_angle"]

#: Only boxes at least this many times wider than high vote for the skew angle
#: (short boxes have unreliable top edges).
_SKEW_MIN_ASPECT = 3.0
#: Skew angles beyond this (degrees) are not corrected: such pages are rotated,
#: not skewed, and RapidOCR's boxes are then unreliable anyway.
_MAX_SKEW_DEGREES = 10.0


class TextBox(Protocol):
    """An OCR box as the layout reads it (e.g. :class:`conveyor.processors.extract.ocr.OcrLine`)."""

    @property
    def text(self) -> str:
        """Recognised text."""
        ...

    @property
    def box(self) -> Sequence[tuple[float, float]]:
        """Four ``(x, y)`` corners in pixels, clockwise from top-left."""
        ...


_BoxT = TypeVar("_BoxT", bound=TextBox)
#: A box placed on the deskewed page: ``(box, left, top, right, bottom)`` in pixels.
_Placed = tuple[_BoxT, float, float, float, float]


@dataclass(frozen=True)
class LayoutCell:
    """One OCR box inside a row. Coordinates are fractions of the page width/height
    (``0`` = left/top edge, ``1`` = right/bottom edge), after deskewing; ``score`` is the
    recogniser's confidence in the box's text (0..1; 1.0 when the line carries none)."""

    text: str
    left: float
    right: float
    top: float
    bottom: float
    score: float = 1.0


@dataclass(frozen=True)
class LayoutRow:
    """One visual row of text.

    Attributes:
        text: The cells' texts left to right, joined with a space (digit/letter
            confusions repaired, :func:`conveyor.processors.extract.postocr.fix_confusions`).
        cells: The boxes of the row, left to right.
        left, right, top, bottom: Bounding box of the row, fractions of the page size.
        height: Median cell height divided by the page's median box height
            (``> 1``: larger print than usual, e.g. a double-height total).
    """

    text: str
    cells: tuple[LayoutCell, ...]
    left: float
    right: float
    top: float
    bottom: float
    height: float


def skew_angle(boxes: Sequence[Sequence[tuple[float, float]]]) -> float:
    """Page skew in radians (positive: text rises to the left, i.e. clockwise rotation).

    Args:
        boxes: Quadrilaterals, four ``(x, y)`` corners clockwise from top-left.

    Returns:
        The median top-edge angle of boxes at least :data:`_SKEW_MIN_ASPECT` times
        wider than high; ``0.0`` with fewer than 3 such boxes or when the angle
        exceeds :data:`_MAX_SKEW_DEGREES`.
    """
    angles = []
    for box in boxes:
        (x0, y0), (x1, y1) = box[0], box[1]
        width = math.hypot(x1 - x0, y1 - y0)
        height = math.hypot(box[3][0] - x0, box[3][1] - y0)
        if width > 0 and width >= _SKEW_MIN_ASPECT * max(height, 1e-6):
            angles.append(math.atan2(y1 - y0, x1 - x0))
    if len(angles) < 3:
        return 0.0
    angle = median(angles)
    return angle if abs(math.degrees(angle)) <= _MAX_SKEW_DEGREES else 0.0


def group_rows(lines: Sequence[_BoxT], *, deskew: bool = True,
               columns: bool = True) -> list[list[_Placed[_BoxT]]]:
    """Group OCR boxes into visual rows, top to bottom, each row left to right.

    Args:
        lines: Objects with ``.box`` (four ``(x, y)`` corners) and ``.text``
            (e.g. :class:`conveyor.processors.extract.ocr.OcrLine`).
        deskew: Rotate box coordinates by the page's :func:`skew_angle` first.
        columns: Read two-column blocks column by column (:func:`_split_columns`).

    Returns:
        Rows of ``(line, left, top, right, bottom)`` tuples in deskewed pixel coordinates.
    """
    if not lines:
        return []
    angle = skew_angle([line.box for line in lines]) if deskew else 0.0
    cos, sin = math.cos(-angle), math.sin(-angle)
    placed: list[_Placed[_BoxT]] = []
    for line in lines:
        xs: list[float] = []
        ys: list[float] = []
        for x, y in line.box:
            xs.append(x * cos - y * sin)
            ys.append(x * sin + y * cos)
        placed.append((line, min(xs), min(ys), max(xs), max(ys)))
    tolerance = max(2.0, 0.5 * median(item[4] - item[2] for item in placed))
    rows: list[list[_Placed[_BoxT]]] = []
    row_y = 0.0
    for item in sorted(placed, key=lambda item: (item[2] + item[4]) / 2):
        y = (item[2] + item[4]) / 2
        if rows and abs(y - row_y) <= tolerance:
            rows[-1].append(item)
            row_y = sum((other[2] + other[4]) / 2 for other in rows[-1]) / len(rows[-1])
        else:
            rows.append([item])
            row_y = y
    rows = [sorted(row, key=lambda item: item[1]) for row in rows]
    return _split_columns(rows, gutter=3 * tolerance) if columns else rows


#: Both sides of a column gutter hold at least this many characters of text with a
#: word of 3+ letters: a label and its amount ("TOTAL  27.55") are never two columns.
_MIN_COLUMN_CHARS = 12
#: Fewest consecutive rows with a gutter at the same place that make a two-column block.
_MIN_COLUMN_ROWS = 3


def _gutter(row: Sequence[_Placed[TextBox]], gutter: float) -> tuple[int, float] | None:
    """``(cells left of it, x)`` of the widest gap of at least ``gutter`` pixels between
    two text sides of ``row``, or None."""
    best: tuple[int, float, float] | None = None
    for k in range(1, len(row)):
        gap = row[k][1] - row[k - 1][3]
        if gap < gutter:
            continue
        sides = [" ".join(str(item[0].text) for item in part) for part in (row[:k], row[k:])]
        if all(len(side) >= _MIN_COLUMN_CHARS and re.search(r"[^\W\d_]{3,}", side) for side in sides):
            if best is None or gap > best[2]:
                best = (k, (row[k - 1][3] + row[k][1]) / 2, gap)
    return None if best is None else best[:2]


def _split_columns(rows: list[list[_Placed[_BoxT]]], gutter: float) -> list[list[_Placed[_BoxT]]]:
    """Read two-column blocks column by column.

    A block is a run of at least :data:`_MIN_COLUMN_ROWS` rows with a gutter (a gap of
    at least ``gutter`` pixels with text on both sides) at the same place, give or take
    ``gutter``; rows lying wholly on one side of it belong to the block too. The block's
    left-hand parts are read first, then its right-hand parts (the X-Y cut idea of
    Nagy & Seth, "Hierarchical representation of optically scanned documents", 1984,
    applied to one vertical cut per block).
    """
    out: list[list[_Placed[_BoxT]]] = []
    index = 0
    while index < len(rows):
        found = _gutter(rows[index], gutter)
        if found is None:
            out.append(rows[index])
            index += 1
            continue
        x = found[1]
        block: list[tuple[list[_Placed[_BoxT]], list[_Placed[_BoxT]]]] = []
        end = index
        with_gutter = 0
        while end < len(rows):
            row = rows[end]
            here = _gutter(row, gutter)
            if here is not None and abs(here[1] - x) <= gutter:
                block.append((row[:here[0]], row[here[0]:]))
                with_gutter += 1
            elif all(item[3] <= x for item in row) or all(item[1] >= x for item in row):
                block.append(([i for i in row if i[3] <= x], [i for i in row if i[1] >= x]))
            else:
                break
            end += 1
        if with_gutter < _MIN_COLUMN_ROWS:
            out.append(rows[index])
            index += 1
            continue
        out.extend(left for left, _ in block if left)
        out.extend(right for _, right in block if right)
        index = end
    return out


def page_layout(lines: Sequence[TextBox], size: tuple[int, int] | None = None) -> list[LayoutRow]:
    """Rows of one OCR-ed page with positions relative to the page.

    Args:
        lines: OCR boxes of the page (:class:`conveyor.processors.extract.ocr.OcrLine`).
        size: ``(width, height)`` of the page in pixels; default: the extent of the boxes.

    Returns:
        :class:`LayoutRow` objects top to bottom; ``[]`` without boxes.
    """
    rows = group_rows(lines)
    if not rows:
        return []
    if size and size[0] > 0 and size[1] > 0:
        width, height = float(size[0]), float(size[1])
    else:
        width = max(item[3] for row in rows for item in row) or 1.0
        height = max(item[4] for row in rows for item in row) or 1.0
    typical = median(item[4] - item[2] for row in rows for item in row) or 1.0
    out = []
    for row in rows:
        cells = tuple(
            LayoutCell(fix_confusions(str(line.text)), left / width, right / width, top / height, bottom / height,
                       float(getattr(line, "score", 1.0)))
            for line, left, top, right, bottom in row
        )
        out.append(LayoutRow(
            text=" ".join(cell.text for cell in cells),
            cells=cells,
            left=min(cell.left for cell in cells),
            right=max(cell.right for cell in cells),
            top=min(cell.top for cell in cells),
            bottom=max(cell.bottom for cell in cells),
            height=median(item[4] - item[2] for item in row) / typical,
        ))
    return out
