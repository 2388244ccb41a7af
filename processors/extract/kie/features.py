"""Feature vectors of key-field candidates: where the value sits, what it looks like, what is around it.

Every candidate of a field gets the same vector layout (:func:`feature_names`):

* **position and reading** (15): the span's box (left, top, right, bottom, width, distance of its
  centre from the page's middle), print size (largest and mean relative row height), page
  (fraction of the document), line within the page (index, capped at 60, and fraction), rows in
  the span, whether the boxes come from OCR, and the recogniser's confidence in them (lowest and
  mean: a misread name is often a low-confidence box);
* **shape and spelling** (10): characters, words, and the shares of upper-case letters, digits,
  letters and punctuation, a colon; and how word-like the value's words of three or more letters
  are to the embedding model's WordPiece vocabulary (all-MiniLM-L6-v2's, shipped with the embed
  stage; Wu et al. 2016): the share that are one known piece, and the mean and most pieces a word
  takes — an OCR misreading ("Heauty", "LANHINGSTATIONERY") splits into many pieces, a word
  read right into few;
* **words** (:data:`VALUE_BUCKETS` + 3 × :data:`CONTEXT_BUCKETS`): hashed bags of the lower-cased
  words of the value, of the row above, of the row below and of the context beside the value
  (the label), digits replaced by ``0`` — the "hashing trick" (Weinberger et al., *Feature Hashing
  for Large Scale Multitask Learning*, ICML 2009) with CRC-32, so the same word always lands in the
  same bucket on every machine;
* **signals**: the field's own evidence (:data:`.candidates.SIGNALS`).
"""
from __future__ import annotations

import re
import zlib
from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from conveyor.processors.extract.kie.candidates import SIGNALS, Candidate
from conveyor.processors.extract.kie.rows import DocRow

if TYPE_CHECKING:
    from tokenizers import Tokenizer

__all__ = ["CONTEXT_BUCKETS", "VALUE_BUCKETS", "feature_matrix", "feature_names"]

VALUE_BUCKETS = 64
CONTEXT_BUCKETS = 32
POSITION = ("left", "top", "right", "bottom", "width", "centre_offset", "height_max", "height_mean", "page_frac",
            "line", "line_frac", "span_rows", "geometry", "ocr_score_min", "ocr_score_mean")
SHAPE = ("chars", "words", "upper_share", "digit_share", "alpha_share", "punct_share", "colon", "known_words",
         "pieces_mean", "pieces_max")
_LETTER_WORD = re.compile(r"[^\W\d_]{3,}")
_WORD = re.compile(r"[^\W_]+", re.UNICODE)


@lru_cache(maxsize=16)
def feature_names(field: str) -> tuple[str, ...]:
    """Names of the columns of :func:`feature_matrix` for ``field``."""
    return (POSITION + SHAPE + tuple(f"value_w{i}" for i in range(VALUE_BUCKETS))
            + tuple(f"{part}_w{i}" for part in ("above", "below", "context") for i in range(CONTEXT_BUCKETS))
            + tuple(f"signal_{name}" for name in SIGNALS[field]))


@lru_cache(maxsize=65536)
def _bucket(word: str, size: int) -> int:
    return zlib.crc32(word.encode("utf-8")) % size


@lru_cache(maxsize=16384)
def _buckets(text: str, size: int) -> tuple[int, ...]:
    """Bucket of each word (2+ characters) of ``text``, digits read as ``0``."""
    return tuple(_bucket(word, size) for word in _WORD.findall(re.sub(r"\d", "0", text.casefold())) if len(word) > 1)


def _hash_words(text: str, out: np.ndarray, offset: int, size: int) -> None:
    for bucket in _buckets(text, size):
        out[offset + bucket] += 1.0


@lru_cache(maxsize=1)
def _tokenizer() -> Tokenizer:
    from conveyor.processors.embed.model import load_tokenizer

    return load_tokenizer()


@lru_cache(maxsize=65536)
def _pieces(word: str) -> int:
    """WordPiece pieces of one lower-cased word (1 for a word of the vocabulary)."""
    return len(_tokenizer().encode(word, add_special_tokens=False).ids)


@lru_cache(maxsize=16384)
def _shape(text: str) -> tuple[float, ...]:
    n = max(len(text), 1)
    letters = sum(ch.isalpha() for ch in text)
    pieces = [_pieces(w) for w in _LETTER_WORD.findall(text.casefold())]
    return (float(len(text)), float(len(text.split())), sum(ch.isupper() for ch in text) / max(letters, 1),
            sum(ch.isdigit() for ch in text) / n, letters / n,
            sum(not ch.isalnum() and not ch.isspace() for ch in text) / n, float(":" in text),
            sum(p == 1 for p in pieces) / len(pieces) if pieces else 0.0,
            sum(pieces) / len(pieces) if pieces else 0.0, float(max(pieces, default=0)))


def feature_matrix(field: str, cands: Sequence[Candidate], rows: Sequence[DocRow]) -> np.ndarray:
    """``(len(cands), len(feature_names(field)))`` float32 features of ``field``'s candidates."""
    names = feature_names(field)
    X = np.zeros((len(cands), len(names)), dtype=np.float32)
    if not cands:
        return X
    pages = max(r.page for r in rows) + 1
    lines_per_page: dict[int, int] = {}
    for r in rows:
        lines_per_page[r.page] = max(lines_per_page.get(r.page, 0), r.line + 1)
    base = len(POSITION) + len(SHAPE)
    above_at = base + VALUE_BUCKETS
    signal_names = SIGNALS[field]
    for k, c in enumerate(cands):
        span = [rows[i] for i in c.rows]
        first, last = span[0], span[-1]
        left, right = min(r.left for r in span), max(r.right for r in span)
        X[k, :len(POSITION)] = (
            left, first.top, right, last.bottom, right - left, abs((left + right) / 2 - 0.5),
            max(r.height for r in span), sum(r.height for r in span) / len(span), first.page / pages,
            min(first.line, 60), first.line / max(lines_per_page[first.page], 1), len(span), float(first.geometry),
            min(r.ocr_score for r in span), sum(r.ocr_score for r in span) / len(span))
        X[k, len(POSITION):base] = _shape(c.value)
        _hash_words(c.value, X[k], base, VALUE_BUCKETS)
        above, below = c.rows[0] - 1, c.rows[-1] + 1
        if above >= 0 and rows[above].page == first.page:
            _hash_words(rows[above].text, X[k], above_at, CONTEXT_BUCKETS)
        if below < len(rows) and rows[below].page == last.page:
            _hash_words(rows[below].text, X[k], above_at + CONTEXT_BUCKETS, CONTEXT_BUCKETS)
        _hash_words(c.context, X[k], above_at + 2 * CONTEXT_BUCKETS, CONTEXT_BUCKETS)
        X[k, above_at + 3 * CONTEXT_BUCKETS:] = [c.signals.get(name, 0.0) for name in signal_names]
    return X
