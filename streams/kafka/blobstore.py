"""A content-addressed blob store for documents too large to travel inline.

Documents above ``CONVEYOR_INLINE_MAX_BYTES`` are written once to
``<blob_dir>/<sha256[:2]>/<sha256>`` and referenced from the record by a
``file://`` URI, so no document is refused for its size. The directory must be
shared by producers and the extract processor (a local disk, NFS, a volume).
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from urllib.parse import unquote, urlparse

from conveyor.processors.errors import CorruptDocumentError, EmptyDocumentError


class BlobStore:
    """Put and read blobs by sha256 under ``root``."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def put(self, data: bytes, sha256: str | None = None) -> str:
        """Store ``data`` (idempotent; atomic rename) and return its ``file://`` URI."""
        digest = sha256 or hashlib.sha256(data).hexdigest()
        path = self.root / digest[:2] / digest
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        return path.resolve().as_uri()

    def read(self, uri: str) -> bytes:
        """Bytes of the blob at ``uri``.

        Raises:
            EmptyDocumentError: the blob is missing.
            CorruptDocumentError: the URI is not a ``file://`` URI under the store's root.
        """
        parsed = urlparse(uri)
        if parsed.scheme != "file":
            raise CorruptDocumentError(f"unsupported blob URI scheme: {uri!r}")
        path = Path(unquote(parsed.path)).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise CorruptDocumentError(f"blob URI outside the blob store: {uri!r}")
        try:
            return path.read_bytes()
        except FileNotFoundError as exc:
            raise EmptyDocumentError(f"blob not found: {path}") from exc
