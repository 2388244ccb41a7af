"""Helpers shared by the training scripts: caches, ONNX export, manifests."""
from __future__ import annotations

import hashlib
import json
import os
import platform
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from streams import env


REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CORPUS = REPO_ROOT.parent / "shared" / "corpus"
MODELS_DIR = REPO_ROOT / "processors" / "models"
#: Outside the repository, so nothing cached is ever committed.
DEFAULT_CACHE_DIR = Path(os.environ.get(env.TRAIN_CACHE, Path.home() / ".cache" / "conveyor" / "train"))
#: ONNX opsets for the exported classifiers (onnxruntime >= 1.18 runs them).
TARGET_OPSET = {"": 17, "ai.onnx.ml": 3}


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


def export_onnx(clf: Any, n_features: int, path: Path, graph_name: str = "conveyor_classifier") -> bytes:
    """Export a fitted sklearn classifier; probabilities as a plain tensor (no ZipMap).

    The graph name is fixed (skl2onnx would use a random UUID), so the same
    fitted model always gives the same bytes and sha256.
    """
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    onx = convert_sklearn(
        clf,
        initial_types=[("embedding", FloatTensorType([None, n_features]))],
        options={id(clf): {"zipmap": False}},
        target_opset=TARGET_OPSET,
        name=graph_name,
    )
    data = onx.SerializeToString()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return data


def write_manifest(directory: Path, manifest: dict[str, Any]) -> Path:
    path = directory / "manifest.json"
    path.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def floor_metric(value: float, margin: float = 0.02) -> float:
    """A regression floor a bit under ``value`` (rounded down to 2 decimals)."""
    return float(np.floor((value - margin) * 100) / 100)
