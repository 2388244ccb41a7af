"""The pipeline definition and what is derived from it: topics, groups, process groups, the
accounting main path, names; and the plugin contract's checks."""
from __future__ import annotations

import pytest

from conveyor.processors.base import Processor
from conveyor.streams.config.settings import Settings
from conveyor.streams.kafka.topics import WRITE_TIME, catalogue
from conveyor.streams.topology.pipeline import (
    BUILTIN_STAGES,
    SOURCES,
    Output,
    Pipeline,
    StageSpec,
    UnknownStageError,
    builtin_pipeline,
    process_groups,
)
from conveyor.streams.topology.plugins import PluginError, stage_of


def test_the_catalogue_is_derived_from_the_stages():
    specs = catalogue(Settings(namespace="ns"), builtin_pipeline())
    stages = [s.name for s in BUILTIN_STAGES]
    assert stages == ["extract", "embed", "index", "classify", "drift"]
    assert {f"dlq.{s}" for s in stages} <= set(specs)
    assert {f"retry.{s}" for s in stages if s != "drift"} <= set(specs) and "retry.drift" not in specs
    assert [r for r in specs if specs[r].schema is not None] == [
        "documents", "texts", "extracted", "embedded", "predictions", "drift", "feedback", "shadow-predictions"]
    assert specs["drift"].partitions == 1 and specs["embedded"].name == "ns.embedded"
    assert specs["documents"].config == () and specs["predictions"].config == WRITE_TIME
    assert ("cleanup.policy", "compact") in specs["drift-reference"].config


def test_main_path_and_process_groups():
    p = builtin_pipeline()
    assert p.main_path() == ("extract", "embed", "classify")
    assert process_groups(True, of=p) == [["extract"], ["embed"], ["index", "classify"], ["drift"]]
    assert process_groups(False, of=p, with_drift=False) == [["extract"], ["embed"], ["index"], ["classify"]]


def test_an_unknown_stage_names_the_available_ones():
    with pytest.raises(UnknownStageError, match=r"unknown processor 'translate'; available: extract, embed, index, "
                                                r"classify, drift$"):
        builtin_pipeline().stage("translate")


def test_a_new_stage_brings_its_own_topics_and_joins_the_main_path(tmp_path):
    schema = tmp_path / "translation.avsc"
    schema.write_text('{"type": "record", "name": "T", "fields": [{"name": "doc_id", "type": "string"}]}')
    translate = StageSpec("translate", ("texts",), Output("translations", schema), processor=lambda ctx: None)
    p = Pipeline(SOURCES, BUILTIN_STAGES + (translate,))
    specs = catalogue(Settings(namespace="ns"), p)
    assert {"translations", "retry.translate", "dlq.translate"} <= set(specs)
    assert specs["translations"].schema_path.read_text().startswith('{"type": "record"')
    assert p.main_path() == ("extract", "embed", "classify")  # a side branch: its dead letters are no result
    assert ["translate"] in process_groups(True, of=p)


class _Good(Processor):
    """Shouts."""

    name, version, inputs, output = "shout", "1.0", ("texts",), None


def test_the_plugin_contract_is_checked():
    spec = stage_of(_Good, "shout-plugin")
    assert (spec.name, spec.inputs, spec.output, spec.plugin, spec.description) == (
        "shout", ("texts",), None, "shout-plugin", "Shouts.")
    for bad in (type("NoName", (_Good,), {"name": "Bad Name"}), type("NoInputs", (_Good,), {"inputs": ()}),
                type("NoSchema", (_Good,), {"output": "loud", "output_schema": None}), object):
        with pytest.raises(PluginError):
            stage_of(bad)
