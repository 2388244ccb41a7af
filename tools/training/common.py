"""Helpers shared by the training scripts: caches, ONNX export, manifests."""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from conveyor.processors.models import MODELS_DIR
from conveyor.streams.config import env

__all__ = ["DEFAULT_CACHE_DIR", "DEFAULT_CORPUS", "MODELS_DIR", "REPO_ROOT", "TARGET_OPSET"]


REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CORPUS = Path(os.environ.get(env.CORPUS) or REPO_ROOT.parent / "shared" / "corpus")
"""The shared corpus: ``CONVEYOR_CORPUS``, else ``../shared/corpus`` beside the checkout (the one
definition every offline tool uses)."""
#: Outside the repository, so nothing cached is ever committed.
DEFAULT_CACHE_DIR = Path(os.environ.get(env.TRAIN_CACHE, Path.home() / ".cache" / "conveyor" / "train"))
#: ONNX opsets for the exported classifiers (onnxruntime >= 1.18 runs them).
TARGET_OPSET = {"": 17, "ai.onnx.ml": 3}


def model_arguments(description: str, out: Path) -> argparse.ArgumentParser:
    """The arguments every document-model trainer takes: ``--corpus``, ``--datasets``, ``--out``
    (default ``out``), ``--cache-dir``, ``--seed``."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    ap.add_argument("--datasets", type=Path, default=None, help="built datasets (default $CONVEYOR_DATASETS_DIR)")
    ap.add_argument("--out", type=Path, default=out)
    ap.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR)
    ap.add_argument("--seed", type=int, default=0)
    return ap


def text_digest(items: Sequence[str]) -> str:
    h = hashlib.sha256()
    for s in items:
        h.update(s.encode("utf-8"))
        h.update(b"\x00")
    return h.hexdigest()[:16]


def cached_array(path: Path, compute: Callable[[], np.ndarray]) -> np.ndarray:
    """Load ``path`` (.npy) or compute, save and return the array."""
    if path.exists():
        return np.load(path)
    arr = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, arr)
    os.replace(tmp, path)
    return arr


def library_versions() -> dict[str, str]:
    import onnx
    import onnxruntime
    import skl2onnx
    import sklearn
    import tokenizers

    return {
        "python": platform.python_version(),
        "scikit-learn": sklearn.__version__,
        "skl2onnx": skl2onnx.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "tokenizers": tokenizers.__version__,
        "numpy": np.__version__,
    }


def to_onnx(clf: Any, n_features: int, graph_name: str = "conveyor_classifier", *, raw_scores: bool = False) -> Any:
    """A fitted sklearn classifier as an ``onnx.ModelProto``: input ``embedding`` ``(n, n_features)``,
    outputs ``label`` and ``probabilities`` (a plain tensor, no ZipMap); with ``raw_scores`` the
    latter holds the decision function (log-odds) instead of probabilities, which never saturate at 1.

    The graph name is fixed (skl2onnx would use a random UUID), so the same
    fitted model always gives the same bytes and sha256.
    """
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    return convert_sklearn(
        clf,
        initial_types=[("embedding", FloatTensorType([None, n_features]))],
        options={id(clf): {"zipmap": False, **({"raw_scores": True} if raw_scores else {})}},
        target_opset=TARGET_OPSET,
        name=graph_name,
    )


def export_onnx(clf: Any, n_features: int, path: Path, graph_name: str = "conveyor_classifier") -> bytes:
    """:func:`to_onnx`, written to ``path``; returns the bytes."""
    data = to_onnx(clf, n_features, graph_name).SerializeToString()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return data


def write_manifest(directory: Path, manifest: dict[str, Any]) -> Path:
    path = directory / "manifest.json"
    path.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


# ------------------------------------------------------------ metric floors
def effective_limits(
    out_dir: Path, default_floors: dict[str, float], default_ceilings: dict[str, float] | None = None
) -> tuple[dict[str, float], dict[str, float]]:
    """``(floors, ceilings)`` a retrained model must meet.

    Each limit is the stricter of the script's default (the project's aim) and
    the one pinned in the manifest already at ``out_dir`` (if any), so a
    committed manifest can only tighten what a retrain must reach, never loosen
    it: floors take the max, ceilings the min.
    """
    floors, ceilings = dict(default_floors), dict(default_ceilings or {})
    path = out_dir / "manifest.json"
    if path.exists():
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            old = {}
        for k, v in (old.get("metric_floors") or {}).items():
            floors[k] = max(float(v), floors.get(k, float("-inf")))
        for k, v in (old.get("metric_ceilings") or {}).items():
            ceilings[k] = min(float(v), ceilings.get(k, float("inf")))
    return floors, ceilings


def check_limits(metrics: dict[str, Any], floors: dict[str, float], ceilings: dict[str, float] | None = None) -> list[str]:
    """Human-readable failures: a metric below its floor, above its ceiling, or missing. [] = all met."""
    failures = []
    for name, floor in floors.items():
        value = metrics.get(name)
        if not isinstance(value, (int, float)):
            failures.append(f"{name}: missing (floor {floor})")
        elif value < floor:
            failures.append(f"{name} = {value:.4f} < floor {floor}")
    for name, ceiling in (ceilings or {}).items():
        value = metrics.get(name)
        if not isinstance(value, (int, float)):
            failures.append(f"{name}: missing (ceiling {ceiling})")
        elif value > ceiling:
            failures.append(f"{name} = {value:.4f} > ceiling {ceiling}")
    return failures


def install_model(staging: Path, out_dir: Path, names: tuple[str, ...] = ("model.onnx", "manifest.json", "NOTICE")) -> None:
    """Move the files of a checked candidate model from ``staging`` into ``out_dir``.

    The manifest is moved last, so a crash in between leaves a model whose
    sha256 does not match its manifest, which the loader refuses.
    """
    import shutil

    out_dir.mkdir(parents=True, exist_ok=True)
    for name in sorted(names, key=lambda n: n == "manifest.json"):
        if (staging / name).exists():
            shutil.move(str(staging / name), str(out_dir / name))
