"""Models learn from reviewers only when they get better: 30 Malaysian receipts (SROIE) go through the
pipeline of a team that reviews everything at first (``CONVEYOR_AUTO_THRESHOLD`` above 1: receipts,
which the shipped model may auto-route, go to review too), a reviewer labels them in the review app,
and the gated retrain keeps a careless reviewer's labels out (rejected) and promotes the right
ones; promotion and rollback are recorded."""
from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from conveyor.streams.cli.main import main
from conveyor.streams.kafka.topics import topic
from conveyor.streams.ops.model_registry import SHIPPED, ModelRegistry
from conveyor.tools.training.retrain import feedback_examples, retrain
from tests.integration.helpers import cli_env, read_all
from tests.integration.review_stack import review_app, run_pipeline

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def reviewed_receipts(stack_settings, corpus_dir, tmp_path_factory):
    """The SROIE receipts through the pipeline, each decided 'receipt' by alice in the app."""
    reviewed = run_pipeline(stack_settings, tmp_path_factory.mktemp("retrain"),
                            sorted((corpus_dir / "sroie" / "img").glob("*.jpg")), texts=(), auto_threshold=1.01)
    s = reviewed.settings
    assert len(reviewed.predictions) == 30
    with review_app(s) as url, httpx.Client(base_url=url, auth=("alice", "alice-pw"), timeout=60) as c:
        for item in c.get("/api/queue").json()["items"]:
            form = {"action": "accept", "version": item["version"]} if item["label"] == "receipt" else \
                {"action": "correct", "version": item["version"], "label": "receipt"}
            assert c.post(f"/items/{item['doc_id']}/decision", data=form).status_code == 201
    return s


def test_a_careless_candidate_is_rejected_a_better_one_shadowed_promoted_and_rolled_back(reviewed_receipts, tmp_path):
    s = reviewed_receipts
    registry = ModelRegistry.of(s)
    examples, skipped = feedback_examples(s)
    assert len(examples) == 30 and {e["label"] for e in examples} == {"receipt"} and not any(skipped.values())

    # The team's own model of the corpus's types: retrained without the datasets (as in CI), it cannot
    # name contracts, credit notes or purchase orders, so the gate refuses it; the team promotes it by hand.
    corpus_only = tmp_path / "no-datasets"
    baseline = retrain(s, feedback=[], datasets=corpus_only, promote=False)
    assert baseline["decision"] == "rejected" and any(r.startswith("cannot name") for r in baseline["reasons"])
    registry.promote("doctype", baseline["candidate"], by="carol", reason="the corpus's types")

    careless = [{**e, "label": "invoice"} for e in examples]  # 'TAX INVOICE' on top of every receipt
    rejected = retrain(s, feedback=careless, datasets=corpus_only)
    rows = {r["source"]: r for r in rejected["held_out"]["per_source"]}
    assert rejected["decision"] == "rejected", rejected
    assert any(reason.startswith("worse on mindee") for reason in rejected["reasons"]), rejected["reasons"]
    assert rows["mindee"]["candidate_right"] < rows["mindee"]["live_right"]
    assert registry.live("doctype")["candidate"] == baseline["candidate"]

    promoted = retrain(s, promote=False, datasets=corpus_only)  # gated, then run in shadow, then promoted by hand
    out = Path(__file__).resolve().parents[2] / "build" / "retrain-reports.json"  # the figures in docs/review.md
    out.parent.mkdir(exist_ok=True)
    rows = {r["source"]: r for r in promoted["held_out"]["per_source"]}
    assert promoted["decision"] == "promoted", promoted
    # the live model already names these receipts; the reviewer's confirmations make it surer of them
    assert rows["feedback"]["candidate_right"] >= rows["feedback"]["live_right"]
    assert rows["feedback"]["candidate_log_loss"] < rows["feedback"]["live_log_loss"]
    assert promoted["held_out"]["candidate_mean_log_loss"] < promoted["held_out"]["live_mean_log_loss"]
    assert registry.live("doctype")["candidate"] == baseline["candidate"]

    env = {**cli_env(s), "CONVEYOR_HOME": str(s.home), "CONVEYOR_PRINCIPAL": "carol"}
    shadow = CliRunner().invoke(main, ["models", "shadow", "doctype", promoted["candidate"]], env=env)
    assert shadow.exit_code == 0, shadow.output
    shadow = json.loads(shadow.output.strip().splitlines()[-1])
    out.write_text(json.dumps({"rejected": rejected, "promoted": promoted, "shadow": shadow}, indent=2))
    assert (shadow["scored"], shadow["compared_with_live"]) == (30, 30)
    assert shadow["agreeing"] == rows["feedback"]["live_right"]  # the live model's misses are what changed
    assert sum(shadow["label_changes"].values()) == 30 - shadow["agreeing"]
    assert all(c.endswith("-> receipt") for c in shadow["label_changes"])  # only ever towards the reviewer's label
    assert shadow["live_review_rate"] == 1.0  # the team reviews everything (auto threshold above 1)
    assert len(read_all(s, topic(s, "shadow-predictions"), expect=30, timeout=30)) == 30

    done = CliRunner().invoke(main, ["models", "promote", "doctype", promoted["candidate"], "--reason", "shadow ok"],
                              env=env)
    assert done.exit_code == 0, done.output
    live = registry.live("doctype")
    assert (live["candidate"], live["sha256"], live["promoted_by"]) == (
        promoted["candidate"], promoted["candidate_sha256"], "carol")
    assert json.loads((registry.live_dir("doctype") / "manifest.json").read_text())["training_data"]["feedback"]
    report = json.loads((registry.live_dir("doctype") / "report.json").read_text())
    assert report["decision"] == "promoted" and report["candidate_metrics"]["cv_accuracy"] >= report["floors"]["cv_accuracy"]

    out = CliRunner().invoke(main, ["models", "rollback", "doctype"], env=env)
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["live"]["candidate"] == baseline["candidate"]  # the model before it
    out = CliRunner().invoke(main, ["models", "rollback", "doctype"], env=env)
    assert out.exit_code == 0 and json.loads(out.output)["live"]["candidate"] == SHIPPED
    again = CliRunner().invoke(main, ["models", "rollback", "doctype"], env=env)
    assert again.exit_code == 1 and "nothing to roll back to" in again.output
    events = [(e["event"], e["sha256"][:12], e["by"]) for e in registry.history("doctype")]
    assert [e[0] for e in events] == ["rejected", "promoted", "rejected", "promoted", "rolled_back", "rolled_back"]
    assert events[3] == ("promoted", promoted["candidate_sha256"][:12], "carol") and events[4][2] == "carol"


def test_the_reviewed_inputs_become_the_drift_reference(reviewed_receipts):
    s = reviewed_receipts
    out = CliRunner().invoke(main, ["drift", "reference", "pin", "--feedback", "doctype"], env=cli_env(s))
    assert out.exit_code == 0, out.output
    pinned = json.loads(out.output.strip().splitlines()[-1])
    assert (pinned["pinned"], pinned["inputs"]) == ("feedback", 30)
    signals = pinned["reference"]["signals"]
    labels = [sig for name, sig in signals.items() if "categories" in sig]
    assert [(sig["size"], sig["categories"]) for sig in labels] == [(30, 1)]  # the reviewers' one label: receipt
    assert all(sig["source"] == "set" for sig in signals.values()) and "--feedback doctype" in \
        pinned["reference"]["reason"]
