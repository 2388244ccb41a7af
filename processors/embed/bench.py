"""Embedding throughput on short banking77 queries.

Run::

    python -m processors.embed.bench [--corpus ../shared/corpus] [--n 1024] [--batch-size 32] [--threads 2]

Reports texts/s for (a) one ``embed`` call over all texts (length-sorted
batches) and (b) consecutive ``embed`` calls of ``batch-size`` texts each, as
the embed stage sees them from Kafka.
"""
from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

from processors.embed.model import MiniLMEmbedder

DEFAULT_CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus"


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description="embedding throughput")
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    ap.add_argument("--n", type=int, default=1024)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)

    with (args.corpus / "text_banking77" / "test.csv").open(newline="", encoding="utf-8") as fh:
        texts = [r["text"] for r in csv.DictReader(fh)][: args.n]
    emb = MiniLMEmbedder(intra_op_threads=args.threads, batch_size=args.batch_size)
    emb.embed(texts[: args.batch_size])  # warm-up

    t0 = time.perf_counter()
    emb.embed(texts)
    one_call = len(texts) / (time.perf_counter() - t0)

    t0 = time.perf_counter()
    for i in range(0, len(texts), args.batch_size):
        emb.embed(texts[i : i + args.batch_size])
    per_batch = len(texts) / (time.perf_counter() - t0)

    result = {"texts": len(texts), "one_call_texts_per_s": round(one_call, 1),
              "per_batch_texts_per_s": round(per_batch, 1)}
    print(result)
    return result


if __name__ == "__main__":
    main()
