"""Re-measure the embedding drift threshold on the shared corpus.

``python -m processors.drift.calibrate [CORPUS_DIR] [--texts N] [--draws N]``

Embeds banking77 train/test and clinc150 test queries with
:class:`processors.embed.model.MiniLMEmbedder`, then draws random windows and
prints :func:`stats.mean_cosine_distance` for the same domain (banking77 train
as reference vs banking77 test windows) and another domain (vs clinc150 windows),
with the expected no-drift value (:func:`stats.mean_cosine_noise_floor`). The
numbers in :mod:`processors.drift.stats` come from this script (3000 texts per
set, 300 draws).
"""
from __future__ import annotations

import argparse
import csv
import json
import random
from pathlib import Path

import numpy as np

from processors.drift import stats


def load_texts(corpus: Path, n: int, seed: int = 0) -> dict[str, list[str]]:
    """Up to ``n`` texts each of banking77 train, banking77 test, clinc150 test."""
    rnd = random.Random(seed)

    def b77(split: str) -> list[str]:
        with open(corpus / "text_banking77" / f"{split}.csv", newline="") as fh:
            return [row["text"] for row in csv.DictReader(fh)]

    clinc = [row[0] for row in json.loads((corpus / "text_clinc150" / "data_full.json").read_text())["test"]]
    out = {"b77_train": b77("train"), "b77_test": b77("test"), "clinc_test": clinc}
    for rows in out.values():
        rnd.shuffle(rows)
    return {k: v[:n] for k, v in out.items()}


def measure(vectors: dict[str, np.ndarray], ref_n: int, cur_n: int, draws: int, seed: int = 0) -> dict[str, float]:
    """Distances of ``draws`` random (reference, current) window pairs."""
    rng = np.random.default_rng(seed)
    ref_pool, same_pool, other_pool = vectors["b77_train"], vectors["b77_test"], vectors["clinc_test"]
    same, other, floor = [], [], []
    for _ in range(draws):
        ref = ref_pool[rng.choice(len(ref_pool), ref_n, replace=False)]
        cur_same = same_pool[rng.choice(len(same_pool), cur_n, replace=False)]
        cur_other = other_pool[rng.choice(len(other_pool), cur_n, replace=False)]
        same.append(stats.mean_cosine_distance(ref.sum(0), ref_n, cur_same.sum(0), cur_n))
        other.append(stats.mean_cosine_distance(ref.sum(0), ref_n, cur_other.sum(0), cur_n))
        floor.append(stats.mean_cosine_noise_floor(ref.sum(0), ref_n, cur_n))
    return {"same_median": float(np.median(same)), "same_p99": float(np.quantile(same, 0.99)),
            "same_max": float(np.max(same)), "other_min": float(np.min(other)),
            "other_median": float(np.median(other)), "noise_floor": float(np.median(floor))}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", nargs="?", default=str(Path(__file__).resolve().parents[3] / "shared" / "corpus"))
    parser.add_argument("--texts", type=int, default=1000, help="texts per set (default 1000)")
    parser.add_argument("--draws", type=int, default=200)
    args = parser.parse_args(argv)
    from processors.embed.model import MiniLMEmbedder

    texts = load_texts(Path(args.corpus), args.texts)
    embedder = MiniLMEmbedder()
    vectors = {k: np.asarray(embedder.embed(v), dtype=np.float64) for k, v in texts.items()}
    full_same = stats.mean_cosine_distance(vectors["b77_train"].sum(0), len(vectors["b77_train"]),
                                           vectors["b77_test"].sum(0), len(vectors["b77_test"]))
    full_other = stats.mean_cosine_distance(vectors["b77_train"].sum(0), len(vectors["b77_train"]),
                                            vectors["clinc_test"].sum(0), len(vectors["clinc_test"]))
    print(f"full sets: banking77 train vs test {full_same:.4f}; banking77 vs clinc150 {full_other:.4f}; "
          f"threshold {stats.EMBEDDING_THRESHOLD}")
    for ref_n, cur_n in ((100, 20), (100, 50), (500, 100)):
        if ref_n > len(vectors["b77_train"]) or cur_n > min(len(vectors["b77_test"]), len(vectors["clinc_test"])):
            continue
        m = measure(vectors, ref_n, cur_n, args.draws)
        print(f"ref={ref_n} cur={cur_n}: same domain median {m['same_median']:.4f} p99 {m['same_p99']:.4f} "
              f"max {m['same_max']:.4f} (noise floor {m['noise_floor']:.4f}); "
              f"other domain min {m['other_min']:.4f} median {m['other_median']:.4f}")


if __name__ == "__main__":
    main()
