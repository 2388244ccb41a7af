"""Shipped classifier models, one folder per model: ``<name>/model.onnx`` + ``manifest.json``.

Each manifest pins the sha256 of its ``model.onnx`` and records the labels, the
training data and licence, the command that produced it, its metrics and the
floors tests hold it to. Loaded by :class:`conveyor.processors.classify.models.OnnxClassifier`.
Models are produced by the scripts in :mod:`conveyor.tools.training`.
"""
from __future__ import annotations

from pathlib import Path

MODELS_DIR = Path(__file__).resolve().parent


def model_dir(name: str) -> Path:
    """Folder of the shipped model ``name``."""
    return MODELS_DIR / name
