"""Drift monitoring: pure statistics (:mod:`.stats`) and windowed state (:mod:`.monitor`,
built on :mod:`.aggregate`, :mod:`.clock` and :mod:`.report`).

Nothing here imports Kafka or faust; the streaming plumbing is
:mod:`streams.drift`.
"""
from processors.drift.monitor import PRODUCER_VERSION, DriftMonitor, StreamClock, WindowAggregate
from processors.drift.stats import (
    EMBEDDING_THRESHOLD,
    NOISE_FACTOR,
    PSI_MODERATE,
    PSI_THRESHOLD,
    length_bucket,
    mean_cosine_distance,
    psi,
)

__version__ = PRODUCER_VERSION

__all__ = [
    "DriftMonitor",
    "StreamClock",
    "WindowAggregate",
    "EMBEDDING_THRESHOLD",
    "NOISE_FACTOR",
    "PSI_MODERATE",
    "PSI_THRESHOLD",
    "length_bucket",
    "mean_cosine_distance",
    "psi",
    "__version__",
]
