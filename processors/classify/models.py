"""Loading and running the shipped ONNX classifiers.

A model folder holds ``model.onnx`` (a scikit-learn classifier exported with
skl2onnx, ``zipmap`` off, so its probability output is a plain float tensor)
and ``manifest.json``; the manifest pins the model's sha256, which is checked
before the file is handed to onnxruntime.

Calibration and out-of-scope scoring live inside the graph, so the sha256
covers them too: ``probabilities`` are already temperature-scaled when the
manifest has a ``calibration`` entry, and a model whose manifest has an
``out_of_scope`` entry must have that float output (``ood_score``, one value
per row).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from conveyor.processors.errors import ModelInputError, ModelIntegrityError
from conveyor.processors.integrity import sha256_file

REQUIRED_MANIFEST_KEYS = ("name", "version", "sha256", "labels")
#: Graph output holding the out-of-scope score, unless the manifest names another.
DEFAULT_OOD_OUTPUT = "ood_score"


def read_manifest(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """The parsed ``manifest.json`` of a model folder (keys checked)."""
    path = Path(directory) / "manifest.json"
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ModelIntegrityError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(manifest, dict):
        raise ModelIntegrityError(f"{path}: not a JSON object")
    missing = [k for k in REQUIRED_MANIFEST_KEYS if k not in manifest]
    if missing:
        raise ModelIntegrityError(f"{path}: missing keys {missing}")
    if not isinstance(manifest["labels"], list) or not manifest["labels"]:
        raise ModelIntegrityError(f"{path}: 'labels' must be a non-empty list")
    return manifest


class OnnxClassifier:
    """A verified ONNX classifier over 384-d embeddings.

    Attributes:
        name, version, sha256: from the manifest (sha256 verified against the file).
        labels: class names in probability-column order.
        manifest: the whole manifest.
        input_dim: feature size the model expects (384).
    """

    def __init__(self, directory: Path, manifest: dict[str, Any], session: Any) -> None:
        self.directory = directory
        self.manifest = manifest
        self.name: str = manifest["name"]
        self.version: str = str(manifest["version"])
        self.sha256: str = manifest["sha256"]
        self.labels: list[str] = list(manifest["labels"])
        self._session = session
        inp = session.get_inputs()[0]
        self._input_name = inp.name
        dim = inp.shape[-1] if inp.shape else None
        self.input_dim: int = int(dim) if isinstance(dim, int) else int(manifest.get("input_dim", 384))
        self._prob_output = self._find_probability_output(session)
        self._ood_output = self._find_ood_output(session, manifest)
        self.ood_threshold: float | None = (
            float(manifest["out_of_scope"]["threshold"]) if self._ood_output is not None else None
        )

    @classmethod
    def load(cls, directory: str | os.PathLike[str], *, intra_op_threads: int = 1) -> OnnxClassifier:
        """Load ``directory/model.onnx`` after checking it against the manifest.

        Raises:
            FileNotFoundError: the folder has no manifest.json or model.onnx.
            ModelIntegrityError: bad manifest, sha256 mismatch, or the model's
                outputs do not match the manifest's labels.
        """
        import onnxruntime as ort

        directory = Path(directory)
        manifest = read_manifest(directory)
        model_path = directory / "model.onnx"
        actual = sha256_file(model_path)
        if actual != str(manifest["sha256"]).lower():
            raise ModelIntegrityError(
                f"{model_path}: sha256 {actual} does not match manifest sha256 {manifest['sha256']}"
            )
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = max(1, int(intra_op_threads))
        opts.inter_op_num_threads = 1
        session = ort.InferenceSession(str(model_path), sess_options=opts, providers=["CPUExecutionProvider"])
        clf = cls(directory, manifest, session)
        probe, ood = clf.predict_scores(np.zeros((1, clf.input_dim), dtype=np.float32))
        if probe.shape != (1, len(clf.labels)):
            raise ModelIntegrityError(
                f"{model_path}: probabilities have shape {probe.shape[1:]}, manifest has {len(clf.labels)} labels"
            )
        if ood is not None and ood.shape != (1,):
            raise ModelIntegrityError(f"{model_path}: {clf._ood_output} must hold one score per row")
        return clf

    @staticmethod
    def _find_ood_output(session: Any, manifest: dict[str, Any]) -> str | None:
        spec = manifest.get("out_of_scope")
        if not spec:
            return None
        if not isinstance(spec, dict) or spec.get("threshold") is None:
            raise ModelIntegrityError("manifest 'out_of_scope' needs a 'threshold'")
        name = spec.get("output", DEFAULT_OOD_OUTPUT)
        if not isinstance(name, str) or name not in {o.name for o in session.get_outputs()}:
            raise ModelIntegrityError(f"manifest names out-of-scope output {name!r}, the model has none")
        return name

    @staticmethod
    def _find_probability_output(session: Any) -> str:
        outputs = session.get_outputs()
        for out in outputs:
            if out.name == "probabilities":
                return str(out.name)
        for out in outputs:
            if out.type == "tensor(float)" and len(out.shape or []) == 2:
                return str(out.name)
        raise ModelIntegrityError(
            "model has no plain probability tensor output (export with options={'zipmap': False})"
        )

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities ``(n, len(labels))`` for features ``X`` ``(n, input_dim)``.

        Raises:
            ModelInputError: ``X`` is not a 2-D array of ``input_dim`` columns.
        """
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 2 or X.shape[1] != self.input_dim:
            raise ModelInputError(f"expected features of shape (n, {self.input_dim}), got {X.shape}")
        if X.shape[0] == 0:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        return np.asarray(self._session.run([self._prob_output], {self._input_name: X})[0], dtype=np.float32)

    @property
    def has_ood_score(self) -> bool:
        """True when the model outputs an out-of-scope score with a threshold in its manifest."""
        return self._ood_output is not None

    def predict_scores(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """``(probabilities (n, k), out-of-scope scores (n,) or None)`` in one run.

        The scores are None for a model without an out-of-scope output.

        Raises:
            ModelInputError: ``X`` is not a 2-D array of ``input_dim`` columns.
        """
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 2 or X.shape[1] != self.input_dim:
            raise ModelInputError(f"expected features of shape (n, {self.input_dim}), got {X.shape}")
        if self._ood_output is None:
            return self.predict_proba(X), None
        if X.shape[0] == 0:
            return np.zeros((0, len(self.labels)), dtype=np.float32), np.zeros(0, dtype=np.float32)
        proba, ood = self._session.run([self._prob_output, self._ood_output], {self._input_name: X})
        return np.asarray(proba, dtype=np.float32), np.asarray(ood, dtype=np.float32).reshape(-1)

    @property
    def probability_output(self) -> str:
        """Name of the graph output read as class probabilities."""
        return self._prob_output

    @property
    def ood_output(self) -> str | None:
        """Name of the out-of-scope score output (None: the model has no out-of-scope rule)."""
        return self._ood_output

    @property
    def output_names(self) -> list[str]:
        """Names of the graph's outputs."""
        return [o.name for o in self._session.get_outputs()]

    def run_outputs(self, names: list[str], X: np.ndarray) -> list[np.ndarray]:
        """Named graph outputs (e.g. ``probabilities_uncalibrated``) for features ``X``, in one run.

        Raises:
            KeyError: the graph lacks one of ``names``.
            ModelInputError: ``X`` is not a 2-D array of ``input_dim`` columns.
        """
        missing = [n for n in names if n not in self.output_names]
        if missing:
            raise KeyError(f"{self.name} has no outputs {missing}")
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 2 or X.shape[1] != self.input_dim:
            raise ModelInputError(f"expected features of shape (n, {self.input_dim}), got {X.shape}")
        return [np.asarray(a) for a in self._session.run(list(names), {self._input_name: X})]

    def predict(self, X: np.ndarray) -> list[str]:
        """Top label per row."""
        return [self.labels[i] for i in self.predict_proba(X).argmax(axis=1)]

    def describe(self) -> dict[str, str]:
        return {"name": self.name, "version": self.version, "sha256": self.sha256}
