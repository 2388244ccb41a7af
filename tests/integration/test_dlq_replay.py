"""`conveyor dlq list | show | replay` against the real broker and registry: fix the cause,
replay, get exactly one result per replayed input — also when the replay is run twice."""
from __future__ import annotations

import json

from click.testing import CliRunner

from conveyor.dlq import replay as replay_mod
from conveyor.processors.base import Processor
from conveyor.streams.cli.main import main
from conveyor.streams.kafka.admin import create_topics
from conveyor.streams.kafka.io import InputProducer
from conveyor.streams.kafka.topics import topic
from conveyor.streams.runtime.runner import Runner, Stage
from tests.integration.helpers import cli_env, read_all


class FragileLabeller(Processor):
    """Fails permanently on texts containing 'boom' until ``fixed`` is set (the "bug fix")."""

    name = "classify"
    version = "2.0.0"

    def __init__(self, fixed: bool):
        self.fixed = fixed

    def process_one(self, record):
        if "boom" in record["text"] and not self.fixed:
            raise ValueError(f"cannot classify {record['doc_id']}: boom")
        return [{**self.meta(record), "kind": "text", "filename": None, "label": "ok", "confidence": 1.0,
                 "top_labels": [], "model_name": "rule", "model_version": "1", "model_sha256": "-",
                 "routing": "auto", "reasons": [], "duplicates": [], "fields": None}]


def _run(settings, fixed: bool) -> Runner:
    runner = Runner(settings, Stage(FragileLabeller(fixed), ("texts",), "predictions"), batch_size=10)
    runner.run(max_idle_seconds=3.0)
    return runner


def _json_lines(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def test_list_show_replay_after_the_fix_yields_exactly_one_result(settings):
    create_topics(settings)
    with InputProducer(settings) as p:
        good = [p.text(f"fine {i}")["doc_id"] for i in range(3)]
        bad = [p.text(f"boom {i}")["doc_id"] for i in range(2)]
    assert _run(settings, fixed=False).dead_lettered == 2
    cli, e = CliRunner(), cli_env(settings)

    listed = _json_lines(cli.invoke(main, ["dlq", "list", "--error-class", "permanent"], env=e).output)
    assert sorted(r["key"] for r in listed) == sorted(bad)
    assert all(r["error"]["exception.class"] == "builtins.ValueError" and r["error"]["attempt"] == "1"
               for r in listed)
    # Filters: doc id, exception substring, processor, origin topic, time range.
    assert [r["key"] for r in _json_lines(cli.invoke(main, ["dlq", "list", "--doc-id", bad[0]], env=e).output)] == [bad[0]]
    assert _json_lines(cli.invoke(main, ["dlq", "list", "--exception", "KeyError"], env=e).output) == []
    assert _json_lines(cli.invoke(main, ["dlq", "list", "--processor", "embed"], env=e).output) == []
    assert len(_json_lines(cli.invoke(main, ["dlq", "list", "--topic", "texts"], env=e).output)) == 2
    assert _json_lines(cli.invoke(main, ["dlq", "list", "--until", "2000-01-01T00:00:00"], env=e).output) == []
    table = cli.invoke(main, ["dlq", "list", "--format", "table"], env=e).output
    assert table.splitlines()[0].split()[:3] == ["ref", "key", "processor"] and bad[1] in table

    shown = _json_lines(cli.invoke(main, ["dlq", "show", "--doc-id", bad[1]], env=e).output)
    assert shown[0]["payload"]["text"] == "boom 1" and "Traceback" in shown[0]["error"]["stacktrace"]

    texts_before = len(read_all(settings, topic(settings, "texts"), expect=5))
    dry = _json_lines(cli.invoke(main, ["dlq", "replay", "--dry-run"], env=e).output)
    assert dry[-1]["replayed"] == 2 and dry[-1]["dry_run"] is True
    assert len(read_all(settings, topic(settings, "texts"), expect=texts_before, timeout=5)) == texts_before

    # The cause is fixed: replay, process, and the replayed inputs get exactly one result each.
    res = cli.invoke(main, ["dlq", "replay", "--rate", "20"], env={**e, "CONVEYOR_PRINCIPAL": "User:ops-alice"})
    assert res.exit_code == 0, res.output
    assert _json_lines(res.output)[-1]["replayed"] == 2
    replayed = [m for m in read_all(settings, topic(settings, "texts"), expect=7)
                if any(k == replay_mod.REPLAY_OF for k, _ in m.headers() or [])]
    assert sorted(m.key().decode() for m in replayed) == sorted(bad)
    # audit: who replayed, on each replayed record and in the replay ledger
    assert all(dict(m.headers())[replay_mod.REPLAY_BY] == b"User:ops-alice" for m in replayed)
    ledger = [json.loads(m.value()) for m in read_all(settings, topic(settings, "dlq.replays"), expect=2)]
    assert [entry["replayed_by"] for entry in ledger] == ["User:ops-alice"] * 2
    _run(settings, fixed=True)

    # Running the same replay again replays nothing new.
    again = _json_lines(cli.invoke(main, ["dlq", "replay"], env=e).output)
    assert again[-1]["replayed"] == 0 and again[-1]["skipped_already_replayed"] == 2
    _run(settings, fixed=True)
    preds = read_all(settings, topic(settings, "predictions"), expect=5)
    assert sorted(m.key().decode() for m in preds) == sorted(good + bad)  # one each, no duplicates


def test_replay_to_another_topic_and_unknown_target(settings):
    create_topics(settings)
    with InputProducer(settings) as p:
        [bad] = [p.text("boom")["doc_id"]]
    _run(settings, fixed=False)
    cli, e = CliRunner(), cli_env(settings)
    res = cli.invoke(main, ["dlq", "replay", "--to", "no.such.topic"], env=e)
    assert res.exit_code != 0 and "does not exist" in res.output
    res = cli.invoke(main, ["dlq", "replay", "--to", "embedded", "--quiet"], env=e)
    assert _json_lines(res.output) == [{**_json_lines(res.output)[0], "replayed": 1}]
    [moved] = read_all(settings, topic(settings, "embedded"), expect=1)
    assert moved.key().decode() == bad
