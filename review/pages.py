"""An item's input, read back from the topics: the document's pages as PNG, the text, the
extracted pages.

The queue indexes where each doc id's records are (:class:`conveyor.review.queue.ReviewState`);
these functions read that one record (read_committed, partition assigned directly) and
render what the review page shows. A document stored as a blob (``blob_uri``) is read from
the blob store, as the extract processor reads it.
"""
from __future__ import annotations

import functools
import io
import threading
from typing import Any, Optional

import pypdfium2 as pdfium
from PIL import Image

from conveyor.processors.extract.detect import detect_type
from conveyor.processors.extract.images import load_pages
from conveyor.review.queue import ReviewState
from conveyor.streams.config.settings import Settings
from conveyor.streams.kafka.blobstore import BlobStore
from conveyor.streams.kafka.io import read_range
from conveyor.streams.kafka.serde import AvroSerde

PAGE_MAX_SIDE = 1400
"""Long side, in pixels, of a page image on the review page."""
MAX_PAGES_SHOWN = 20
_pdfium_lock = threading.Lock()  # PDFium is not thread-safe


class SourceReader:
    """Reads an item's source records by doc id and renders its pages (small LRU caches).

    Raises (from every method):
        LookupError: the topics hold no such record for the doc id (e.g. deleted by retention).
    """

    def __init__(self, settings: Settings, state: ReviewState, serde: Optional[AvroSerde] = None):
        self.settings, self.state = settings, state
        self.serde = serde or AvroSerde(settings)
        self._render = functools.lru_cache(maxsize=64)(self._render_uncached)

    def record(self, role: str, doc_id: str) -> Optional[dict[str, Any]]:
        """The newest decoded ``role`` record of ``doc_id`` (``documents``, ``texts``,
        ``extracted``), or ``None`` when there is none."""
        with self.state.lock:
            where = self.state.sources.get((role, doc_id))
        if where is None:
            return None
        topic, partition, offset = where
        for msg in read_range(self.settings, {(topic, partition): (offset, offset + 1)}, timeout=30):
            return self.serde.decode(topic, msg.value())
        return None

    def document_bytes(self, doc_id: str) -> Optional[bytes]:
        """The document's bytes (inline or from the blob store), or ``None`` for a text input."""
        record = self.record("documents", doc_id)
        if record is None:
            return None
        content: Optional[bytes] = record.get("content")
        if content is not None:
            return content
        if record.get("blob_uri"):
            return BlobStore(self.settings.blob_dir).read(record["blob_uri"])
        return None

    def page_png(self, doc_id: str, page: int) -> bytes:
        """Page ``page`` (1-based) of the document as PNG, long side at most :data:`PAGE_MAX_SIDE`.

        Raises:
            LookupError: no document or no such page.
            conveyor.processors.errors.ConveyorError: the bytes do not decode (damaged document).
        """
        if not 1 <= page <= MAX_PAGES_SHOWN:
            raise LookupError(f"page {page} is not shown (1..{MAX_PAGES_SHOWN})")
        return self._render(doc_id, page)

    def _render_uncached(self, doc_id: str, page: int) -> bytes:
        data = self.document_bytes(doc_id)
        if data is None:
            raise LookupError(f"no document bytes for {doc_id}")
        kind = detect_type(data)
        if kind.kind == "pdf":
            with _pdfium_lock:
                pdf = pdfium.PdfDocument(data)
                try:
                    if page > len(pdf):
                        raise LookupError(f"{doc_id} has {len(pdf)} pages")
                    p = pdf[page - 1]
                    width, height = p.get_size()
                    image = p.render(scale=PAGE_MAX_SIDE / max(width, height), may_draw_forms=True).to_pil()
                finally:
                    pdf.close()
        else:
            frames = load_pages(data, formats=[kind.format], max_side=PAGE_MAX_SIDE)
            if page > len(frames):
                raise LookupError(f"{doc_id} has {len(frames)} pages")
            image = Image.fromarray(frames[page - 1])
        out = io.BytesIO()
        image.convert("RGB").save(out, format="PNG", optimize=False)
        return out.getvalue()
