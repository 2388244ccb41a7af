"""OCR of RGB page images with RapidOCR (PP-OCRv4 detection/recognition, ONNX).

The three ONNX models ship inside the ``rapidocr_onnxruntime`` wheel; the engine
reads them from the package directory and never touches the network.

One engine is created lazily per process (model loading takes ~0.5 s) and is
shared by all threads; calls are serialised with a lock because RapidOCR keeps
per-call state on the engine object.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

#: Caps applied before OCR to bound time and memory: text detection runs at the
#: image's own resolution, so its cost grows with the pixel count. 4 Mpx is an A4
#: page at ~200 dpi; a 300 dpi receipt strip (~900x3300) is not downscaled.
DEFAULT_MAX_PIXELS = 4_000_000
#: Long-side cap (pixels), for extreme aspect ratios.
DEFAULT_MAX_SIDE = 4000

#: RapidOCR's own long-side cap; kept equal to ours so it never shrinks again.
_ENGINE_MAX_SIDE = DEFAULT_MAX_SIDE

#: Shortest side (pixels) and largest side ratio of an image handed to the engine. RapidOCR
#: 1.4 (its ``config.yaml``: ``min_side_len`` 30, ``min_height`` 30, ``width_height_ratio`` 8,
#: det ``limit_side_len`` 736 with ``limit_type: min``) *upscales* a thin strip until its short
#: side is 30 px, letterboxes images wider than 8:1 to a height of width / 8, then upscales the
#: short side to 736 px: a 3 x 4000 px strip became a 9,984 x 40,000 float32 tensor (4.5 GiB).
#: :func:`_pad_for_engine` pads such pages with their background instead, so the engine never
#: enlarges an input by more than 736 / 32 on a side that is at most 4000 / 8.
ENGINE_MIN_SIDE = 32
ENGINE_MAX_RATIO = 8

_engine = None
_engine_lock = threading.Lock()
_call_lock = threading.Lock()


@dataclass(frozen=True)
class OcrLine:
    """One recognised text box.

    Attributes:
        text: Recognised text.
        box: Four ``(x, y)`` corners in pixels of the image passed to
            :func:`ocr_image` (clockwise from top-left).
        score: Recognition confidence in ``[0, 1]``.
    """

    text: str
    box: tuple[tuple[float, float], ...]
    score: float


@dataclass(frozen=True)
class OcrResult:
    """OCR output for one page.

    Attributes:
        lines: Text boxes, top to bottom.
        text: The boxes joined into reading-order rows: boxes on the same
            visual row are joined with a space, rows with ``"\\n"``.
        confidence: Mean line score in ``[0, 1]``; ``None`` when nothing was read.
    """

    lines: list[OcrLine]
    text: str
    confidence: float | None


def get_engine():
    """Return the process-wide ``RapidOCR`` engine, creating it on first use."""
    global _engine
    if _engine is None:
        with _engine_lock:
            if _engine is None:
                from rapidocr_onnxruntime import RapidOCR

                _engine = RapidOCR(max_side_len=_ENGINE_MAX_SIDE)
    return _engine


def is_blank(rgb: np.ndarray, *, min_ink_pixels: int = 30) -> bool:
    """True when an RGB page has (almost) no marks on it.

    A pixel counts as ink when its grey value differs from the page's median
    grey by more than 48 levels; fewer than ``min_ink_pixels`` such pixels means
    blank. Used to skip OCR of empty pages (blank PDFs cost nothing).
    """
    if rgb.size == 0:
        return True
    grey = rgb.mean(axis=2, dtype=np.float32) if rgb.ndim == 3 else rgb.astype(np.float32)
    background = float(np.median(grey[:: 8, :: 8]))
    return int(np.count_nonzero(np.abs(grey - background) > 48)) < min_ink_pixels


def ocr_image(
    rgb: np.ndarray, *, max_pixels: int = DEFAULT_MAX_PIXELS, max_side: int = DEFAULT_MAX_SIDE
) -> OcrResult:
    """Recognise the text of one RGB page.

    Args:
        rgb: ``uint8`` array of shape ``(h, w, 3)``, RGB order.
        max_pixels: The image is downscaled (area interpolation) to at most
            this many pixels before OCR ...
        max_side: ... and to a long side of at most this many pixels. Boxes
            are mapped back to the input's coordinates.

    Returns:
        An :class:`OcrResult`; blank pages return no lines without running OCR.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3 or min(rgb.shape[:2]) < 2 or is_blank(rgb):
        return OcrResult(lines=[], text="", confidence=None)

    import cv2  # installed with rapidocr-onnxruntime

    height, width = rgb.shape[:2]
    scale = min(1.0, max_side / max(height, width), (max_pixels / (height * width)) ** 0.5)
    if scale < 1.0:
        rgb = cv2.resize(rgb, (max(1, round(width * scale)), max(1, round(height * scale))), interpolation=cv2.INTER_AREA)
    bgr = np.ascontiguousarray(_pad_for_engine(rgb)[:, :, ::-1])  # RapidOCR treats 3-channel arrays as BGR

    engine = get_engine()
    with _call_lock:
        result, _elapsed = engine(bgr)

    lines = []
    for box, text, score in result or []:
        text = str(text).strip()
        if not text:
            continue
        points = tuple((float(x) / scale, float(y) / scale) for x, y in box)
        lines.append(OcrLine(text=text, box=points, score=float(score)))
    confidence = float(np.mean([line.score for line in lines])) if lines else None
    return OcrResult(lines=lines, text=lines_to_text(lines), confidence=confidence)


def _pad_for_engine(rgb: np.ndarray) -> np.ndarray:
    """Pad an ``(h, w, 3)`` page at the bottom/right with its median colour so that both
    sides are at least :data:`ENGINE_MIN_SIDE` and neither exceeds :data:`ENGINE_MAX_RATIO`
    times the other. Pixel coordinates of the original area do not change."""
    height, width = rgb.shape[:2]
    new_h = max(height, ENGINE_MIN_SIDE, -(-width // ENGINE_MAX_RATIO))
    new_w = max(width, ENGINE_MIN_SIDE, -(-height // ENGINE_MAX_RATIO))
    if (new_h, new_w) == (height, width):
        return rgb
    background = np.median(rgb[:: max(1, height // 64), :: max(1, width // 64)].reshape(-1, 3), axis=0)
    out = np.empty((new_h, new_w, 3), dtype=np.uint8)
    out[...] = background.astype(np.uint8)
    out[:height, :width] = rgb
    return out


def lines_to_text(lines: list[OcrLine]) -> str:
    """Join text boxes into reading-order rows.

    Boxes are grouped into visual rows by :func:`conveyor.processors.extract.layout.group_rows`
    (page skew undone first; boxes whose vertical centres are closer than half the
    median box height share a row); a row's boxes are ordered left to right and
    joined with a space. Receipts thereby keep a label and its amount on one line
    (``"SUMME EUR 7,16"``), which :mod:`conveyor.processors.extract.fields` relies on.
    Digit/letter confusions inside words are repaired
    (:func:`conveyor.processors.extract.postocr.fix_confusions`).
    """
    from conveyor.processors.extract.layout import group_rows  # layout imports OcrLine from here
    from conveyor.processors.extract.postocr import fix_confusions

    return "\n".join(fix_confusions(" ".join(item[0].text for item in row)) for row in group_rows(lines))
