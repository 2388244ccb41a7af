"""An example Conveyor processor plugin: which language each text is in.

Installed, it is one more stage of the pipeline (``conveyor run langid``): it reads the
``texts`` topic, writes one ``Language`` record per text to ``<ns>.languages`` and has its
own consumer group, retry and dead-letter topics — all from the class attributes below and
the ``conveyor.processors`` entry point in ``pyproject.toml``. The language model is
py3langid's (Lui & Baldwin, "langid.py: An Off-the-shelf Language Identification Tool",
ACL 2012), shipped inside that package.
"""
from __future__ import annotations

from collections.abc import Sequence
from importlib.resources import files

from conveyor.processors.base import Outcome, Processor, Record
from conveyor.processors.errors import ModelInputError

__all__ = ["LanguageIdentifier"]

ALTERNATIVES = 3
"""How many runner-up languages each record lists."""


class LanguageIdentifier(Processor):
    """Texts → their language (an ISO 639 code), with probabilities."""

    name = "langid"
    version = "1.0.0"
    inputs = ("texts",)
    output = "languages"
    output_schema = files(__package__) / "language.avsc"

    def __init__(self) -> None:
        from py3langid.langid import MODEL_FILE
        from py3langid.langid import LanguageIdentifier as Model

        self.model = Model.from_model_file(MODEL_FILE, norm_probs=True)

    def process_batch(self, records: Sequence[Record]) -> list[Outcome]:
        """One ``Language`` record per text; a blank text fails alone (``ModelInputError``)."""
        out: list[Outcome] = []
        for record in records:
            text = (record.get("text") or "").strip()
            if not text:
                out.append(ModelInputError(f"text {record.get('doc_id')!r} is empty: no language to identify"))
                continue
            ranked = self.model.rank(text)[:ALTERNATIVES + 1]
            (best, p), rest = ranked[0], ranked[1:]
            out.append([{**self.meta(record), "language": best, "confidence": float(p),
                         "alternatives": [{"language": lang, "confidence": float(q)} for lang, q in rest]}])
        return out
