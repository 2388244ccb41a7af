"""Embedding throughput on short banking77 queries.

Run::

    python -m conveyor.tools.bench.embed [--corpus ../shared/corpus] [--n 1024] [--batch-size 32] [--threads 2]

Reports texts/s (wall clock, and per CPU-second of this process, which is less
sensitive to other load on a shared machine) for (a) one ``embed`` call over
all texts and (b) consecutive ``embed`` calls of ``batch-size`` texts each, as
the embed stage sees them from Kafka.
"""
from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

from conveyor.processors.embed.model import MiniLMEmbedder
from conveyor.tools.training.common import DEFAULT_CORPUS


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description="embedding throughput")
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    ap.add_argument("--n", type=int, default=1024)
    ap.add_argument("--batch-size", type=int, default=32, help="texts per embed() call (a consumer batch)")
    ap.add_argument("--model-batch", type=int, default=8, help="texts per onnxruntime call")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)

    with (args.corpus / "text_banking77" / "test.csv").open(newline="", encoding="utf-8") as fh:
        texts = [r["text"] for r in csv.DictReader(fh)][: args.n]
    emb = MiniLMEmbedder(intra_op_threads=args.threads, batch_size=args.model_batch)
    emb.embed(texts[: args.batch_size])  # warm-up

    t0, c0 = time.perf_counter(), time.process_time()
    emb.embed(texts)
    one_call = len(texts) / (time.perf_counter() - t0)
    one_call_cpu = len(texts) / (time.process_time() - c0)

    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(0, len(texts), args.batch_size):
        emb.embed(texts[i : i + args.batch_size])
    per_batch = len(texts) / (time.perf_counter() - t0)
    per_batch_cpu = len(texts) / (time.process_time() - c0)

    result = {"texts": len(texts), "threads": args.threads, "model_batch": args.model_batch,
              "one_call_texts_per_s": round(one_call, 1), "per_batch_texts_per_s": round(per_batch, 1),
              "one_call_texts_per_cpu_s": round(one_call_cpu, 1),
              "per_batch_texts_per_cpu_s": round(per_batch_cpu, 1)}
    print(result)
    return result


if __name__ == "__main__":
    main()
