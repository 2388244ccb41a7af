"""A namespace with real predictions routed to review, for the review app's tests: a receipt
scan, an invoice PDF and two texts go through the real pipeline (extract, embed, index,
classify as processes), and the review app serves the namespace."""
from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Sequence
from pathlib import Path
from uuid import uuid4

from pydantic import SecretStr

from conveyor.review.app import serving
from conveyor.review.settings import ReviewSettings
from conveyor.streams.config.settings import Settings
from conveyor.streams.kafka.admin import create_topics
from conveyor.streams.kafka.io import InputProducer, read_to_end
from conveyor.streams.kafka.serde import AvroSerde
from conveyor.streams.kafka.topics import topic
from conveyor.streams.runtime.supervisor import Supervisor, process_groups
from conveyor.tools.accounting import collect
from conveyor.tools.demo.run import CORPUS

REVIEWERS = (("alice", SecretStr("alice-pw")), ("bob", SecretStr("bob-pw")))
DOCUMENTS = ("receipts/contoso-receipt.png", "invoices/Invoice_1.pdf")
TEXTS = ("zxq vbnm plokij", "hello")  # nonsense and a greeting: out of scope for the intent model, so reviewed


@dataclasses.dataclass
class Reviewed:
    """The namespace's settings, its inputs (doc id -> file name or text) and their predictions."""

    settings: Settings
    names: dict[str, str]
    predictions: dict[str, dict]


def run_pipeline(stack: Settings, tmp: Path, documents: Sequence[Path] = tuple(CORPUS / d for d in DOCUMENTS),
                 texts: Sequence[str] = TEXTS, auto_threshold: float | None = None) -> Reviewed:
    """Run the pipeline (no drift monitor) on ``documents`` and ``texts`` in a new namespace whose
    home (model registry) is ``tmp / "home"``; ``auto_threshold`` as ``CONVEYOR_AUTO_THRESHOLD``
    (above 1: every input goes to review)."""
    settings = dataclasses.replace(stack, namespace=f"t{uuid4().hex[:10]}", milvus_uri=str(tmp / "milvus.db"),
                                   blob_dir=tmp / "blobs", metrics_port=0, home=tmp / "home",
                                   auto_threshold=auto_threshold)
    create_topics(settings)
    supervisor = Supervisor(settings, process_groups(settings, with_drift=False), log_dir=tmp / "logs", grace=60)
    supervisor.start()
    names = {}
    try:
        with InputProducer(settings) as producer:
            for path in documents:
                names[producer.document(path)["doc_id"]] = path.name
            for text in texts:
                names[producer.text(text)["doc_id"]] = text
        ledger = collect(settings, set(names), timeout=600, settle=2, on_idle=supervisor.check)
    finally:
        supervisor.stop()
    assert not ledger.missing and not ledger.duplicated, (ledger.missing, ledger.duplicated)
    return Reviewed(settings, names, {doc_id: preds[0] for doc_id, preds in ledger.predictions.items()})


@contextlib.contextmanager
def review_app(settings: Settings) -> Iterator[str]:
    """The review app on a free port of 127.0.0.1; yields its base URL."""
    with serving(settings, ReviewSettings(addr="127.0.0.1", port=0, users=REVIEWERS), ready_timeout=60) as url:
        yield url


def feedback_records(settings: Settings) -> list[dict]:
    """Every committed record on the feedback topic, decoded."""
    serde, name = AvroSerde(settings), topic(settings, "feedback")
    return [serde.decode(name, m.value()) for m in read_to_end(settings, name, timeout=60)]
