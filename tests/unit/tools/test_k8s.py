"""``k8s/``: in sync with the pipeline definition and the topic catalogue, and valid against the
official schemas — checked by a validator that rejects a misspelled field and a wrong type.

The validation tests need kustomize (``make kustomize`` builds it into ``build/bin``) and, the
first time, the schemas from the Go module proxy and Maven Central (:mod:`conveyor.tools.k8s.schemas`).
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import yaml

from conveyor.streams.config.settings import Settings
from conveyor.streams.kafka.topics import catalogue
from conveyor.streams.topology.pipeline import builtin_pipeline
from conveyor.tools.k8s import K8S_DIR, rendered_files
from conveyor.tools.k8s.manifests import TOPIC_PREFIX

REPO = Path(__file__).resolve().parents[3]


def _load(rel: str) -> list[dict]:
    return [o for o in yaml.safe_load_all((K8S_DIR / "base" / rel).read_text()) if o]


def test_the_committed_base_is_what_the_pipeline_definition_generates():
    for rel, text in rendered_files(K8S_DIR / "base").items():
        assert (K8S_DIR / "base" / rel).read_text() == text, f"k8s/base/{rel} is stale: run `make k8s`"


def test_one_deployment_per_stage_and_scaled_objects_for_the_runner_stages():
    stages = builtin_pipeline().stages
    deployments = {d["metadata"]["name"]: d for d in _load("deployments.yaml")}
    assert set(deployments) == {f"conveyor-{s.name}" for s in stages}
    for s in stages:
        pod = deployments[f"conveyor-{s.name}"]["spec"]["template"]["spec"]
        container = pod["containers"][0]
        assert container["args"] == ["run", s.name]
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
        assert {p["httpGet"]["path"] for p in (container["livenessProbe"], container["readinessProbe"])} == {
            "/healthz", "/readyz"}
        longest_batch_s = (s.max_poll_interval_ms or 300_000) / 1000
        assert pod["terminationGracePeriodSeconds"] > longest_batch_s
    scaled = {o["metadata"]["name"]: o for o in _load("scaledobjects.yaml")}
    assert set(scaled) == {f"conveyor-{s.name}" for s in stages if s.engine == "runner"}
    trigger = scaled["conveyor-embed"]["spec"]["triggers"][0]["metadata"]
    assert trigger["consumerGroup"] == f"{TOPIC_PREFIX}.embed"
    assert int(trigger["activationLagThreshold"]) >= 3 + 3 + 3  # texts, extracted, retry.embed: one marker each
    assert scaled["conveyor-embed"]["spec"]["maxReplicaCount"] == 3


def test_kafka_topics_match_the_catalogue():
    topics = {t["spec"]["topicName"]: t["spec"] for t in _load("kafkatopics.yaml")}
    specs = catalogue(Settings(namespace=TOPIC_PREFIX), builtin_pipeline())
    assert set(topics) == {s.name for s in specs.values()}
    for s in specs.values():
        assert topics[s.name]["partitions"] == s.partitions
        assert {k: str(v) for k, v in topics[s.name]["config"].items() if k in dict(s.config)} == dict(s.config)


def _kustomize() -> str:
    found = os.environ.get("CONVEYOR_KUSTOMIZE") or shutil.which("kustomize") or str(REPO / "build/bin/kustomize")
    if not Path(found).exists() and shutil.which(found) is None:
        pytest.skip("kustomize not found (make kustomize)")
    return found


@pytest.fixture(scope="module")
def validator():
    from conveyor.tools.k8s.schemas import fetch
    from conveyor.tools.k8s.validate import Validator

    return Validator(fetch())


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_every_rendered_object_is_valid(overlay, validator):
    from conveyor.tools.k8s.validate import render, validate_all

    objects = render(K8S_DIR / "overlays" / overlay, _kustomize())
    assert {"Deployment", "ScaledObject", "KafkaTopic", "PodMonitor", "PodDisruptionBudget"} <= {
        o["kind"] for o in objects}
    assert [str(p) for p in validate_all(objects, validator)] == []


def test_a_misspelled_field_and_a_wrong_type_are_rejected(validator):
    from conveyor.tools.k8s.validate import mutated, render

    objects = {(o["kind"], o["metadata"]["name"]): o for o in render(K8S_DIR / "overlays" / "dev", _kustomize())}
    deployment, scaled = objects[("Deployment", "conveyor-embed")], objects[("ScaledObject", "conveyor-embed")]
    topic = objects[("KafkaTopic", "conveyor.embedded")]
    for obj, path, value, why in [
        (deployment, ["spec", "template", "spec", "containers", "0", "imagePullPolcy"], "Always",
         "'imagePullPolcy' was unexpected"),
        (deployment, ["spec", "replicas"], "two", "'two' is not of type 'integer'"),
        (scaled, ["spec", "maxReplicaCont"], 3, "'maxReplicaCont' was unexpected"),
        (scaled, ["spec", "maxReplicaCount"], "3", "'3' is not of type 'integer'"),
        (topic, ["spec", "partitons"], 3, "'partitons' was unexpected"),
        (topic, ["spec", "partitions"], "3", "'3' is not of type 'integer'"),
    ]:
        problems = validator.problems(mutated(obj, path, value))
        assert any(why in p.message for p in problems), (path, problems)
    assert validator.problems({"apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"name": "g"}})
