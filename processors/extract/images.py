"""Decode raster images into RGB pages.

One image file gives one page, except multi-frame TIFFs (fax/scanner output),
whose frames are pages. Other animated formats (GIF, WebP, APNG, MPO) give
their first frame only.

Limits guard the process against hostile input:

* pixels per page (``max_pixels``; Pillow's own ``Image.MAX_IMAGE_PIXELS``
  decompression-bomb check also applies), checked from the header *before*
  any pixel is decoded;
* number of pages (``max_pages``).

Pillow's ``ImageFile.LOAD_TRUNCATED_IMAGES`` is left ``False`` on purpose:
every frame is ``load()``-ed so a truncated file fails here with
:class:`~conveyor.processors.errors.CorruptDocumentError` instead of yielding a grey
half-image.
"""
from __future__ import annotations

import io
import logging
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from conveyor.processors.errors import ConveyorError, CorruptDocumentError, DocumentLimitError
from conveyor.processors.limits import MAX_PAGES, MAX_PIXELS

log = logging.getLogger(__name__)

#: Formats whose extra frames are real pages.
_MULTIPAGE_FORMATS = {"TIFF"}

_WHITE = (255, 255, 255)


def load_pages(
    data: bytes,
    *,
    formats: Sequence[str] | None = None,
    max_pages: int = MAX_PAGES,
    max_pixels: int = MAX_PIXELS,
    max_side: int | None = None,
) -> list[np.ndarray]:
    """Decode ``data`` into a list of RGB pages.

    Args:
        data: The image file's bytes.
        formats: Pillow format names to try (e.g. ``["PNG"]``, from
            :func:`conveyor.processors.extract.detect.detect_type`); ``None`` lets Pillow
            try every plugin.
        max_pages: Most frames (pages) accepted.
        max_pixels: Most pixels (width × height) accepted per page.
        max_side: When given, pages are downscaled (Lanczos; JPEGs are decoded
            at a reduced DCT scale first) so their long side is at most this
            many pixels. OCR downscales anyway, so this only saves memory/time.

    Returns:
        One ``uint8`` array of shape ``(height, width, 3)`` (RGB) per page,
        upright according to the EXIF orientation tag. Transparent areas are
        composited onto white.

    Raises:
        DocumentLimitError: a page exceeds ``max_pixels`` (or Pillow's
            decompression-bomb limit), or there are more than ``max_pages`` pages.
        CorruptDocumentError: Pillow cannot identify or fully decode the bytes
            (truncated file, damaged header or data).
    """
    try:
        im = Image.open(io.BytesIO(data), formats=list(formats) if formats else None)
    except Image.DecompressionBombError as exc:
        raise DocumentLimitError(f"image exceeds Pillow's decompression-bomb limit: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - any decoder failure means damaged bytes
        expected = "/".join(formats) if formats else "image"
        reason = "Pillow cannot identify it" if isinstance(exc, UnidentifiedImageError) else str(exc)
        raise CorruptDocumentError(
            f"cannot decode {expected} data, damaged header or not really a {expected} ({reason})"
        ) from None

    with im:
        fmt = im.format or "image"
        try:
            n_frames = int(getattr(im, "n_frames", 1)) if fmt in _MULTIPAGE_FORMATS else 1
        except Exception as exc:  # noqa: BLE001 - a broken frame chain is damage
            raise CorruptDocumentError(f"{fmt} has a damaged page (frame) structure: {exc}") from None
        if n_frames > max_pages:
            raise DocumentLimitError(f"{fmt} has {n_frames} pages, more than the limit of {max_pages}")
        pages = []
        for index in range(n_frames):
            try:
                if index:
                    im.seek(index)
                _check_pixels(im.size, max_pixels, fmt, index)
                if max_side and fmt == "JPEG" and max(im.size) > 2 * max_side:
                    scale = max_side / max(im.size)
                    im.draft("RGB", (int(im.size[0] * scale) + 1, int(im.size[1] * scale) + 1))
                im.load()
                pages.append(_to_rgb_array(_upright(im), max_side))
            except ConveyorError:
                raise
            except Image.DecompressionBombError as exc:
                raise DocumentLimitError(f"{fmt} page {index + 1} exceeds Pillow's decompression-bomb limit: {exc}") from None
            except MemoryError:
                raise DocumentLimitError(f"{fmt} page {index + 1} is too large to decode in memory") from None
            except Exception as exc:  # noqa: BLE001 - truncated/damaged data in any decoder
                raise CorruptDocumentError(
                    f"{fmt} page {index + 1} is truncated or damaged: {exc}"
                ) from None
    return pages


def _check_pixels(size: tuple[int, int], max_pixels: int, fmt: str, index: int) -> None:
    """Raise :class:`DocumentLimitError` when ``size`` (w, h) is over a pixel limit."""
    width, height = size
    limit = max_pixels
    if Image.MAX_IMAGE_PIXELS:
        limit = min(limit, int(Image.MAX_IMAGE_PIXELS))
    if width <= 0 or height <= 0:
        raise CorruptDocumentError(f"{fmt} page {index + 1} has an invalid size {width}x{height}")
    if width * height > limit:
        raise DocumentLimitError(
            f"{fmt} page {index + 1} is {width}x{height} = {width * height:,} pixels, "
            f"more than the limit of {limit:,} (decompression bomb?)"
        )


def _upright(im: Image.Image) -> Image.Image:
    """Apply the EXIF orientation; a broken EXIF block leaves the image as is."""
    try:
        return ImageOps.exif_transpose(im) or im
    except Exception as exc:  # noqa: BLE001 - bad EXIF must not lose the document
        log.warning("ignoring unreadable EXIF orientation: %s", exc)
        return im


def _to_rgb_array(im: Image.Image, max_side: int | None = None) -> np.ndarray:
    """Convert any Pillow mode to an ``(h, w, 3)`` ``uint8`` RGB array,
    downscaled to ``max_side`` when given."""
    rgb = _to_rgb_image(im)
    if max_side and max(rgb.size) > max_side:
        scale = max_side / max(rgb.size)
        size = (max(1, round(rgb.size[0] * scale)), max(1, round(rgb.size[1] * scale)))
        rgb = rgb.resize(size, Image.Resampling.LANCZOS)
    return np.array(rgb, dtype=np.uint8, copy=True)


def _to_rgb_image(im: Image.Image) -> Image.Image:
    """Any Pillow mode -> an RGB image (alpha composited onto white)."""
    mode = im.mode
    if mode == "RGB":
        return im
    if mode in ("I", "F") or mode.startswith("I;16"):
        # High-bit-depth greyscale: stretch to 0..255 rather than clip.
        arr = np.asarray(im, dtype=np.float64)
        top = float(arr.max()) if arr.size else 0.0
        if top > 255:
            arr = arr * (255.0 / top)
        grey = np.clip(arr, 0, 255).astype(np.uint8)
        return Image.fromarray(grey).convert("RGB")
    if mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = im.convert("RGBA")
        background = Image.new("RGB", rgba.size, _WHITE)
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return im.convert("RGB")
