"""Each stage's ACLs follow from the pipeline definition and grant nothing beyond it."""
from __future__ import annotations

import pytest

from conveyor.streams.config.settings import Settings
from conveyor.streams.ops.acls import Grant, denial, pipeline_grants, stage_grants
from conveyor.streams.topology.pipeline import builtin_pipeline

S = Settings(namespace="ns")


def _ops(grants, kind, name):
    return next(g.operations for g in grants if (g.resource_type, g.name) == (kind, name))


def test_embed_reads_its_inputs_and_writes_its_outputs_only():
    grants = stage_grants(S, builtin_pipeline().stage("embed"))
    assert all(g.principal == "User:ns-embed" for g in grants)
    assert _ops(grants, "topic", "ns.texts") == ("Read", "Describe")
    assert _ops(grants, "topic", "ns.extracted") == ("Read", "Describe")
    assert _ops(grants, "topic", "ns.embedded") == ("Write", "Describe")
    assert _ops(grants, "topic", "ns.dlq.embed") == ("Write", "Describe")
    assert _ops(grants, "topic", "ns.retry.embed") == ("Read", "Write", "Describe")
    assert _ops(grants, "group", "ns.embed") == ("Read",)
    tid = next(g for g in grants if g.resource_type == "transactionalId")
    assert (tid.name, tid.pattern_type, tid.operations) == ("ns.embed.", "prefix", ("Write", "Describe"))
    assert {g.name for g in grants if g.resource_type == "topic"} == {
        "ns.texts", "ns.extracted", "ns.embedded", "ns.dlq.embed", "ns.retry.embed"}


def test_no_stage_may_write_another_stages_output_or_create_topics():
    every = pipeline_grants(S, builtin_pipeline())
    for stage, grants in every.items():
        spec = builtin_pipeline().stage(stage)
        for g in grants:
            if "Write" in g.operations and g.resource_type == "topic":
                assert g.name in {f"ns.{spec.output.role}" if spec.output else None, f"ns.dlq.{stage}",
                                  f"ns.retry.{stage}", *(f"ns.{e.role}" for e in spec.extra_topics)}
            assert "Create" not in g.operations and g.pattern_type == "literal" or g.name.startswith(f"ns.{stage}")
    assert _ops(every["index"], "topic", "ns.embedded") == ("Read", "Describe")
    assert _ops(every["drift"], "topic", "ns.drift-") == ("All",)  # faust's own internal topics


def test_strimzi_entries_and_bad_grants():
    g = Grant("User:ns-embed", "transactionalId", "ns.embed.", ("Write", "Describe"), "prefix")
    assert g.strimzi() == {"resource": {"type": "transactionalId", "name": "ns.embed.", "patternType": "prefix"},
                           "operations": ["Write", "Describe"]}
    with pytest.raises(ValueError):
        Grant("User:x", "cluster", "kafka-cluster", ("Alter",))


def test_denial_names_the_missing_acl():
    line = denial(S, "embed", 29, "ns.embedded")
    assert line.startswith("User:ns-embed may not Write on topic ns.embedded (TOPIC_AUTHORIZATION_FAILED)")
    assert denial(S, "embed", 7, "ns.embedded") is None


def test_the_cli_prints_one_line_per_grant():
    import json
    import os
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "conveyor.streams.cli.main", "acls", "--stage", "embed"],
                         env={**os.environ, "CONVEYOR_NAMESPACE": "ns"}, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(rows) == len(stage_grants(S, builtin_pipeline().stage("embed")))
    assert {r["principal"] for r in rows} == {"User:ns-embed"}
