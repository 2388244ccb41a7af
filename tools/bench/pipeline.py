"""``make bench``: per-stage throughput and end-to-end latency on real inputs, as JSON lines.

A benchmark, not a test: it reports and never asserts. Stages are measured
in-process on the processors' real logic (real models, a real Milvus Lite
file); the end-to-end latency runs the whole pipeline on the real local stack
(started if needed) and measures, per input, the time from producing it to its
prediction (or dead letter) record.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from conveyor.tools.demo.run import CORPUS


def _emit(obj: dict) -> None:
    print(json.dumps(obj), flush=True)


def _docs() -> list[Path]:
    return sorted(p for p in CORPUS.rglob("*") if p.is_file() and p.suffix != ".csv" and "damaged" not in p.parts)


def _texts(n: int) -> list[str]:
    from conveyor.streams.kafka.io import read_texts_csv

    return [t for _, t in read_texts_csv(CORPUS / "texts" / "banking77_sample.csv", "text", None, n)]


def bench_stages(n_texts: int) -> list[dict]:
    """Throughput (records/s) of extract, embed, index and classify on the demo corpus."""

    from conveyor.processors.classify import ClassifyProcessor
    from conveyor.processors.embed import EmbedProcessor
    from conveyor.processors.extract import ExtractProcessor
    from conveyor.sinks.milvus import MilvusSink
    from conveyor.streams.config.settings import Settings
    from conveyor.streams.kafka.io import document_record, text_record
    from conveyor.streams.runtime.stages import SinkRows, duplicate_finder

    results = []
    settings = Settings.from_env()
    docs = [document_record(p.read_bytes(), p.name, settings) for p in _docs()]
    texts = [text_record(t) for t in _texts(n_texts)]

    extract = ExtractProcessor(blob_reader=None)
    extract.process_batch(docs[:1])  # warm-up: loads the OCR models
    t = time.perf_counter()
    extracted = [o[0] for o in extract.process_batch(docs) if not isinstance(o, BaseException)]
    dt = time.perf_counter() - t
    results.append({"stage": "extract", "records": len(docs), "seconds": round(dt, 3),
                    "records_per_s": round(len(docs) / dt, 3)})

    embed = EmbedProcessor()
    embed.process_batch(texts[:4])
    inputs = texts + extracted
    t = time.perf_counter()
    embedded = []
    for i in range(0, len(inputs), 32):
        embedded += [o[0] for o in embed.process_batch(inputs[i:i + 32]) if not isinstance(o, BaseException)]
    dt = time.perf_counter() - t
    results.append({"stage": "embed", "records": len(inputs), "chunks": sum(len(e["chunks"]) for e in embedded),
                    "seconds": round(dt, 3), "records_per_s": round(len(inputs) / dt, 2)})

    with tempfile.TemporaryDirectory() as tmp:
        sink = MilvusSink(uri=str(Path(tmp) / "bench.db"), collection="bench_chunks")
        index = SinkRows("index", sink)
        t = time.perf_counter()
        for i in range(0, len(embedded), 32):
            rows = [r for o in index.process_batch(embedded[i:i + 32]) if not isinstance(o, BaseException) for r in o]
            sink.write(rows)
            sink.flush()
        dt = time.perf_counter() - t
        results.append({"stage": "index", "records": len(embedded), "rows": sink.count(), "seconds": round(dt, 3),
                        "records_per_s": round(len(embedded) / dt, 2), "milvus": "lite"})

        classify = ClassifyProcessor(find_duplicates=duplicate_finder(sink, settings.duplicate_threshold))
        classify.process_batch(embedded[:2])
        t = time.perf_counter()
        n = 0
        for i in range(0, len(embedded), 32):
            n += sum(not isinstance(o, BaseException) for o in classify.process_batch(embedded[i:i + 32]))
        dt = time.perf_counter() - t
        results.append({"stage": "classify", "records": n, "seconds": round(dt, 3),
                        "records_per_s": round(n / dt, 2), "duplicate_search": "milvus-lite"})
        sink.close()
    return results


def bench_end_to_end(n_texts: int, repeat_docs: int) -> dict:
    """Latency distribution (ms) from produce to result over the real stack and all processors."""
    from conveyor.streams.config.settings import Settings
    from conveyor.streams.kafka.admin import create_topics
    from conveyor.streams.kafka.io import InputProducer
    from conveyor.streams.runtime.supervisor import Supervisor, process_groups
    from conveyor.tools.accounting import collect
    from conveyor.tools.stack import up

    base = Settings.from_env()
    up(base, log=lambda m: None)
    with tempfile.TemporaryDirectory() as tmp:
        settings = dataclasses.replace(base, namespace=time.strftime("bench%Y%m%d%H%M%S"),
                                       milvus_uri=str(Path(tmp) / "milvus.db"), blob_dir=Path(tmp) / "blobs")
        create_topics(settings)
        sup = Supervisor(settings, process_groups(settings, with_drift=False, builtin_only=True), log_dir=Path(tmp) / "logs")
        sup.start()
        time.sleep(15)  # let the processors load their models and join their groups
        sent: dict[str, float] = {}
        kinds: dict[str, str] = {}
        t0 = time.time()
        try:
            with InputProducer(settings) as p:
                for _ in range(repeat_docs):
                    for path in _docs():
                        i = p.document(path)["doc_id"]
                        sent[i], kinds[i] = time.time(), "document"
                for text in _texts(n_texts):
                    i = p.text(text)["doc_id"]
                    sent[i], kinds[i] = time.time(), "text"
            ledger = collect(settings, set(sent), timeout=1200, settle=1)
            peak_rss = {"-".join(c.group): _peak_rss_mib(c.proc.pid) for c in sup.children if c.proc}
        finally:
            sup.stop()
    lat: dict[str, list[float]] = {"document": [], "text": []}
    for i, recs in ledger.predictions.items():
        lat[kinds[i]].append(recs[0]["event_time"] - sent[i] * 1000)
    wall = max((r[0]["event_time"] for r in ledger.predictions.values()), default=t0 * 1000) / 1000 - t0
    out = {"benchmark": "end_to_end", "inputs": len(sent), "results": len(ledger.accounted),
           "wall_seconds": round(wall, 2), "inputs_per_s": round(len(ledger.accounted) / wall, 2) if wall else None,
           "peak_rss_mib": peak_rss}
    for kind, values in lat.items():
        if values:
            a = np.array(values)
            out[f"{kind}_latency_ms"] = {"n": len(values), "p50": round(float(np.percentile(a, 50)), 1),
                                         "p95": round(float(np.percentile(a, 95)), 1),
                                         "p99": round(float(np.percentile(a, 99)), 1)}
    return out


def _peak_rss_mib(pid: int) -> float | None:
    """Peak resident set size of a live process (``VmHWM`` in ``/proc/<pid>/status``), MiB."""
    from conveyor.tools.bench.cpu import status_mib

    return status_mib(pid, "VmHWM")


def main(argv=None) -> None:
    """Print one JSON line per stage, then one for the end-to-end run."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--texts", type=int, default=200)
    ap.add_argument("--repeat-docs", type=int, default=1)
    ap.add_argument("--no-e2e", action="store_true", help="skip the end-to-end run on the real stack")
    args = ap.parse_args(argv)
    _emit({"benchmark": "environment", "python": platform.python_version(), "machine": platform.machine(),
           "cpus": __import__("os").cpu_count()})
    for r in bench_stages(args.texts):
        _emit({"benchmark": "stage_throughput", **r})
    if not args.no_e2e:
        _emit(bench_end_to_end(args.texts, args.repeat_docs))


if __name__ == "__main__":
    main()
