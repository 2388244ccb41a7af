"""A drift reference built from texts labels them with any shipped model, the document-type model
(which reads function cues beside the embedding) included."""
from __future__ import annotations

from conveyor.processors.models import MODELS_DIR
from conveyor.streams.config.settings import Settings
from conveyor.streams.drift.cli import reference_from_texts


def test_reference_from_texts_with_the_document_type_model(tmp_path, monkeypatch):
    monkeypatch.setenv("CONVEYOR_HOME", str(tmp_path))
    texts = ["Invoice number INV-7 due date 2024-03-04 bill to Contoso, amount due 120.00, IBAN DE89 3704",
             "LIDL Summe 7,16 Bar 10,00 Rückgeld 2,84 Vielen Dank"]
    export = reference_from_texts(Settings.from_env(), texts, MODELS_DIR / "doctype")
    assert export["signals"]["label:doctype"]["state"]["counts"] == {"invoice": 1, "receipt": 1}
