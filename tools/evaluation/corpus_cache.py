"""Cached extraction of the evaluation corpus (``../shared/corpus``).

OCR costs 1-2.5 s per receipt on a 2-core machine, so every document is extracted
once and the result (page texts and OCR boxes, not key fields) is stored as JSON
under ``$CONVEYOR_EVAL_CACHE`` (default ``~/.cache/conveyor/eval``), keyed by the
file's sha256 and the *code version* of the text-producing code: the installed
RapidOCR version plus a hash of the source of the functions that turn bytes into
boxes (image loading, PDF rendering, OCR call). Changing field rules or row grouping
therefore re-uses the cache; changing OCR or preprocessing code re-runs OCR.

Two variants are cached:

* ``pipeline`` — :func:`conveyor.processors.extract.extract_pages` (what the extract
  processor does: EXIF rotation, scaling limits, padding, PDF text layer first);
* ``raw`` — RapidOCR with its default settings on the image file itself, the
  baseline that shows whether the pipeline's preprocessing helps.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import inspect
import json
import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: Environment variable naming the cache folder.
CACHE_ENV = "CONVEYOR_EVAL_CACHE"


def cache_dir() -> Path:
    """``$CONVEYOR_EVAL_CACHE`` or ``~/.cache/conveyor/eval`` (outside the repository)."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "conveyor" / "eval")


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def _rapidocr_version() -> str:
    try:
        return importlib.metadata.version("rapidocr-onnxruntime")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover
        return "unknown"


def code_version(kind: str = "image") -> str:
    """Version tag of the code that produces page texts and boxes of ``kind`` documents.

    ``"rapidocr<version>-<12 hex>"``, the hex being the sha256 of the source of
    :mod:`conveyor.processors.extract.images` and of the OCR functions, size limits and
    current :class:`~conveyor.processors.extract.ocr.OcrOptions` in
    :mod:`conveyor.processors.extract.ocr` (not its row grouping, which runs on cached boxes);
    for ``kind == "pdf"`` also of :mod:`conveyor.processors.extract.pdf`.
    """
    from conveyor.processors.extract import images, ocr, pdf

    parts = [inspect.getsource(images)]
    for func in (ocr.get_engine, ocr.make_engine, ocr._capped_det_preprocess, ocr.is_blank, ocr.ocr_image,
                 ocr._pad_for_engine):
        parts.append(inspect.getsource(func))
    parts.append(repr((ocr.DEFAULT_MAX_PIXELS, ocr.DEFAULT_MAX_SIDE, ocr.ENGINE_MIN_SIDE, ocr.ENGINE_MAX_RATIO,
                       ocr.current_options())))
    if kind == "pdf":
        parts.append(inspect.getsource(pdf))
    digest = hashlib.sha256("\n".join(parts).encode()).hexdigest()[:12]
    return f"rapidocr{_rapidocr_version()}-{digest}"


def _line_to_json(line) -> list:
    return [line.text, [list(point) for point in line.box], line.score]


def _line_from_json(item: list):
    from conveyor.processors.extract.ocr import OcrLine

    return OcrLine(text=item[0], box=tuple((float(x), float(y)) for x, y in item[1]), score=float(item[2]))


def _pages_from_json(pages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    from conveyor.processors.extract.ocr import lines_to_text
    from conveyor.processors.extract.pdf import normalise_text

    out = []
    for page in pages:
        lines = [_line_from_json(item) for item in page["lines"]]
        text = normalise_text(lines_to_text(lines)) if page["method"] == "ocr" and lines else page["text"]
        out.append({**page, "lines": lines, "text": text, "size": tuple(page["size"]) if page["size"] else None})
    return out


def cached_pages(path: Path, *, version: str | None = None) -> list[dict[str, Any]]:
    """:func:`conveyor.processors.extract.extract_pages` of one file, from the cache when possible.

    OCR page texts are rebuilt from the cached boxes with the current
    :func:`conveyor.processors.extract.ocr.lines_to_text`.

    Returns:
        The page dicts of :func:`conveyor.processors.extract.extract_pages`.

    Raises:
        DocumentError: the extraction's own errors (not cached).
    """
    from conveyor.processors.extract import extract_pages
    from conveyor.processors.extract.detect import detect_type

    data = path.read_bytes()
    version = version or code_version(detect_type(data, path.name).kind)
    target = cache_dir() / "pipeline" / f"{sha256_bytes(data)}-{version}.json"
    if target.exists():
        return _pages_from_json(json.loads(target.read_text()))
    log.info("extracting %s", path)
    pages = extract_pages(data, path.name)
    stored = [{**page, "lines": [_line_to_json(line) for line in page["lines"]]} for page in pages]
    _write_json(target, stored)
    return _pages_from_json(stored)


def cached_raw_ocr(path: Path, *, rgb: bool = False) -> list:
    """RapidOCR with its default settings (``RapidOCR()``) on one image, cached.

    Args:
        path: The image file; RapidOCR reads it itself (its own loader).
        rgb: Hand RapidOCR the image converted to RGB by Pillow instead (isolates
            the effect of colour conversion, e.g. of palette PNGs).

    Returns:
        A list of :class:`conveyor.processors.extract.ocr.OcrLine`.
    """
    data = path.read_bytes()
    variant = "-rgb" if rgb else ""
    target = cache_dir() / "raw" / f"{sha256_bytes(data)}-rapidocr{_rapidocr_version()}{variant}.json"
    if target.exists():
        return [_line_from_json(item) for item in json.loads(target.read_text())]
    from conveyor.processors.extract.ocr import OcrLine

    log.info("raw OCR of %s", path)
    if rgb:
        import io

        import numpy as np
        from PIL import Image

        with Image.open(io.BytesIO(data)) as im:
            image = np.ascontiguousarray(np.array(im.convert("RGB"))[:, :, ::-1])  # RapidOCR takes BGR arrays
        result, _elapsed = _raw_engine()(image)
    else:
        result, _elapsed = _raw_engine()(str(path))
    lines = [
        OcrLine(text=str(text).strip(), box=tuple((float(x), float(y)) for x, y in box), score=float(score))
        for box, text, score in (result or []) if str(text).strip()
    ]
    _write_json(target, [_line_to_json(line) for line in lines])
    return lines


_RAW_ENGINE = None


def _raw_engine():
    global _RAW_ENGINE
    if _RAW_ENGINE is None:
        from rapidocr_onnxruntime import RapidOCR

        _RAW_ENGINE = RapidOCR()
    return _RAW_ENGINE


def _write_json(target: Path, value: Any) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(value, ensure_ascii=False))
    tmp.replace(target)
