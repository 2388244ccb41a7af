"""Character error rate (CER) of OCR output against a reference transcript.

CER = Levenshtein edit distance (insertions + deletions + substitutions, unit
costs) between hypothesis and reference, divided by the reference length — the
standard definition (e.g. Morris et al., "From WER and RIL to MER and WIL",
Interspeech 2004; ``jiwer.cer``). The distance is computed with RapidFuzz's
``rapidfuzz.distance.Levenshtein.distance`` (C++, O(N*M/64) bit-parallel).

Both texts are compared after collapsing every run of whitespace (spaces, line
breaks) into one space, so only characters and word boundaries count, not how
boxes were joined into lines.
"""
from __future__ import annotations

from collections.abc import Iterable

__all__ = ["cer", "corpus_cer", "collapse_whitespace"]


def collapse_whitespace(text: str) -> str:
    """Every whitespace run -> one space, ends stripped."""
    return " ".join(str(text).split())


def cer(hypothesis: str, reference: str, *, case_sensitive: bool = True) -> float:
    """Character error rate of ``hypothesis`` against ``reference``.

    Args:
        hypothesis: OCR output.
        reference: Ground-truth transcript.
        case_sensitive: ``False`` case-folds both texts first.

    Returns:
        ``edits / len(reference)`` after whitespace collapsing, ``>= 0`` (can exceed 1
        when the hypothesis is much longer). An empty reference gives ``0.0`` for an
        empty hypothesis and ``1.0`` otherwise.
    """
    edits, length = _edits(hypothesis, reference, case_sensitive)
    if length == 0:
        return 0.0 if edits == 0 else 1.0
    return edits / length


def corpus_cer(pairs: Iterable[tuple[str, str]], *, case_sensitive: bool = True) -> float:
    """Micro-averaged CER over ``(hypothesis, reference)`` pairs: total edits divided
    by total reference characters (long documents weigh more, as in ``jiwer.cer``
    over a list)."""
    edits = length = 0
    for hypothesis, reference in pairs:
        e, n = _edits(hypothesis, reference, case_sensitive)
        edits += e
        length += n
    return edits / length if length else 0.0


def _edits(hypothesis: str, reference: str, case_sensitive: bool) -> tuple[int, int]:
    from rapidfuzz.distance import Levenshtein

    hyp, ref = collapse_whitespace(hypothesis), collapse_whitespace(reference)
    if not case_sensitive:
        hyp, ref = hyp.casefold(), ref.casefold()
    return int(Levenshtein.distance(hyp, ref)), len(ref)
