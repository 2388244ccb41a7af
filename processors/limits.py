"""Limits on what one input record may cost: memory, CPU time and output size.

An input over a limit is refused with a permanent error naming the limit
(:class:`~conveyor.processors.errors.DocumentLimitError` in ``extract``,
:class:`~conveyor.processors.errors.TextLimitError` in ``embed``), so it becomes a dead
letter instead of stalling or crashing its processor. Nothing is truncated
silently. The processors take these values as constructor defaults.
"""
from __future__ import annotations

MAX_PAGES = 50
"""Most pages of one document (PDF pages, TIFF frames). Checked from the page count
before any page is read, so a PDF claiming 10,000 pages costs nothing. 50 pages of OCR
take minutes on 2 cores (1-2.5 s per page), which is what ``conveyor.streams.runtime.stages``'
``EXTRACT_MAX_POLL_MS`` (30 min) allows for one document."""

MAX_PIXELS = 60_000_000
"""Most pixels of one image page or rendered PDF page (width x height), checked from the
image header before decoding (decompression bombs: a 100,000 x 100,000 PNG header is
refused unread). 60 Mpx decode to 180 MB of RGB; a 300 dpi A4 scan is 8.7 Mpx, an A3 scan
at 600 dpi 69.6 Mpx. Pillow's own bomb check (``Image.MAX_IMAGE_PIXELS``, 89.5 Mpx)
applies as well; the smaller of the two wins."""

MAX_TEXT_CHARS = 200_000
"""Most characters of one text or extracted document text. It is :data:`MAX_PAGES` x
4,000 characters (a full A4 page of dense 10-pt text), so no document that ``extract``
accepts at a normal density is refused. Cost at the limit: ~215 chunks of 256 tokens for
English (measured: 214 chunks, 39.5 s of MiniLM embedding on a busy 2-core machine) and an
``Embedded`` record of ~0.6 MB; in the worst case of one token per character, ~900 chunks
and ~2.5 MB, still far below the 16 MiB message limit. Longer texts should be split by
their producer."""
