"""OCR of RGB page images with RapidOCR (PP-OCRv4 detection/recognition, ONNX).

The three ONNX models ship inside the ``rapidocr_onnxruntime`` wheel; the engine
reads them from the package directory and never touches the network.

One engine is created lazily per process (model loading takes ~0.5 s) and is
shared by all threads; calls are serialised with a lock because RapidOCR keeps
per-call state on the engine object. :class:`OcrOptions` holds the speed settings
(detector input size, angle classifier, recognition batch); their speed/quality
trade-off is measured by ``python -m conveyor.tools.bench.ocr_variants`` and shown in
``docs/benchmarks.md``.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

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

#: RapidOCR 1.4's detector rule (``Det.limit_side_len`` 736, ``limit_type: min``): an
#: image whose short side is below 736 px is enlarged to 736 px before text detection.
DET_MIN_SIDE = 736


@dataclass(frozen=True)
class OcrOptions:
    """Speed settings of the OCR engine (RapidOCR 1.4 parameters, ``config.yaml``).

    Attributes:
        det_max_side: Long side (pixels) to which the page is shrunk for *text
            detection* only; recognition still crops each text box from the
            full-resolution page. ``None`` detects at full resolution (RapidOCR's
            own rule). Detection costs grow with the pixel count: a 900 x 3300 px
            receipt scan is 3 Mpx at full resolution, 1.1 Mpx at 2000 px.
        use_angle_cls: Run the text-direction classifier (0/180 degrees) on every
            box before recognition (RapidOCR's ``use_cls``).
        rec_batch_num: Text boxes per recognition call (``Rec.rec_batch_num``).
        intra_op_threads: ONNX Runtime threads per model; ``-1``: one per core.
    """

    det_max_side: int | None = None
    use_angle_cls: bool = True
    rec_batch_num: int = 6
    intra_op_threads: int = -1


#: The settings the extract processor runs with, chosen from the measured table in
#: ``docs/benchmarks.md`` (52 receipt scans, 2026-12-05): half the CPU per page of RapidOCR's
#: defaults (1.84 s against 3.66-3.97 s), SROIE line CER 0.105 against 0.106, the same figures
#: on full-page invoices and forms. One ONNX Runtime thread: a second thread per model saved
#: little wall time and cost ~25 % more CPU; spread documents over extract instances instead.
#: Recognition batches of 1: batching pads every box to the widest in the batch.
DEFAULT_OPTIONS = OcrOptions(det_max_side=1600, rec_batch_num=1, intra_op_threads=1)

_engine: Any = None  # a RapidOCR engine (rapidocr_onnxruntime is untyped)
_options = DEFAULT_OPTIONS
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


def make_engine(options: OcrOptions = DEFAULT_OPTIONS) -> Any:
    """A new ``RapidOCR`` engine with ``options`` (loads three ONNX models, ~0.5 s).

    Raises:
        ValueError: ``rec_batch_num`` < 1 or ``det_max_side`` < 32.
    """
    if options.rec_batch_num < 1:
        raise ValueError(f"rec_batch_num must be >= 1, got {options.rec_batch_num}")
    if options.det_max_side is not None and options.det_max_side < 32:
        raise ValueError(f"det_max_side must be >= 32 pixels, got {options.det_max_side}")
    from rapidocr_onnxruntime import RapidOCR

    engine = RapidOCR(max_side_len=_ENGINE_MAX_SIDE, use_cls=options.use_angle_cls,
                      rec_batch_num=options.rec_batch_num, intra_op_num_threads=options.intra_op_threads)
    if options.det_max_side is not None:
        engine.text_det.get_preprocess = _capped_det_preprocess(engine.text_det, options.det_max_side)
    return engine


def _capped_det_preprocess(detector: Any, det_max_side: int) -> Callable[[int], Any]:
    """Replacement for RapidOCR's ``TextDetector.get_preprocess``: its min-736 rule, then
    the long side capped at ``det_max_side`` (the detector maps boxes back to the page)."""
    from rapidocr_onnxruntime.ch_ppocr_det.utils import DetPreProcess

    class _Capped(DetPreProcess):  # type: ignore[misc]  # rapidocr_onnxruntime is untyped: DetPreProcess is Any
        def resize(self, img: np.ndarray) -> np.ndarray:
            import cv2

            height, width = img.shape[:2]
            ratio = min(max(1.0, DET_MIN_SIDE / min(height, width)), det_max_side / max(height, width))
            size = (max(32, round(width * ratio / 32) * 32), max(32, round(height * ratio / 32) * 32))
            return cv2.resize(img, size, interpolation=cv2.INTER_AREA if ratio < 1 else cv2.INTER_LINEAR)

    def get_preprocess(_max_wh: int) -> _Capped:
        return _Capped(DET_MIN_SIDE, "min", detector.mean, detector.std)

    return get_preprocess


def configure(options: OcrOptions) -> None:
    """Use ``options`` for this process's engine from now on (the next call builds it)."""
    global _engine, _options
    with _engine_lock, _call_lock:
        _options, _engine = options, None


def current_options() -> OcrOptions:
    """The :class:`OcrOptions` of this process's engine."""
    return _options


def get_engine() -> Any:
    """Return the process-wide ``RapidOCR`` engine (:func:`current_options`), creating it on first use."""
    global _engine
    if _engine is None:
        with _engine_lock:
            if _engine is None:
                _engine = make_engine(_options)
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
