"""``make soak``: the whole pipeline for 20 minutes at half its text capacity; does memory grow?

Runs every built-in processor (drift included) on a fresh namespace of the local stack, produces
texts at a steady rate (open loop) plus one demo-corpus document every ``--document-every``
seconds, samples each process' resident set size every ``--sample-every`` seconds, and at the end
waits for every input's prediction. One JSON line per sample and a summary per process:
``rss_mib`` after the warm-up and at the end, its maximum, the least-squares slope (MiB per 10
minutes) after the warm-up and over the second half of the run (bounded state that fills early
shows as a falling slope), and ``grew`` = end RSS above the warm-up RSS by more than
:data:`GROWTH_ALLOWANCE_MIB` and :data:`GROWTH_ALLOWANCE_RATIO`. Also: inputs, predictions,
lost, text latency percentiles. Outside CI (20 minutes); reports, never asserts.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Optional

import numpy as np

GROWTH_ALLOWANCE_MIB = 25.0
GROWTH_ALLOWANCE_RATIO = 0.05
"""RSS may end up to max(25 MiB, 5 %) above its post-warm-up level before it counts as growth
(allocator arenas and caches settle in steps of a few MiB)."""
WARM_UP_S = 180.0
"""Samples before this point are the warm-up (models loaded, caches and Milvus segments filled)."""


def _summary(name: str, samples: list[tuple[float, float]]) -> dict:
    after = [(t, r) for t, r in samples if t >= WARM_UP_S] or samples
    t, r = np.array([s[0] for s in after]), np.array([s[1] for s in after])
    slope = float(np.polyfit(t, r, 1)[0]) * 600 if len(after) > 2 else None
    half = [(ts, rs) for ts, rs in samples if ts >= samples[-1][0] / 2]
    late = float(np.polyfit([h[0] for h in half], [h[1] for h in half], 1)[0]) * 600 if len(half) > 2 else None
    start, end = float(r[0]), float(np.mean(r[-3:]))
    allowance = max(GROWTH_ALLOWANCE_MIB, GROWTH_ALLOWANCE_RATIO * start)
    return {"soak": "process", "process": name, "rss_mib_after_warm_up": round(start, 1),
            "rss_mib_end": round(end, 1), "rss_mib_max": round(max(s[1] for s in samples), 1),
            "slope_mib_per_10_min": round(slope, 2) if slope is not None else None,
            "slope_second_half_mib_per_10_min": round(late, 2) if late is not None else None,
            "growth_mib": round(end - start, 1), "allowance_mib": round(allowance, 1),
            "grew": end - start > allowance}


def soak(minutes: float, rate: float, document_every: float, sample_every: float, emit,
         milvus_uri: Optional[str] = None) -> list[dict]:
    """Run the soak (see the module docstring); every sample and summary is ``emit``-ted.

    ``milvus_uri``: a Milvus server to index into; ``None``: a fresh Milvus Lite file, which keeps
    the collection inside the index + classify process, so that process grows with the rows."""
    from conveyor.streams.config.settings import Settings
    from conveyor.streams.kafka.admin import create_topics
    from conveyor.streams.kafka.io import InputProducer
    from conveyor.streams.runtime.supervisor import Supervisor, process_groups
    from conveyor.tools.bench.__main__ import _texts
    from conveyor.tools.bench.cpu import rss_mib
    from conveyor.tools.bench.openloop import percentiles, start_watch, wait_for
    from conveyor.tools.bench.pipeline import _docs
    from conveyor.tools.stack import up

    base = Settings.from_env()
    up(base, log=lambda m: None)
    texts, docs = _texts(2000), _docs()
    out: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        settings = dataclasses.replace(base, namespace=time.strftime("soak%Y%m%d%H%M%S"),
                                       milvus_uri=milvus_uri or str(Path(tmp) / "milvus.db"),
                                       blob_dir=Path(tmp) / "blobs")
        create_topics(settings)
        sup = Supervisor(settings, process_groups(settings, with_drift=True, builtin_only=True),
                         log_dir=Path(tmp) / "logs")
        sup.start()
        watch, thread = start_watch(settings, "predictions")
        rss: dict[str, list[tuple[float, float]]] = {}
        sent: dict[str, float] = {}
        kinds: dict[str, str] = {}
        stop = threading.Event()

        def sample(t0: float) -> None:
            while not stop.wait(sample_every):
                sup.check()
                t_s = round(time.monotonic() - t0, 1)
                row: dict[str, object] = {"soak": "sample", "t_s": t_s}
                for c in sup.children:
                    value = rss_mib(c.proc.pid) if c.proc else None
                    if value is not None:
                        rss.setdefault("-".join(c.group), []).append((t_s, value))
                        row["-".join(c.group)] = value
                emit(row)

        try:
            t0 = time.monotonic()
            sampler = threading.Thread(target=sample, args=(t0,), daemon=True)
            sampler.start()
            next_doc, i, d = t0 + 5, 0, 0
            with InputProducer(settings) as p:
                while (now := time.monotonic()) < t0 + minutes * 60:
                    if now >= next_doc:  # the demo corpus in turn: text-layer PDFs and scans
                        doc_id = p.document(docs[d % len(docs)])["doc_id"]
                        sent[doc_id], kinds[doc_id] = time.time(), "document"
                        next_doc, d = next_doc + document_every, d + 1
                    doc_id = f"soak-{uuid.uuid4().hex[:12]}"
                    sent[doc_id], kinds[doc_id] = time.time(), "text"
                    p.text(texts[i % len(texts)], doc_id=doc_id)
                    p.producer.poll(0)
                    i += 1
                    time.sleep(max(0.0, t0 + i / rate - time.monotonic()))
            wait_for(watch, list(sent), 300)
        finally:
            stop.set()
            watch.stop.set()
            thread.join(10)
            sup.stop()
    for name, samples in rss.items():
        out.append(_summary(name, samples))
        emit(out[-1])
    lat = [(watch.seen[k] - t) * 1000 for k, t in sent.items() if k in watch.seen and kinds[k] == "text"]
    out.append({"soak": "summary", "minutes": minutes, "rate_per_s": rate, "inputs": len(sent),
                "documents": sum(v == "document" for v in kinds.values()),
                "predictions": sum(k in watch.seen for k in sent), "lost": sum(k not in watch.seen for k in sent),
                "text_latency_ms": percentiles(lat), "grew": [r["process"] for r in out if r.get("grew")]})
    emit(out[-1])
    return out


def main(argv: Optional[list[str]] = None) -> None:
    """``python -m conveyor.tools.bench.soak [--minutes 20] [--rate 70] [--milvus-uri URI] …``; JSON lines on stdout
    and in ``build/bench/soak.jsonl``."""
    ap = argparse.ArgumentParser(prog="python -m conveyor.tools.bench.soak", description=__doc__)
    ap.add_argument("--minutes", type=float, default=20.0)
    ap.add_argument("--rate", type=float, default=70.0,
                    help="texts per second (default: half the text capacity measured by make bench, 146/s)")
    ap.add_argument("--document-every", type=float, default=30.0, help="seconds between documents")
    ap.add_argument("--sample-every", type=float, default=30.0, help="seconds between RSS samples")
    ap.add_argument("--out", type=Path, default=Path("build") / "bench" / "soak.jsonl")
    ap.add_argument("--milvus-uri", default=None,
                    help="a Milvus server (default: a Milvus Lite file inside index + classify)")
    args = ap.parse_args(argv)
    from conveyor.streams.telemetry.logs import configure

    configure("WARNING")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w") as fh:
        def emit(row: dict) -> None:
            line = json.dumps(row)
            print(line, flush=True)
            fh.write(line + "\n")
        soak(args.minutes, args.rate, args.document_every, args.sample_every, emit, args.milvus_uri)


if __name__ == "__main__":
    main()
