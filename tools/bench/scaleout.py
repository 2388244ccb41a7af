"""Scale-out: throughput of 1, 2 and 4 instances of one stage on this machine.

Each count gets a fresh namespace whose source topics have :data:`PARTITIONS` partitions (so four
instances all get work), ``n`` supervised processes of the stage (``python -m conveyor.streams.cli.main
run <stage>``, one consumer group, stable transactional id each), a warm-up, then a burst:
``embed`` — texts, measured up to the last ``<ns>.embedded`` record; ``extract`` — the demo
corpus' documents (``copies`` times), up to the last ``<ns>.extracted`` record.
"""
from __future__ import annotations

import dataclasses
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from conveyor.streams.config.settings import Settings
from conveyor.tools.bench import openloop

PARTITIONS = 4
"""Partitions of the benchmark's source topics (the default is 3: too few for 4 instances)."""
COUNTS = (1, 2, 4)
OUTPUT_ROLE = {"embed": "embedded", "extract": "extracted"}


def _namespace(base: Settings, stage: str, n: int, tmp: Path) -> Settings:
    from confluent_kafka.admin import NewTopic

    from conveyor.streams.config.security import connect_admin
    from conveyor.streams.kafka.admin import create_topics
    from conveyor.streams.kafka.topics import topic

    settings = dataclasses.replace(base, namespace=f"benchscale{stage}{n}x{time.strftime('%H%M%S')}",
                                   milvus_uri=str(tmp / "milvus.db"), blob_dir=tmp / "blobs")
    admin = connect_admin(settings, 30)
    wanted = [NewTopic(topic(settings, role), PARTITIONS, 1) for role in ("texts", "documents")]
    for fut in admin.create_topics(wanted).values():
        fut.result(30)
    create_topics(settings)  # the rest of the catalogue, schemas registered
    return settings


def scale_out(stage: str, produce: Callable[[Settings], list[str]], warm: Callable[[Settings], list[str]],
              counts: Sequence[int] = COUNTS, base: Settings | None = None) -> list[dict]:
    """Throughput of ``stage`` with each instance count: ``produce(settings)`` sends the burst and
    returns its doc ids; ``warm(settings)`` sends a few inputs first (models loaded, group joined).

    Each result: ``stage``, ``instances``, ``inputs``, ``results``, ``seconds``, ``per_s``
    (inputs per second), ``restarts`` (instances that died and were restarted), ``cpus``.

    Raises:
        KeyError: ``stage`` is not ``embed`` or ``extract``.
    """
    from conveyor.streams.runtime.supervisor import Supervisor

    base = base or Settings.from_env()
    if stage not in OUTPUT_ROLE:
        raise KeyError(f"no scale-out benchmark for {stage!r}; one of {sorted(OUTPUT_ROLE)}")
    out = []
    for n in counts:
        with tempfile.TemporaryDirectory() as tmp:
            settings = _namespace(base, stage, n, Path(tmp))
            sup = Supervisor(settings, [[stage]] * n, log_dir=Path(tmp) / "logs")
            sup.start()
            try:
                openloop.burst(settings, warm, role=OUTPUT_ROLE[stage], timeout=900)
                time.sleep(5)  # every instance has loaded its model and holds partitions
                res = {"stage": stage, "instances": n,
                       **openloop.burst(settings, produce, role=OUTPUT_ROLE[stage], timeout=900)}
                sup.check()
                res["restarts"] = sum(c.restarts for c in sup.children)
            finally:
                sup.stop()
        res["cpus"] = os.cpu_count()
        out.append(res)
    return out


def document_inputs(paths: Sequence[Path], copies: int = 1) -> Callable[[Settings], list[str]]:
    """A ``produce`` callable sending each file of ``paths`` ``copies`` times to ``<ns>.documents``."""
    from conveyor.streams.kafka.io import InputProducer

    def produce(settings: Settings) -> list[str]:
        with InputProducer(settings) as p:
            return [p.document(path)["doc_id"] for _ in range(copies) for path in paths]
    return produce
