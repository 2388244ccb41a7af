"""Drift monitoring: two-sample tests (:mod:`.stats` for labels, :mod:`.twosample` for
lengths, OCR confidence and embeddings), bounded samples (:mod:`.sample`) and windowed
state (:mod:`.monitor`, built on :mod:`.aggregate`, :mod:`.clock` and :mod:`.report`).
:mod:`conveyor.tools.drift_validation` validates it offline on the shared corpus.

Nothing here imports Kafka or faust; the streaming plumbing is :mod:`conveyor.streams.drift`.
"""
from conveyor.processors.drift.monitor import (
    EMBEDDING,
    OCR_CONFIDENCE,
    PRODUCER_VERSION,
    TEXT_LENGTH,
    DriftMonitor,
    StreamClock,
    WindowAggregate,
    label_signal,
)
from conveyor.processors.drift.stats import ALPHA, chi2_permutation_test, js_distance, psi
from conveyor.processors.drift.twosample import MMDTest, TestResult, ks_test

__version__ = PRODUCER_VERSION

__all__ = [
    "ALPHA",
    "DriftMonitor",
    "EMBEDDING",
    "MMDTest",
    "OCR_CONFIDENCE",
    "StreamClock",
    "TEXT_LENGTH",
    "TestResult",
    "WindowAggregate",
    "chi2_permutation_test",
    "js_distance",
    "ks_test",
    "label_signal",
    "psi",
    "__version__",
]
