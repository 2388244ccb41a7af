"""The wheel as a user gets it: built from this checkout, installed non-editable into a fresh
venv, run from a directory outside the checkout against the test stack — topics, embed,
index + classify, texts in, predictions out."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from tests.integration.helpers import cli_env

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """``bin/`` of a fresh venv holding the wheel of this checkout and its dependencies."""
    root = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(root), str(REPO)],
                   check=True, timeout=600)
    [wheel] = root.glob("conveyor-*.whl")
    venv.create(root / "venv", with_pip=True)
    bin_dir = root / "venv" / "bin"
    subprocess.run([str(bin_dir / "pip"), "install", "--quiet", str(wheel)], check=True, timeout=1800)
    return bin_dir


def _env(settings, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    return {**env, **cli_env(settings), "CONVEYOR_HOME": str(home), "CONVEYOR_MILVUS_URI": str(home / "milvus.db")}


def test_the_installed_wheel_runs_the_pipeline_outside_the_checkout(installed, settings, tmp_path):
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = _env(settings, tmp_path / "home")
    conveyor = str(installed / "conveyor")

    def run(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
        return subprocess.run([conveyor, *args], cwd=work, env=env, capture_output=True, text=True, timeout=timeout)

    where = subprocess.run([str(installed / "python"), "-c", "import conveyor.streams, conveyor.schemas as s, sys; "
                            "from importlib.resources import files; "
                            "print(conveyor.streams.__file__); print(files(s).joinpath('text.avsc').is_file()); "
                            "import conveyor.processors.models as m; "
                            "print(all(files(m).joinpath(n, f).is_file() for n in ('intent-banking77', 'doctype') "
                            "for f in ('model.onnx', 'manifest.json')))"],
                           cwd=work, env=env, capture_output=True, text=True, check=True)
    path, schemas, models = where.stdout.split()
    assert "site-packages/conveyor/streams" in path and not path.startswith(str(REPO))
    assert schemas == "True" and models == "True"  # package data: schemas, and models one folder down
    site = Path(path).parents[2]
    assert not any((site / name).exists() for name in ("streams", "processors", "sinks", "dlq"))  # one namespace
    assert run("stack", "--help").returncode == 0  # the tools (local stack, demo) are in the wheel too

    assert run("topics", "create").returncode == 0
    procs = [subprocess.Popen([conveyor, "run", *names], cwd=work, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True) for names in (["embed"], ["index", "classify"])]
    try:
        texts = work / "texts.csv"
        texts.write_text("id,text\nw-1,I lost my card yesterday\nw-2,How do I top up by bank transfer?\n"
                         "w-3,My card payment was declined at the shop\n")
        produced = run("produce", "texts", str(texts), "--text-column", "text", "--id-column", "id")
        assert produced.returncode == 0, produced.stderr
        consumed = run("consume", "predictions", "--from-beginning", "--max-messages", "3", "--timeout", "240",
                       timeout=400)
        preds = [json.loads(line) for line in consumed.stdout.splitlines() if line.startswith("{")]
        assert sorted(p["key"] for p in preds) == ["w-1", "w-2", "w-3"], consumed.stderr[-2000:]
        assert all(p["value"]["model_name"] == "intent-banking77" and p["value"]["label"] for p in preds)
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        errors = [p.communicate(timeout=90)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [e[-1500:] for e in errors]
