"""``conveyor drift reference show|pin|reset``: manage the stored drift reference.

A click group; ``streams/cli/main.py`` registers it with ``main.add_command(drift)``
(``from conveyor.streams.drift.cli import drift``). Output: one JSON object per line.

* ``show`` - the stored reference per signal (source, size, sample, time span);
* ``pin --windows N`` - ask the running drift worker to make its last N closed windows
  the reference (waits up to ``--timeout`` for its answer);
* ``pin --texts FILE.csv --text-column C [--limit N] [--model DIR]`` - store a reference
  set built here: the texts are embedded exactly as the ``embed`` processor does (and,
  with ``--model``, classified for that model's ``label:<name>`` signal); a running
  worker switches to it at its next tick, a starting one loads it;
* ``reset`` - forget the stored reference: the worker learns a new one from its next
  windows.
"""
from __future__ import annotations

import csv
import json
import sys
import time
from pathlib import Path
from typing import Any, Optional

import click

from conveyor.streams.config.settings import Settings
from conveyor.streams.drift import reference as ref_store


def _echo(obj: dict[str, Any]) -> None:
    click.echo(json.dumps(obj, default=str, ensure_ascii=False))


def _settings() -> Settings:
    from conveyor.streams.config.security import check_kafka

    settings = Settings.from_env()
    check_kafka(settings, timeout=30)
    return settings


def _store(settings: Settings) -> ref_store.ReferenceStore:
    ref_store.ensure_topic(settings)
    return ref_store.ReferenceStore(settings, writer="cli")


@click.group()
def drift() -> None:
    """Drift monitoring: the reference each window is tested against."""


@drift.group("reference")
def reference_group() -> None:
    """The stored reference (topic <namespace>.drift-reference)."""


@reference_group.command("show")
@click.option("--timeout", default=15.0, show_default=True, help="Seconds to read the topic.")
def show(timeout: float) -> None:
    """Print the stored reference, per signal."""
    store = _store(_settings())
    try:
        latest, _ = store.read_latest(timeout)
    finally:
        store.close()
    _echo(ref_store.summary(latest))


def _read_texts(csv_file: Path, text_column: str, limit: Optional[int]) -> list[str]:
    with open(csv_file, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if text_column not in (reader.fieldnames or []):
            raise click.ClickException(f"{csv_file}: no column {text_column!r} (columns: {reader.fieldnames})")
        texts = [row[text_column] for row in reader if (row.get(text_column) or "").strip()]
    return texts[:limit] if limit else texts


def feedback_texts(settings: Settings, model_name: str) -> tuple[list[str], list[str]]:
    """``(texts, labels)`` of the inputs reviewers accepted or corrected (the ``feedback``
    topic; the newest decision per doc id answering ``model_name``, duplicates left out): each
    input's text (``texts`` topic, or the extracted text of a document) and the reviewer's label.
    Inputs whose text is no longer in the topics are left out."""
    from conveyor.streams.ops.feedback.reader import input_texts, labelled_decisions

    decided, _ = labelled_decisions(settings, model_name)
    found = {k: v["text"] for k, v in input_texts(settings, decided).items()}
    ids = sorted(found)
    return [found[i] for i in ids], [decided[i]["label"] for i in ids]


def reference_from_texts(settings: Settings, texts: list[str], model_dir: Optional[Path] = None, *,
                         labels: Optional[list[str]] = None, label_model: str = "") -> dict[str, Any]:
    """The export (``DriftMonitor.export_references()``) of a reference set built from
    ``texts``: doc vectors and text lengths, and labels — ``labels`` as given (e.g. reviewers'
    labels, counted under ``label_model``), else predicted by ``model_dir``'s model.

    Raises:
        ValueError: no text, or ``labels`` not one per text.
    """
    import numpy as np

    from conveyor.processors.embed import embed_texts_as_documents
    from conveyor.processors.embed.model import MiniLMEmbedder
    from conveyor.streams.drift.aggregate import WindowAggregate
    from conveyor.streams.drift.config import DriftConfig

    if not texts:
        raise ValueError("no text to build a reference from")
    if labels is not None and len(labels) != len(texts):
        raise ValueError(f"{len(labels)} labels for {len(texts)} texts")
    embedder = MiniLMEmbedder()
    vectors = embed_texts_as_documents(embedder, texts)
    model_name = label_model
    if labels is None and model_dir is not None:
        from conveyor.processors.classify.doc_cues import reads_cues, texts_cue_matrix
        from conveyor.processors.classify.models import OnnxClassifier

        clf = OnnxClassifier.load(model_dir)
        features = np.asarray(vectors, dtype=np.float32)
        if reads_cues(clf.manifest):  # the document-type model reads the function cues too
            features = np.hstack([features, texts_cue_matrix(list(texts), embedder.tokenizer)])
        labels, model_name = clf.predict(features), clf.name
    monitor = DriftConfig.from_settings(settings).monitor()
    now = int(time.time() * 1000)
    agg = WindowAggregate(now, now + 1, capacity=monitor.reference_sample)
    for i, (text, vec) in enumerate(zip(texts, vectors)):
        agg.add_embedding(vec, len(text), None, f"reference:{i}:{text}")
        if labels is not None:
            agg.add_prediction(model_name, labels[i])
    monitor.set_reference(agg, source="set")
    return monitor.export_references()


@reference_group.command("pin")
@click.option("--windows", type=int, default=None,
              help="Pin the running worker's last N closed windows (default: its reference window count).")
@click.option("--texts", "csv_file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Build the reference from this CSV's texts instead.")
@click.option("--text-column", default="text", show_default=True)
@click.option("--limit", type=int, default=None, help="At most N texts.")
@click.option("--model", "model_dir", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Classifier directory (manifest.json + model.onnx) for the label reference.")
@click.option("--feedback", "feedback_model", type=click.Choice(["doctype", "intent-banking77"]), default=None,
              help="Build the reference from the inputs reviewers accepted or corrected for this model, "
                   "with the reviewers' labels.")
@click.option("--timeout", default=30.0, show_default=True, help="Seconds to wait for the worker's answer.")
def pin(windows: Optional[int], csv_file: Optional[Path], text_column: str, limit: Optional[int],
        model_dir: Optional[Path], feedback_model: Optional[str], timeout: float) -> None:
    """Pin a reference: recent windows of the running worker, a set of texts, or the inputs
    reviewers decided (``--feedback``)."""
    settings = _settings()
    store = _store(settings)
    try:
        if feedback_model is not None:
            texts, labels = feedback_texts(settings, feedback_model)
            try:
                export = reference_from_texts(settings, texts[:limit] if limit else texts,
                                              labels=labels[:limit] if limit else labels, label_model=feedback_model)
            except ValueError as exc:
                raise click.ClickException(f"--feedback {feedback_model}: {exc}") from None
            store.publish_reference(export, f"pin --feedback {feedback_model} ({len(texts)} reviewed inputs)")
            latest, _ = store.read_latest(timeout)
            _echo({"pinned": "feedback", "model": feedback_model, "inputs": len(texts), **ref_store.summary(latest)})
            return
        if csv_file is not None:
            texts = _read_texts(csv_file, text_column, limit)
            try:
                export = reference_from_texts(settings, texts, model_dir)
            except ValueError as exc:
                raise click.ClickException(str(exc)) from None
            store.publish_reference(export, f"pin --texts {csv_file.name} ({len(texts)} texts)")
            latest, _ = store.read_latest(timeout)
            _echo({"pinned": "texts", "texts": len(texts), **ref_store.summary(latest)})
            return
        _, end = store.read_latest(timeout)
        store.follow(end)
        cmd = store.publish_command("pin", windows)
        deadline = time.monotonic() + timeout
        answer = None
        while answer is None and time.monotonic() < deadline:
            for key, obj in store.poll():
                if key == ref_store.REFERENCE_KEY and obj.get("reason") == f"pin {cmd['id']}":
                    answer = obj
            time.sleep(0.2)
        if answer is None:
            _echo({"pinned": False, "command": cmd,
                   "error": f"no drift worker answered within {timeout:.0f} s (only a running worker applies pin)"})
            sys.exit(1)
        _echo({"pinned": "windows", "command": cmd, **ref_store.summary(answer)})
    finally:
        store.close()


@reference_group.command("reset")
def reset() -> None:
    """Forget the stored reference; the worker learns a new one from its next windows."""
    store = _store(_settings())
    try:
        store.publish_reference({"version": 1, "window_ms": None, "signals": {}}, "reset (cli)")
    finally:
        store.close()
    _echo({"reset": True})
