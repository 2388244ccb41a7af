"""Token-aware chunking of long texts for all-MiniLM-L6-v2.

A text is tokenized once (without special tokens, without truncation); the
token sequence is cut into windows of at most ``max_tokens - 2`` tokens so that
each window plus [CLS]/[SEP] fits the model's 256-token limit. Consecutive
windows share ``overlap`` tokens. Window edges are moved to word starts (the
tokenizer's ``word_ids``) whenever possible, so a chunk's text — sliced from
the original string by the tokenizer's character offsets — tokenizes back to
exactly the window's tokens.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from conveyor.processors.embed.model import MAX_SEQ_LENGTH
from conveyor.processors.errors import ModelInputError

if TYPE_CHECKING:
    from tokenizers import Tokenizer

#: [CLS] and [SEP] that the model adds around every input.
SPECIAL_TOKENS = 2


@dataclass(frozen=True)
class Chunk:
    """One window of a text.

    Attributes:
        chunk_index: 0-based position in the text.
        text: the chunk, sliced from the original text by character offsets.
        token_count: tokens the model sees for it, [CLS]/[SEP] included.
        start_char: offset of the chunk in the original text.
        end_char: end offset (exclusive).
    """

    chunk_index: int
    text: str
    token_count: int
    start_char: int
    end_char: int


def _word_start(word_ids: list[int | None], i: int) -> int:
    """First token index of the word that token ``i`` belongs to."""
    w = word_ids[i]
    while w is not None and i > 0 and word_ids[i - 1] == w:
        i -= 1
    return i


def chunk_text(text: str, tokenizer: Tokenizer, *, max_tokens: int = MAX_SEQ_LENGTH, overlap: int = 32) -> list[Chunk]:
    """Split ``text`` into ≤ ``max_tokens``-token chunks (special tokens included).

    Args:
        text: the full text.
        tokenizer: a ``tokenizers.Tokenizer`` without truncation
            (``MiniLMEmbedder.tokenizer``).
        max_tokens: tokens per chunk including [CLS]/[SEP] (≤ 256 for the model).
        overlap: tokens shared by consecutive chunks (0 ≤ overlap < max_tokens - 2).

    Returns:
        Chunks in text order; a short text gives exactly one chunk.

    Raises:
        ModelInputError: the text is empty, whitespace only, or has no tokens.
    """
    budget = max_tokens - SPECIAL_TOKENS
    if budget < 1:
        raise ValueError(f"max_tokens must be > {SPECIAL_TOKENS}")
    if not 0 <= overlap < budget:
        raise ValueError(f"overlap must be in [0, {budget})")
    if not isinstance(text, str) or not text.strip():
        raise ModelInputError("text is empty")
    enc = tokenizer.encode(text, add_special_tokens=False)
    offsets = enc.offsets
    word_ids = enc.word_ids
    n = len(enc.ids)
    if n == 0:
        raise ModelInputError("text has no tokens")

    chunks: list[Chunk] = []
    start = 0
    while True:
        end = min(start + budget, n)
        if end < n:
            # Do not split a word across windows unless the word alone fills it.
            ws = _word_start(word_ids, end)
            if ws > start:
                end = ws
        s_char, e_char = offsets[start][0], offsets[end - 1][1]
        chunks.append(
            Chunk(
                chunk_index=len(chunks),
                text=text[s_char:e_char],
                token_count=end - start + SPECIAL_TOKENS,
                start_char=s_char,
                end_char=e_char,
            )
        )
        if end >= n:
            break
        nxt = _word_start(word_ids, max(end - overlap, 0))
        if nxt <= start:  # word alignment would not advance: continue without overlap
            nxt = end
        start = nxt
    return chunks
