"""The main job, end to end: stack → topics → processors → inputs → results → summary.

Each demo run uses its own namespace (``demo<timestamp>``) unless
``CONVEYOR_NAMESPACE`` is set, so re-running it never mixes with earlier
results (or flags the same files as duplicates of the previous run).
"""
from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Optional

import click
from tqdm import tqdm

from conveyor.streams.config import env
from conveyor.streams.config.settings import Settings
from conveyor.streams.kafka.admin import create_topics
from conveyor.streams.kafka.io import InputProducer, iter_files, read_texts_csv
from conveyor.streams.runtime.supervisor import Supervisor, process_groups
from conveyor.tools.accounting import Ledger, collect

CORPUS = Path(__file__).resolve().parent / "corpus"
"""The shipped demo corpus: receipts, invoices, tax/other forms, damaged files, banking77 texts."""


def demo_settings(settings: Settings, environ=os.environ) -> Settings:
    """``settings`` with a fresh ``demo<timestamp>`` namespace unless CONVEYOR_NAMESPACE is set."""
    if environ.get(env.NAMESPACE):
        return settings
    return dataclasses.replace(settings, namespace=time.strftime("demo%Y%m%d%H%M%S"))


def count_milvus_rows(settings: Settings, doc_ids: set[str]) -> int:
    """Rows in the namespace's Milvus collection (must be called with no other process on a Lite file)."""
    from conveyor.sinks.milvus import MilvusSink

    sink = MilvusSink(uri=settings.milvus_uri, token=settings.milvus_token_value(),
                      collection=settings.milvus_collection)
    try:
        return sink.count()
    finally:
        sink.close()


def _fields_line(fields: Optional[dict]) -> str:
    if not fields:
        return ""
    conf = fields.get("confidence") or {}
    parts = []
    for name, label in (("vendor", "vendor"), ("vendor_address", "address"), ("dates", "date"), ("time", "time"),
                        ("total_amount", "total"), ("net_amount", "net"), ("tax_amount", "tax"), ("currency", "currency"),
                        ("document_number", "no"), ("due_date", "due"), ("supplier_tax_id", "tax id"),
                        ("iban", "iban"), ("customer", "customer"), ("payment_method", "paid by"),
                        ("parties", "parties"), ("effective_date", "effective")):
        value = fields.get(name)
        value = value[0] if name == "dates" and value else value
        if value:
            shown = repr(value) if name in ("vendor", "vendor_address", "customer", "parties") else value
            parts.append(f"{label}={shown}" + (f" ({conf[name]:.2f})" if name in conf else ""))
    return ", ".join(parts)


def _withheld_lines(fields: Optional[dict]) -> list[str]:
    """One line per field left empty for low confidence: the field and why."""
    return [f"empty {name}: {reason}" for name, reason in ((fields or {}).get("withheld") or {}).items()]


def summarize(ledger: Ledger, docs: dict[str, str], texts: dict[str, str], *, milvus_rows: int,
              doc_seconds: float, text_seconds: float, echo=click.echo) -> dict:
    """Print the human summary and return the totals as a dict."""
    echo("\n=== Documents " + "=" * 60)
    for doc_id, name in sorted(docs.items(), key=lambda kv: kv[1]):
        preds = ledger.predictions.get(doc_id, [])
        dls = ledger.dead_letters.get(doc_id, [])
        if preds:
            p = preds[0]
            echo(f"{name:40s} {p['label']:9s} {p['confidence']:.2f}  {p['routing']:6s} {_fields_line(p.get('fields'))}")
            for line in _withheld_lines(p.get("fields")):
                echo(f"{'':40s}   {line}")
            for reason in p.get("reasons") or []:
                echo(f"{'':40s}   reason: {reason}")
            for dup in p.get("duplicates") or []:
                echo(f"{'':40s}   duplicate of {docs.get(dup['doc_id'], dup['doc_id'])} (cosine {dup['score']:.3f})")
        for d in dls:
            echo(f"{name:40s} DEAD LETTER ({d['processor']}): {d['exception'].rsplit('.', 1)[-1]}: {d['reason']}")
        if not preds and not dls:
            echo(f"{name:40s} UNACCOUNTED")
    echo("\n=== Texts (first 15) " + "=" * 53)
    for doc_id, text in list(texts.items())[:15]:
        preds = ledger.predictions.get(doc_id, [])
        res = f"{preds[0]['label']} ({preds[0]['confidence']:.2f}, {preds[0]['routing']})" if preds else "-"
        echo(f"{text[:60]:62s} {res}")
    text_preds = [ledger.predictions[i][0] for i in texts if i in ledger.predictions]
    auto = sum(p["routing"] == "auto" for p in text_preds)
    doc_preds = [ledger.predictions[i][0] for i in docs if i in ledger.predictions]
    totals = {
        "inputs": len(docs) + len(texts), "documents": len(docs), "texts": len(texts),
        "predictions": sum(len(v) for v in ledger.predictions.values()),
        "dead_letters": sum(len(v) for v in ledger.dead_letters.values()),
        "index_dead_letters": sum(len(v) for v in ledger.side_dead_letters.values()),
        "unaccounted": len(ledger.missing), "duplicated_results": len(ledger.duplicated),
        "milvus_rows": milvus_rows,
        "documents_auto_routed": sum(p["routing"] == "auto" for p in doc_preds),
        "texts_auto_routed": auto,
        "docs_per_s": round(len(docs) / doc_seconds, 3) if doc_seconds else None,
        "texts_per_s": round(len(texts) / text_seconds, 2) if text_seconds else None,
    }
    echo("\n=== Totals " + "=" * 63)
    for k, v in totals.items():
        echo(f"{k:20s} {v}")
    echo("(docs/s and texts/s: from the first record produced to the last result of that kind, "
         "processor start-up and model loading included)")
    return totals


def review_line(settings: Settings, ledger: Ledger, environ=os.environ) -> str:
    """The review queue's URL, how many of this run's results wait there, and how to open it."""
    from conveyor.review.settings import DEFAULT_PORT

    waiting = sum(1 for preds in ledger.predictions.values() if preds and preds[0]["routing"] == "review")
    addr, port = environ.get(env.REVIEW_ADDR) or "127.0.0.1", environ.get(env.REVIEW_PORT) or DEFAULT_PORT
    return (f"review queue:      http://{addr}:{port}/ — {waiting} items wait there; serve it with "
            f"CONVEYOR_NAMESPACE={settings.namespace} {env.REVIEW_USERS}=<name>:<password> conveyor review")


def run_demo(settings: Settings, *, n_texts: int = 200, timeout: float = 900.0, corpus: Path = CORPUS) -> bool:
    """Run the main job; return True when every input is accounted for exactly once.

    The stack is left running afterwards (``conveyor stack down`` stops it), so the
    results can be read with ``conveyor consume``.
    """
    from conveyor.tools.stack import up

    settings = demo_settings(settings)
    click.echo(f"namespace: {settings.namespace}", err=True)
    click.echo("starting the local stack (first run downloads Kafka and Apicurio from Maven Central)...", err=True)
    up(settings, log=lambda m: click.echo(m, err=True))
    create_topics(settings)
    log_dir = settings.home / "logs" / settings.namespace
    supervisor = Supervisor(settings, process_groups(settings), log_dir=log_dir)
    supervisor.start()
    click.echo(f"processors started (logs in {log_dir})", err=True)
    docs: dict[str, str] = {}
    texts: dict[str, str] = {}
    t0 = time.monotonic()
    try:
        with InputProducer(settings) as producer:
            files = [p for p, err in iter_files([corpus]) if err is None and p.suffix != ".csv"]
            for path in tqdm(files, desc="produce documents", unit="doc"):
                docs[producer.document(path)["doc_id"]] = path.relative_to(corpus).as_posix()
            csv_path = corpus / "texts" / "banking77_sample.csv"
            rows = list(read_texts_csv(csv_path, "text", None, n_texts))
            for _, text in tqdm(rows, desc="produce texts", unit="text"):
                texts[producer.text(text, source=csv_path.name)["doc_id"]] = text
        expected = set(docs) | set(texts)
        with tqdm(total=len(expected), desc="results", unit="input") as bar:
            ledger = collect(settings, expected, timeout=timeout, on_progress=bar.update, on_idle=supervisor.check)
    finally:
        codes = supervisor.stop()
        click.echo(f"processors stopped: {json.dumps(codes)}", err=True)
    doc_done = [ledger.first_seen[i] for i in docs if i in ledger.first_seen]
    text_done = [ledger.first_seen[i] for i in texts if i in ledger.first_seen]
    milvus_rows = count_milvus_rows(settings, expected)
    totals = summarize(ledger, docs, texts, milvus_rows=milvus_rows,
                       doc_seconds=(max(doc_done) - t0) if doc_done else 0.0,
                       text_seconds=(max(text_done) - t0) if text_done else 0.0)
    out = settings.home / "demo-summary.json"
    out.write_text(json.dumps({"namespace": settings.namespace, **totals}, indent=2))
    click.echo(f"\nsummary written to {out}")
    click.echo(f"read the results:  CONVEYOR_NAMESPACE={settings.namespace} conveyor consume predictions "
               f"--from-beginning\nread dead letters: CONVEYOR_NAMESPACE={settings.namespace} conveyor dlq list")
    click.echo(review_line(settings, ledger))
    ok = not ledger.missing and not ledger.duplicated
    if not ok:
        click.echo(f"FAILED: {len(ledger.missing)} inputs unaccounted, {len(ledger.duplicated)} with duplicate results",
                   err=True)
    return ok
