"""The same embed step (texts → embedded) on Conveyor, Quix Streams and Faust, side by side.

Each framework gets a fresh namespace on the running stack (its own ``<ns>.texts`` and
``<ns>.embedded``), runs the step of :mod:`.step` (same model, threads, serde and texts) in a
process of its own, and is measured the same way as the pipeline (:mod:`..openloop`): a warm-up,
a burst of texts (throughput up to the last embedded record) and an open loop at
:data:`PEER_RATE` texts/s (latency from produce to the embedded record visible to a
``read_committed`` consumer). Bench-only: Quix Streams 3.x pins ``confluent-kafka < 2.13`` while
Conveyor needs 2.16, so it runs from a venv of its own (:func:`quix_python`) that sees the
project's venv behind its own packages.
"""
from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Optional

from conveyor.streams.config.settings import Settings
from conveyor.tools.bench import openloop

QUIX_VERSION = "3.28.1"
"""quixstreams release the peer benchmark installs (the newest on PyPI on 2026-12-04)."""
PEER_RATE = 10.0
"""Open-loop rate (texts/s) of the peer comparison: the issue's 10 texts/s."""
FRAMEWORKS = ("conveyor", "quix-at-least-once", "quix-exactly-once", "faust")
"""Runs, in order; each one is ``framework[-guarantee]``."""


def quix_python(root: Path = Path("build") / "bench" / "quix-venv") -> Path:
    """The interpreter of a venv with ``quixstreams==QUIX_VERSION``, created on first use (PyPI).

    The venv's own packages (quixstreams and its confluent-kafka 2.12) come first; a ``.pth``
    adds this interpreter's site-packages (Conveyor, onnxruntime, …) after them.

    Raises:
        subprocess.CalledProcessError: the venv or the install failed.
    """
    python = root / "bin" / "python"
    marker = root / f".quixstreams-{QUIX_VERSION}"
    if not marker.exists():
        subprocess.run([sys.executable, "-m", "venv", str(root)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", f"quixstreams=={QUIX_VERSION}"], check=True)
        purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                 check=True, capture_output=True, text=True).stdout.strip()
        here = sysconfig.get_paths()["purelib"]
        Path(purelib, "zz-conveyor-venv.pth").write_text(f"import site; site.addsitedir({here!r})\n")
        marker.touch()
    return python


def _command(framework: str, settings: Settings, group: str) -> list[str]:
    if framework == "conveyor":
        return [sys.executable, "-m", "conveyor.streams.cli.main", "run", "embed"]
    if framework.startswith("quix-"):
        return [str(quix_python()), "-m", "conveyor.tools.bench.peers.quix_app", settings.namespace, group,
                framework.removeprefix("quix-")]
    if framework == "faust":
        return [sys.executable, "-m", "conveyor.tools.bench.peers.faust_app", settings.namespace, group]
    raise ValueError(f"unknown framework {framework!r}; one of {FRAMEWORKS}")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_one(framework: str, base: Settings, texts: Sequence[str], seconds: float, log_dir: Path) -> dict:
    """One framework's figures: ``texts_per_s`` for a burst of ``texts`` and open-loop latency
    percentiles (ms) at :data:`PEER_RATE` for ``seconds``.

    Raises:
        RuntimeError: the framework's process died (its log's tail in the message).
    """
    from conveyor.streams.kafka.admin import create_topics

    stamp = time.strftime("%H%M%S")
    settings = dataclasses.replace(base, namespace=f"benchpeer{framework.replace('-', '')}{stamp}")
    create_topics(settings)
    group = f"{settings.namespace}.embed"
    env = {**os.environ, "CONVEYOR_NAMESPACE": settings.namespace, "CONVEYOR_LOG_LEVEL": "WARNING"}
    log = log_dir / f"{framework}.log"
    with log.open("wb") as fh:
        proc = subprocess.Popen(_command(framework, settings, group), env=env, stdout=fh, stderr=subprocess.STDOUT)
    try:
        warm = openloop.open_loop(settings, texts[:20], rate=5, duration=4, drain=120, role="embedded")
        if warm["lost"] or proc.poll() is not None:
            raise RuntimeError(f"{framework} did not start: {log.read_text(errors='replace')[-2000:]}")
        burst = openloop.capacity(settings, texts, role="embedded")
        loop = openloop.open_loop(settings, texts, rate=PEER_RATE, duration=seconds, drain=60, role="embedded")
    finally:
        _stop(proc)
    return {"framework": framework, "texts": burst["texts"], "texts_per_s": burst["texts_per_s"],
            "rate_per_s": loop["rate_per_s"], "lost": loop["lost"], "latency_ms": loop["latency_ms"]}


def bench_peers(texts: Sequence[str], seconds: float, emit: Callable[[dict], None],
                frameworks: Sequence[str] = FRAMEWORKS, runs: int = 1,
                base: Optional[Settings] = None) -> list[dict]:
    """Every framework ``runs`` times on the running stack; each result is also ``emit``-ted as a
    ``peer_embed_step`` line. A framework that fails is reported with its ``error``."""
    base = base or Settings.from_env()
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for run in range(runs):
            for fw in frameworks:
                try:
                    res = {"run": run + 1, **run_one(fw, base, texts, seconds, Path(tmp))}
                except Exception as exc:  # noqa: BLE001 - reported, the other frameworks still run
                    res = {"run": run + 1, "framework": fw, "error": f"{type(exc).__name__}: {exc}"[:2000]}
                out.append(res)
                emit({"benchmark": "peer_embed_step", **res})
    return out


def main(argv: Optional[list[str]] = None) -> None:
    """``python -m conveyor.tools.bench.peers [--texts N] [--seconds S] [--runs R] [FRAMEWORK…]``."""
    import argparse
    import json

    ap = argparse.ArgumentParser(prog="python -m conveyor.tools.bench.peers", description=__doc__)
    ap.add_argument("frameworks", nargs="*", default=list(FRAMEWORKS))
    ap.add_argument("--texts", type=int, default=2000)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--runs", type=int, default=1)
    args = ap.parse_args(argv)
    from conveyor.streams.telemetry.logs import configure
    from conveyor.tools.bench.__main__ import _texts
    from conveyor.tools.stack import up

    configure("WARNING")
    up(Settings.from_env(), log=lambda m: None)
    bench_peers(_texts(args.texts), args.seconds, lambda r: print(json.dumps(r), flush=True),
                args.frameworks, args.runs)


if __name__ == "__main__":
    main()
