"""The CLI contract scripts rely on, against the real stack."""
from __future__ import annotations

import json

from click.testing import CliRunner

from conveyor.streams.cli.main import main
from conveyor.tools.demo.run import CORPUS
from tests.integration.helpers import cli_env


def _lines(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def test_topics_produce_and_consume(settings, tmp_path):
    runner = CliRunner()
    e = cli_env(settings)
    created = _lines(runner.invoke(main, ["topics", "create"], env=e, catch_exceptions=False).output)
    assert {r["topic"] for r in created} >= {f"{settings.namespace}.predictions", f"{settings.namespace}.documents"}
    listed = _lines(runner.invoke(main, ["topics", "list"], env=e).output)
    assert all(r["exists"] for r in listed)

    receipt = CORPUS / "receipts" / "aldi_02032020_19_02423.jpg"
    res = runner.invoke(main, ["produce", "documents", str(receipt), str(tmp_path / "missing.pdf")], env=e)
    lines = _lines(res.output)
    assert res.exit_code == 1  # the unreadable path is reported and fails the command
    assert lines[0]["path"] == str(receipt) and lines[0]["topic"] == f"{settings.namespace}.documents"
    assert lines[0]["doc_id"].startswith("doc-")
    assert "no such file" in lines[1]["error"]

    csv = tmp_path / "t.csv"
    csv.write_text("ticket,body\nT1,my card is lost\nT2,where is my refund\nT3,third\n")
    res = runner.invoke(main, ["produce", "texts", str(csv), "--text-column", "body", "--id-column", "ticket",
                               "--limit", "2"], env=e)
    assert res.exit_code == 0, res.output
    assert [r["doc_id"] for r in _lines(res.output)] == ["T1", "T2"]

    res = runner.invoke(main, ["consume", "texts", "--from-beginning", "--max-messages", "2", "--timeout", "20"], env=e)
    got = _lines(res.output)
    assert sorted(r["key"] for r in got) == ["T1", "T2"]
    assert {r["value"]["text"] for r in got} == {"my card is lost", "where is my refund"}
    docs = _lines(runner.invoke(main, ["consume", "documents", "--from-beginning", "--max-messages", "1",
                                       "--timeout", "20"], env=e).output)
    assert docs[0]["value"]["content"]["bytes"] == receipt.stat().st_size  # bytes abbreviated in JSON

    bad = runner.invoke(main, ["produce", "texts", str(csv), "--text-column", "nope"], env=e)
    assert bad.exit_code != 0 and "nope" in bad.output
