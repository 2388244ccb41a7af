"""Error classes raised by processors.

Every error a processor raises for one record ends as a dead-letter record whose
headers carry the exception class and message. ``permanent`` tells the failure
router (``dlq/``) whether retrying can help: permanent errors (corrupt input,
unsupported type, invalid model input) go straight to the dead-letter topic;
transient ones (a downstream being unavailable) may be retried.
"""
from __future__ import annotations


class ConveyorError(Exception):
    """Base class of Conveyor's processing errors.

    Attributes:
        permanent: True when retrying the same record cannot succeed.
    """

    permanent: bool = True


class DocumentError(ConveyorError):
    """A document cannot be turned into text."""


class CorruptDocumentError(DocumentError):
    """The bytes are damaged: truncated image, broken PDF structure, junk header."""


class UnsupportedDocumentError(DocumentError):
    """The file type is not one Conveyor extracts (or cannot be identified)."""


class EmptyDocumentError(DocumentError):
    """The document has no bytes, or no page/text could be extracted from it."""


class DocumentLimitError(DocumentError):
    """The document exceeds a configured limit (pixels, pages, text length; see
    :mod:`conveyor.processors.limits`)."""


class EncryptedDocumentError(DocumentError):
    """The PDF is password-protected."""


class ModelInputError(ConveyorError):
    """The record cannot be fed to a model (e.g. no text, wrong vector size)."""


class TextLimitError(ModelInputError):
    """A text is longer than the limit (:data:`conveyor.processors.limits.MAX_TEXT_CHARS`)."""


class ModelIntegrityError(ConveyorError):
    """A model file does not match the sha256 pinned in its manifest."""


class TransientError(ConveyorError):
    """A failure that may succeed on retry (downstream unavailable, timeout)."""

    permanent = False
