"""FUNSD scanned forms: ``Doc-LD/funsd-bench``, ``training_data/`` only (149 forms).

Every FUNSD document is a form (noisy scans of business forms from RVL-CDIP's *form* class,
Jaume et al. 2019), so each is labelled ``form``; its entity annotations
(``annotations/*.json``: header / question / answer / other) are kept in the manifest but no key
field is derived from them. Research use only: read, never committed or shipped.
"""
from __future__ import annotations

import json
from collections.abc import Iterator

from conveyor.tools.datasets.base import DatasetSource, Item
from conveyor.tools.datasets.clones import Clone, labelled_files

SPLIT = "training_data"


def items(clone: Clone) -> Iterator[Item]:
    """Every training form image (PNG) that has its annotation file."""
    for path, data, ann, raw in labelled_files(clone, SPLIT, "images", ".png", "annotations"):
        entities = json.loads(raw.decode("utf-8", errors="replace")).get("form", [])
        counts: dict[str, int] = {}
        for entity in entities:
            counts[entity.get("label", "?")] = counts.get(entity.get("label", "?"), 0) + 1
        yield Item(path=path, data=data, doc_type="form",
                   type_rule="FUNSD: scanned business forms (RVL-CDIP 'form' class)", truth={},
                   label_source=ann, group=f"funsd:{path}", raw={"entities": counts})


SOURCE = DatasetSource(
    name="funsd", repo="Doc-LD/funsd-bench", split=SPLIT,
    licence="repository MIT; FUNSD data for non-commercial research use: read, never committed",
    items=items,
)
