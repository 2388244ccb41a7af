"""Known invoice issuers from invoice2data templates (invoice-x/invoice2data, MIT).

An invoice2data template names an ``issuer`` and the ``keywords`` (regular
expressions) that all occur on that issuer's invoices, optionally with
``exclude_keywords`` that must not; invoice2data picks the template whose keywords
all match (``invoice2data.extract.invoice_template.InvoiceTemplate.matches_input``).
This module applies the same rule to name the issuer of an invoice from a folder of
such templates (YAML or JSON). It only knows the issuers someone wrote a template
for; unknown issuers fall back to the generic rules of :mod:`.parties`.
"""
from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["IssuerTemplate", "load_issuer_templates", "match_issuer"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IssuerTemplate:
    """One template: the issuer's name, the patterns that must all occur, the ones that must not."""

    issuer: str
    keywords: tuple[re.Pattern[str], ...]
    exclude: tuple[re.Pattern[str], ...]
    source: str


def _as_list(value: object) -> list[str]:
    if value is None:
        return []
    return [str(v) for v in (value if isinstance(value, list) else [value])]


def load_issuer_templates(folder: str | Path) -> list[IssuerTemplate]:
    """Templates from every ``*.yml``/``*.yaml``/``*.json`` file under ``folder``.

    Files without an ``issuer`` or ``keywords``, or with a pattern that does not
    compile, are skipped (logged). Returns them sorted by file path.

    Raises:
        FileNotFoundError: ``folder`` does not exist.
    """
    import yaml

    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"issuer template folder {folder} not found")
    out = []
    for path in sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".yml", ".yaml", ".json")):
        try:
            text = path.read_text(encoding="utf-8")
            docs = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
            for doc in docs if isinstance(docs, list) else [docs]:
                if not isinstance(doc, dict) or not doc.get("issuer") or not doc.get("keywords"):
                    continue
                out.append(IssuerTemplate(
                    issuer=str(doc["issuer"]),
                    keywords=tuple(re.compile(k) for k in _as_list(doc.get("keywords"))),
                    exclude=tuple(re.compile(k) for k in _as_list(doc.get("exclude_keywords"))),
                    source=str(path.relative_to(folder)),
                ))
        except (OSError, ValueError, re.error, yaml.YAMLError) as exc:
            log.warning("skipping issuer template %s: %s", path, exc)
    return out


def match_issuer(text: str, templates: Iterable[IssuerTemplate]) -> str | None:
    """The issuer of the first template whose keywords all occur in ``text`` and whose
    exclude keywords do not (invoice2data's rule); ``None`` when none matches."""
    for template in templates:
        if all(k.search(text) for k in template.keywords) and not any(k.search(text) for k in template.exclude):
            return template.issuer
    return None
