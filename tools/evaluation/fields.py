"""Evaluation section ``fields``: field-level confidence and abstention, per source.

Measured live (:func:`conveyor.tools.training.field_confidence.measure`): for each source, the
fields its leave-one-source-out confidence table would emit (test-only sources: the table built
from the shippable sources, as shipped), with the precision of the emitted values (aim >= 0.97
per field and source) and the coverage (emitted / labelled) beside it. A further row says whether
the shipped ``confidence.json`` matches what the corpus measures now (``make models`` rewrites it).
"""
from __future__ import annotations

from conveyor.tools.evaluation.report import EvalContext, Row, SectionResult


def fields_section(ctx: EvalContext) -> SectionResult:
    """Rows ``<field> precision, source <s>`` (aim >= 0.97, None when nothing is emitted) and
    ``<field> coverage, source <s>``; plus ``shipped table current`` (1 or 0).

    Raises:
        SkipSection: the corpus is absent.
    """
    from conveyor.processors.extract.fields.confidence import THRESHOLD, load_table
    from conveyor.tools.training.field_confidence import measure

    shipped, per_source = measure(ctx.require_corpus())
    rows = []
    for source, res in per_source.items():
        kind = "shippable, left out" if res["shippable"] else "test only, shipped table"
        for field, r in res["fields"].items():
            if not r["labelled"] and not r["emitted"]:
                continue  # the source never prints the field and nothing was emitted: nothing to report
            note = (f"{r['right']}/{r['emitted']} right; {kind}; every value read, no abstention: "
                    f"{r['accuracy_without_abstention']}")
            rows.append(Row("fields", f"{field} precision, source {source}", r["precision"], (">=", THRESHOLD), note))
            rows.append(Row("fields", f"{field} coverage, source {source}", r["coverage"], None,
                            f"{r['emitted']} emitted; {r['labelled']} documents print the field"
                            + (f", {r['not_printed']} do not" if r.get("not_printed") else "")))
    current = load_table().get("fields") == shipped
    rows.append(Row("fields", "shipped confidence table matches the corpus", int(current), (">=", 1),
                    "processors/extract/fields/confidence.json; make models rewrites it"))
    return SectionResult("fields", rows=rows, details={"table": shipped, "per_source": per_source})
