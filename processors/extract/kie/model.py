"""The key-field model: one ONNX candidate scorer per field, with calibrated confidence.

A model folder (shipped: ``processors/models/keyfields``) holds ``manifest.json`` and one
``<field>.onnx`` per field, each a scikit-learn ``HistGradientBoostingClassifier`` exported with
skl2onnx: input ``embedding`` = the candidate features of :mod:`.features`, output
``probabilities`` holding raw scores (column 1: the decision function, the log-odds that the
candidate is the field's value; exported with ``raw_scores`` so they never saturate). The manifest pins each file's
sha256 (checked before onnxruntime sees it), the feature names, and per field:

* ``calibration``: ``{"a", "b"}``, Platt scaling (Platt, *Probabilistic outputs for support vector
  machines*, 1999) of the best candidate's score to the share of such choices that were right on
  left-out documents: ``confidence = 1 / (1 + exp(-(a · score + b)))``, strictly increasing, so a
  threshold on it is a threshold on the score;
* ``emit_threshold``: the lowest confidence at which the left-out choices were right at least
  97 % of the time; below it the value is withheld with its candidate;
* ``use``: ``"model"`` where the model beat the rules on left-out documents, else ``"rules"``
  (the rules' value and confidence then stand).
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from conveyor.processors.errors import ModelIntegrityError
from conveyor.processors.extract.fields.confidence import MODEL_RULE
from conveyor.processors.extract.fields.normalise import normalise_company
from conveyor.processors.extract.kie.candidates import MULTI_VALUED, Candidate, candidates
from conveyor.processors.extract.kie.features import feature_matrix, feature_names
from conveyor.processors.extract.kie.rows import DocRow
from conveyor.processors.integrity import sha256_file

__all__ = ["KeyFieldModel", "KiePrediction", "MODEL_RULE", "default_model", "platt"]



def platt(scores: np.ndarray, calibration: dict[str, float]) -> np.ndarray:
    """Calibrated confidences (0..1) of raw ``scores`` (log-odds; see the module docstring); shape kept."""
    z = float(calibration["a"]) * np.asarray(scores, dtype=np.float64) + float(calibration["b"])
    return 1.0 / (1.0 + np.exp(-np.clip(z, -500, 500)))


@dataclass(frozen=True)
class KiePrediction:
    """The model's choice for one field: the best ``candidate``, its raw ``score`` (log-odds) and its
    calibrated ``confidence`` (0..1); ``emit`` when the confidence reaches the field's threshold.

    For a multi-valued field (:data:`.candidates.MULTI_VALUED`: a contract's parties) ``values`` are
    every candidate at or above the threshold (one per name, best first) and ``confidence`` the lowest
    of theirs; for the others ``values`` is the best candidate's value when emitted."""

    field: str
    candidate: Candidate
    score: float
    confidence: float
    emit: bool
    values: tuple[str, ...] = ()


class KeyFieldModel:
    """Verified per-field ONNX scorers and their calibration (see the module docstring).

    Attributes:
        name, version: from the manifest.
        manifest: the whole manifest.
        fields: the fields the model scores, in manifest order.
    """

    def __init__(self, directory: Path, manifest: dict[str, Any], sessions: dict[str, Any]) -> None:
        self.directory = directory
        self.manifest = manifest
        self.name: str = manifest["name"]
        self.version: str = str(manifest["version"])
        self._sessions = sessions
        self.fields: tuple[str, ...] = tuple(sessions)

    @classmethod
    def load(cls, directory: str | Path, *, intra_op_threads: int = 1) -> KeyFieldModel:
        """Load every ``<field>.onnx`` of ``directory`` after checking it against the manifest.

        Raises:
            FileNotFoundError: no manifest.json or a field's file is missing.
            ModelIntegrityError: bad manifest, a sha256 mismatch, or feature names that differ from
                what this code computes (the model was trained on other features: retrain it).
        """
        import onnxruntime as ort

        directory = Path(directory)
        try:
            manifest = json.loads((directory / "manifest.json").read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ModelIntegrityError(f"{directory / 'manifest.json'}: not valid JSON ({exc})") from exc
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = 1
        sessions = {}
        for field, spec in (manifest.get("fields") or {}).items():
            path = directory / spec["file"]
            digest = sha256_file(path)
            if digest != spec.get("sha256"):
                raise ModelIntegrityError(f"{path}: sha256 {digest} does not match the manifest's {spec.get('sha256')}")
            if list(spec.get("features") or []) != list(feature_names(field)):
                raise ModelIntegrityError(f"{path}: trained on other features than this version computes for "
                                          f"{field!r}: retrain it (make models)")
            sessions[field] = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
        return cls(directory, manifest, sessions)

    def spec(self, field: str) -> dict[str, Any]:
        """The manifest entry of ``field``."""
        entry: dict[str, Any] = self.manifest["fields"][field]
        return entry

    def scores(self, field: str, X: np.ndarray) -> np.ndarray:
        """``(n,)`` raw scores (log-odds) that each candidate (row of ``X``) is ``field``'s value."""
        if not len(X):
            return np.zeros(0, dtype=np.float32)
        session = self._sessions[field]
        out = session.run(None, {session.get_inputs()[0].name: X.astype(np.float32, copy=False)})
        proba = next(o for o, meta in zip(out, session.get_outputs()) if meta.name == "probabilities")
        return np.asarray(proba, dtype=np.float64)[:, 1]

    def confidence(self, field: str, score: float) -> float:
        """Calibrated confidence (0..1) of a best candidate scoring ``score``."""
        return float(platt(np.array([score]), self.spec(field)["calibration"])[0])

    def predict(self, rows: Sequence[DocRow], rule_fields: dict[str, Any],
                fields: Sequence[str] | None = None) -> dict[str, KiePrediction]:
        """The best candidate of each field (those with at least one candidate).

        Args:
            rows: :func:`conveyor.processors.extract.kie.rows.document_rows` of the document.
            rule_fields: the rules' fields (:func:`conveyor.processors.extract.fields.extract_key_fields`,
                ``address`` renamed ``vendor_address``).
            fields: the fields wanted (default: all the model scores).
        """
        wanted = [f for f in (fields or self.fields) if f in self._sessions]
        out = {}
        for field, cands in candidates(rows, rule_fields, wanted).items():
            if not cands:
                continue
            s = self.scores(field, feature_matrix(field, cands, rows))
            threshold = float(self.spec(field)["emit_threshold"])
            best = int(np.argmax(s))
            conf = self.confidence(field, float(s[best]))
            if field in MULTI_VALUED:
                chosen: dict[str, tuple[float, str]] = {}
                for k in np.argsort(-s, kind="stable"):
                    k_conf = self.confidence(field, float(s[k]))
                    key = normalise_company(cands[k].value)
                    if k_conf >= threshold and key not in chosen:
                        chosen[key] = (k_conf, cands[k].value)
                values = tuple(v for _, v in chosen.values())
                low = min((c for c, _ in chosen.values()), default=conf)
                out[field] = KiePrediction(field, cands[best], float(s[best]), low, bool(values), values)
                continue
            emit = conf >= threshold
            out[field] = KiePrediction(field, cands[best], float(s[best]), conf, emit,
                                       (cands[best].value,) if emit else ())
        return out


@lru_cache(maxsize=1)
def default_model() -> KeyFieldModel | None:
    """The shipped model (``processors/models/keyfields``), loaded once per process; None when absent."""
    from conveyor.processors.models import model_dir

    directory = model_dir("keyfields")
    if not (directory / "manifest.json").exists():
        return None
    return KeyFieldModel.load(directory)
