"""``make bench`` (``python -m conveyor.tools.bench``): one run, one report.

Side by side, on the same texts and machine: the raw libraries (:mod:`.raw`), each stage in
process (:mod:`.pipeline`), the text path's end-to-end capacity and its open-loop latency at
10/50/90 % of that capacity on the real stack with transactions on (:mod:`.openloop`), and the
mixed document + text run with peak RSS per process. JSON lines on stdout and in
``build/bench/bench.jsonl``; a chart in ``build/bench/bench.png``. Reports, never asserts: each
target of the performance issue is printed as a ``target`` line, met or missed by how much.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import tempfile
import time
from pathlib import Path

from conveyor.tools.bench import openloop, raw
from conveyor.tools.bench.pipeline import _docs, _peak_rss_mib, bench_end_to_end, bench_stages

OUT_DIR = Path("build") / "bench"
LOADS = (0.1, 0.5, 0.9)
"""Open-loop rates as fractions of the measured capacity."""


def _texts(n: int) -> list[str]:
    """``n`` BANKING77 texts: train.csv from ``../shared/corpus`` when present, else the demo's 200
    (cycled)."""
    from conveyor.streams.io import read_texts_csv
    from conveyor.tools.demo.run import CORPUS
    from conveyor.tools.training.common import DEFAULT_CORPUS

    shared = DEFAULT_CORPUS / "text_banking77" / "train.csv"
    source = shared if shared.is_file() else CORPUS / "texts" / "banking77_sample.csv"
    rows = [t for _, t in read_texts_csv(source, "text")]
    return [rows[i % len(rows)] for i in range(n)]


def _text_path(texts: list[str], seconds: float, emit) -> dict:
    """Capacity and open-loop latency of embed → index + classify on the real stack."""
    from conveyor.streams.admin import create_topics
    from conveyor.streams.settings import Settings
    from conveyor.streams.supervisor import Supervisor, process_groups
    from conveyor.tools.stack import up

    base = Settings.from_env()
    up(base, log=lambda m: None)
    out: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        settings = dataclasses.replace(base, namespace=time.strftime("benchtext%Y%m%d%H%M%S"),
                                       milvus_uri=str(Path(tmp) / "milvus.db"), blob_dir=Path(tmp) / "blobs")
        create_topics(settings)
        groups = [g for g in process_groups(settings, with_drift=False, builtin_only=True) if "extract" not in g]
        sup = Supervisor(settings, groups, log_dir=Path(tmp) / "logs")
        sup.start()
        try:
            openloop.open_loop(settings, texts[:20], rate=5, duration=4, drain=120)  # warm-up: models, groups
            cap = openloop.capacity(settings, texts)
            out["capacity"] = cap
            emit({"benchmark": "text_capacity", **cap})
            for load in LOADS:
                rate = round(max(1.0, load * (cap["texts_per_s"] or 1)), 1)
                res = openloop.open_loop(settings, texts, rate=rate, duration=seconds)
                res["load"] = load
                out.setdefault("open_loop", []).append(res)
                emit({"benchmark": "open_loop_latency", **res})
                sup.check()
            out["peak_rss_mib"] = {"-".join(c.group): _peak_rss_mib(c.proc.pid) for c in sup.children if c.proc}
        finally:
            sup.stop()
    return out


def _targets(raw_embed: dict, embed_same: dict, text: dict) -> list[dict]:
    """The performance issue's targets, met or not, by how much."""
    out = []
    raw_tps = raw_embed["texts_per_s"]
    cap = (text.get("capacity") or {}).get("texts_per_s")
    if cap:
        out.append({"target": "text capacity >= 0.8 x raw embedding", "value": round(cap / raw_tps, 3),
                    "aim": 0.8, "met": cap / raw_tps >= 0.8})
    if embed_same:
        ratio = embed_same["texts_per_s"] / raw_tps
        out.append({"target": "embed stage >= 0.95 x raw embedding", "value": round(ratio, 3), "aim": 0.95,
                    "met": ratio >= 0.95})
    for res in text.get("open_loop", []):
        if res["load"] <= 0.5 and res["latency_ms"]["p95"] is not None:
            p95, p99 = res["latency_ms"]["p95"], res["latency_ms"]["p99"]
            out.append({"target": f"text latency at {int(res['load'] * 100)} % of capacity: p95 <= 100 ms",
                        "value": p95, "aim": 100, "met": p95 <= 100})
            out.append({"target": f"text latency at {int(res['load'] * 100)} % of capacity: p99 <= 250 ms",
                        "value": p99, "aim": 250, "met": p99 <= 250})
    return out


def chart(report: list[dict], path: Path) -> None:
    """Latency against load, and throughput against the raw embedding, as one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    loops = [r for r in report if r.get("benchmark") == "open_loop_latency"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for q, style in (("p50", "o-"), ("p95", "s-"), ("p99", "^-")):
        left.plot([r["rate_per_s"] for r in loops], [r["latency_ms"][q] for r in loops], style, label=q)
    left.axhline(100, color="grey", ls="--", lw=0.8)
    left.set(xlabel="texts per second (open loop)", ylabel="produce → prediction (ms)",
             title="Text latency against load (exactly-once)")
    left.legend()
    bars = {}
    for r in report:
        if r.get("benchmark") == "raw_library" and "texts_per_s" in r:
            bars["raw embedding"] = r["texts_per_s"]
        if r.get("benchmark") == "stage_same_texts":
            bars["embed stage"] = r["texts_per_s"]
        if r.get("benchmark") == "text_capacity":
            bars["end to end"] = r["texts_per_s"]
        if r.get("benchmark") == "peer_embed_step":
            bars[r["framework"]] = r["texts_per_s"]
    right.bar(list(bars), list(bars.values()), color="#4c72b0")
    right.set(ylabel="texts per second", title="Throughput on the same texts")
    right.tick_params(axis="x", rotation=20)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> None:
    """Run everything; print and write the report and the chart."""
    ap = argparse.ArgumentParser(prog="python -m conveyor.tools.bench", description=__doc__)
    ap.add_argument("--texts", type=int, default=1000, help="texts for the raw and capacity runs")
    ap.add_argument("--seconds", type=float, default=30.0, help="duration of each open-loop run")
    ap.add_argument("--out", type=Path, default=OUT_DIR)
    ap.add_argument("--no-documents", action="store_true", help="skip the mixed document + text run")
    args = ap.parse_args(argv)
    from conveyor.streams.logs import configure

    configure("WARNING")  # the report on stdout; libraries (gRPC's GOAWAY lines among them) quiet
    report: list[dict] = []

    def emit(obj: dict) -> None:
        report.append(obj)
        print(json.dumps(obj), flush=True)

    emit({"benchmark": "environment", "date": time.strftime("%Y-%m-%d"), "python": platform.python_version(),
          "machine": platform.machine(), "cpus": os.cpu_count(), "processor": platform.processor() or None})
    texts = _texts(args.texts)
    raw_embed = raw.embedding(texts)
    emit({"benchmark": "raw_library", **raw_embed})
    embed_same = raw.embed_stage(texts)
    emit({"benchmark": "stage_same_texts", **embed_same})
    scans = [p for p in _docs() if p.suffix.lower() in (".jpg", ".png")]
    emit({"benchmark": "raw_library", **raw.ocr(scans)})
    emit({"benchmark": "raw_library", **raw.milvus_upsert()})
    stages = bench_stages(200)
    for r in stages:
        emit({"benchmark": "stage_throughput", **r})
    text = _text_path(texts, args.seconds, emit)
    emit({"benchmark": "text_path_peak_rss_mib", **text.get("peak_rss_mib", {})})
    if not args.no_documents:
        emit(bench_end_to_end(200, 1))
    for t in _targets(raw_embed, embed_same, text):
        emit({"benchmark": "target", **t})
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench.jsonl").write_text("".join(json.dumps(r) + "\n" for r in report))
    chart(report, args.out / "bench.png")
    print(json.dumps({"benchmark": "written", "jsonl": str(args.out / "bench.jsonl"),
                      "chart": str(args.out / "bench.png")}))


if __name__ == "__main__":
    main()
