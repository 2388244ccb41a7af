"""Post-OCR correction of digit/letter confusions inside words.

Recognisers confuse glyphs that look alike: ``0``/``O``, ``1``/``l``/``I``, ``5``/``S``.
Inside one alphanumeric run the context tells which was printed (the classic
character-confusion repair of post-OCR correction, cf. Kissos & Dershowitz, "OCR
Error Correction Using Character Correction and Feature-Based Word Classification",
DAS 2016):

* a confusable **digit between two letters** is a letter (``L0T`` -> ``LOT``,
  ``Ja1an`` -> ``Jalan``, ``ANG5A`` -> ``ANGSA``), and so is one ending a run of
  at least three letters (``REK0`` -> ``REKO``, ``Leve1`` -> ``Level``);
* a confusable **letter between two digits** is a digit (``1l8B`` -> ``118B``), and
  so are ``O``/``o``/``l``/``I`` ending a run of at least two digits (``4115O`` -> ``41150``).

``S``, ``B`` and other letters after digits are left alone: they are legitimate
suffixes (``21003B``, ``12S``). Runs mixing more digits and letters than that
(codes such as ``SS21``, ``KL001``, ``L1-044B``) are not touched.
"""
from __future__ import annotations

import re

__all__ = ["fix_confusions"]

_DIGIT_AS_LETTER = {"0": "O", "1": "l", "5": "S"}
_LETTER_AS_DIGIT = {"O": "0", "o": "0", "l": "1", "I": "1", "i": "1", "S": "5"}
#: Letters that may become digits at the end of a digit run (not S: "12S" is a tax code).
_TRAILING_LETTER_AS_DIGIT = {"O": "0", "o": "0", "l": "1", "I": "1"}
_RUN = re.compile(r"[^\W_]+")


def _letter_for(digit: str, left: str, right: str) -> str:
    """The letter a confusable digit stands for, in the case of its neighbours
    (``1`` is ``l`` among lower-case letters, ``I`` among capitals)."""
    letter = _DIGIT_AS_LETTER[digit]
    letters = [ch for ch in left + right if ch.isalpha()]
    if letters and all(ch.isupper() for ch in letters):
        return "I" if letter == "l" else letter
    if letters and all(ch.islower() for ch in letters):
        return letter.lower()
    return letter


def _fix_run(run: str) -> str:
    chars = list(run)
    n = len(chars)
    for i, ch in enumerate(run):
        left = chars[i - 1] if i else ""
        right = run[i + 1] if i + 1 < n else ""
        if ch in _DIGIT_AS_LETTER:
            if left.isalpha() and right.isalpha():
                chars[i] = _letter_for(ch, left, right)
            elif not right and i >= 3 and run[:i].isalpha():
                chars[i] = _letter_for(ch, left, "")
        elif ch in _LETTER_AS_DIGIT:
            if left.isdigit() and right.isdigit():
                chars[i] = _LETTER_AS_DIGIT[ch]
            elif ch in _TRAILING_LETTER_AS_DIGIT and i >= 2 and "".join(chars[:i]).isdigit() \
                    and all(c in _TRAILING_LETTER_AS_DIGIT for c in run[i:]):
                chars[i] = _TRAILING_LETTER_AS_DIGIT[ch]
    return "".join(chars)


def fix_confusions(text: str) -> str:
    """``text`` with digit/letter confusions repaired inside each alphanumeric run
    (see the module docstring); everything else is unchanged."""
    return _RUN.sub(lambda m: _fix_run(m.group(0)), text)
