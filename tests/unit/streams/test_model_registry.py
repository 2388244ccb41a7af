"""The model registry serves the shipped model until a candidate is promoted; promotion and
rollback are recorded with who and when, and a candidate whose bytes do not match is refused."""
from __future__ import annotations

import hashlib
import json

import pytest

from conveyor.processors.models import MODELS_DIR
from conveyor.streams.ops.model_registry import SHIPPED, ModelRegistry, RegistryError


def _candidate(tmp_path, payload: bytes, decision: str):
    staging = tmp_path / f"staging-{payload.decode()}"
    staging.mkdir()
    (staging / "model.onnx").write_bytes(payload)
    (staging / "manifest.json").write_text(json.dumps({"sha256": hashlib.sha256(payload).hexdigest(), "version": "x"}))
    return staging, {"decision": decision, "reasons": [] if decision == "promoted" else ["does not beat"]}


def test_promote_and_roll_back_are_recorded(tmp_path, monkeypatch):
    monkeypatch.setenv("CONVEYOR_PRINCIPAL", "dana")
    reg = ModelRegistry(tmp_path / "models")
    shipped = json.loads((MODELS_DIR / "doctype" / "manifest.json").read_text())["sha256"]
    assert reg.live("doctype")["candidate"] == SHIPPED and reg.live_dir("doctype") == MODELS_DIR / "doctype"

    a = reg.add_candidate("doctype", *_candidate(tmp_path, b"a", "promoted"))
    b = reg.add_candidate("doctype", *_candidate(tmp_path, b"b", "rejected"))
    reg.promote("doctype", a.name)
    reg.promote("doctype", b.name[:6], by="erin", reason="by hand")
    assert reg.live_dir("doctype") == b
    assert reg.rollback("doctype")["candidate"] == a.name
    assert reg.rollback("doctype")["candidate"] == SHIPPED
    with pytest.raises(RegistryError, match="nothing to roll back to"):
        reg.rollback("doctype")
    events = [(e["event"], e["candidate"], e["by"]) for e in reg.history("doctype")]
    assert events == [("rejected", b.name, "dana"), ("promoted", a.name, "dana"), ("promoted", b.name, "erin"),
                      ("rolled_back", a.name, "dana"), ("rolled_back", SHIPPED, "dana")]
    assert reg.history("doctype")[1]["previous_sha256"] == shipped
    assert {c["candidate"]: c["decision"] for c in reg.candidates("doctype")} == {a.name: "promoted", b.name: "rejected"}


def test_a_candidate_that_does_not_match_its_manifest_is_not_promoted(tmp_path):
    reg = ModelRegistry(tmp_path / "models")
    folder = reg.add_candidate("doctype", *_candidate(tmp_path, b"a", "promoted"))
    (folder / "model.onnx").write_bytes(b"tampered")
    with pytest.raises(RegistryError, match="manifest says"):
        reg.promote("doctype", folder.name)
    with pytest.raises(RegistryError, match="no candidate 'zzz'"):
        reg.promote("doctype", "zzz")
    assert reg.live("doctype")["candidate"] == SHIPPED
