"""The review web application (FastAPI, Jinja2 templates, served by uvicorn).

Routes (all but ``/healthz`` need a reviewer's HTTP basic auth):

=====================================  ===================================================
``GET /``                              the queue: waiting items, filters ``reason``, ``label``,
                                       ``min_age_h``, ``max_age_h`` (hours)
``GET /api/queue``                     the same as JSON
``GET /items/{doc_id}``                one item: pages with field boxes, OCR text, label,
                                       alternatives, confidence, reasons, near-duplicates
``GET /items/{doc_id}/pages/{n}.png``  page ``n`` of the document
``POST /items/{doc_id}/decision``      form: ``action`` (accept | correct | duplicate),
                                       ``version``, ``label``, ``field.<name>``, ``duplicate_of``,
                                       ``comment``
``GET /readyz`` / ``/healthz``         ready once the topics were read to their end / alive
``GET /metrics``                       Prometheus: queue size, review rate, decisions
=====================================  ===================================================

Errors are 4xx with one clear line and change nothing: 401 without valid credentials, 403 a
cross-site form post (another site's page submitting with the reviewer's browser), 404
unknown doc id, 409 stale version or already decided otherwise, 413 body over
:data:`MAX_BODY_BYTES`, 422 unknown action, label or field, or a value too long; 503 when the
decision could not be committed to Kafka (nothing written; submit again).
"""
from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Iterator
from importlib.resources import files
from typing import Any, Optional

from confluent_kafka import KafkaException
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.security import HTTPBasic, HTTPBasicCredentials
from fastapi.templating import Jinja2Templates
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.concurrency import run_in_threadpool

from conveyor.review.feedback import EDITABLE_FIELDS, Decision, DecisionError, FeedbackWriter, model_labels
from conveyor.review.pages import SourceReader
from conveyor.review.queue import ReviewItem, ReviewState, TopicTailer
from conveyor.review.settings import ReviewSettings
from conveyor.streams.config.settings import Settings

MAX_BODY_BYTES = 64 * 1024
"""Largest decision request accepted (413 above)."""


class ReviewMetrics:
    """The app's Prometheus metrics, in their own registry.

    ``conveyor_review_waiting`` (items waiting), ``conveyor_review_rate`` (share of the
    namespace's predictions routed to review, 0..1), ``conveyor_review_decisions_total{action}``.
    """

    def __init__(self, namespace: str):
        self.registry = CollectorRegistry()
        self.waiting = Gauge("conveyor_review_waiting", "Predictions routed to review that wait for a decision",
                             ["namespace"], registry=self.registry).labels(namespace)
        self.rate = Gauge("conveyor_review_rate", "Share of predictions routed to review (0..1)",
                          ["namespace"], registry=self.registry).labels(namespace)
        self.decisions = Counter("conveyor_review_decisions_total", "Review decisions written by this app",
                                 ["namespace", "action"], registry=self.registry)
        self.namespace = namespace


def _field_values(item: ReviewItem) -> dict[str, str]:
    fields = item.prediction.get("fields") or {}
    values = {name: fields.get(name) or "" for name in EDITABLE_FIELDS if name not in ("dates", "parties")}
    values["dates"] = ", ".join(fields.get("dates") or [])
    values["parties"] = "; ".join(fields.get("parties") or [])
    return values


def decision_from_form(item: ReviewItem, form: dict[str, str]) -> Decision:
    """The :class:`Decision` a submitted form says; a ``correct`` keeps only the label and
    fields that differ from the prediction.

    Raises:
        DecisionError: a ``field.<name>`` that is not an editable field, no version.
    """
    current = _field_values(item)
    fields = []
    for key, value in form.items():
        if not key.startswith("field."):
            continue
        name = key[len("field."):]
        if name not in EDITABLE_FIELDS:
            raise DecisionError(f"unknown field {name!r}: one of {', '.join(EDITABLE_FIELDS)}")
        value = value.strip()
        if value != current.get(name, ""):
            fields.append((name, value))
    if not form.get("version"):
        raise DecisionError("version missing: reload the item")
    label = (form.get("label") or "").strip() or None
    return Decision(action=form.get("action", ""), version=form["version"],  # type: ignore[arg-type]  # validate() checks it
                    label=label if label != item.prediction["label"] else None,
                    fields=tuple(sorted(fields)), duplicate_of=(form.get("duplicate_of") or "").strip() or None,
                    comment=(form.get("comment") or "").strip() or None)


def create_app(settings: Settings, review: ReviewSettings, state: ReviewState, writer: FeedbackWriter,
               reader: SourceReader, tailer: Optional[TopicTailer] = None) -> FastAPI:
    """The FastAPI app over ``state`` (fed by ``tailer``), writing with ``writer``."""
    app = FastAPI(title="Conveyor review", docs_url=None, redoc_url=None, openapi_url=None)
    templates = Jinja2Templates(directory=str(files("conveyor.review") / "templates"))
    basic = HTTPBasic(realm=f"Conveyor review ({settings.namespace})")
    metrics = ReviewMetrics(settings.namespace)

    def reviewer(credentials: HTTPBasicCredentials = Depends(basic)) -> str:
        if not review.check(credentials.username, credentials.password):
            raise HTTPException(401, "wrong reviewer name or password", headers={"WWW-Authenticate": "Basic"})
        return credentials.username

    def item_or_404(doc_id: str) -> ReviewItem:
        item = state.item(doc_id)
        if item is None:
            raise HTTPException(404, f"no prediction routed to review has doc id {doc_id!r}")
        return item

    def queue(reason: Optional[str], label: Optional[str], min_age_h: Optional[str],
              max_age_h: Optional[str]) -> list[ReviewItem]:
        low, high = _hours(min_age_h, "min_age_h"), _hours(max_age_h, "max_age_h")
        return state.waiting(reason=reason or None, label=label or None,
                             min_age_s=low * 3600 if low is not None else None,
                             max_age_s=high * 3600 if high is not None else None)

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        return {"alive": True}

    @app.get("/readyz")
    def readyz() -> JSONResponse:
        ready = tailer is None or (tailer.caught_up.is_set() and tailer.error is None)
        return JSONResponse({"ready": ready, "error": tailer.error if tailer else None}, status_code=200 if ready else 503)

    @app.get("/metrics")
    def prometheus(_: str = Depends(reviewer)) -> Response:
        counts = state.counts()
        metrics.waiting.set(counts["waiting"])
        metrics.rate.set(counts["review_rate"])
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/api/queue")
    def api_queue(reason: Optional[str] = None, label: Optional[str] = None, min_age_h: Optional[str] = None,
                  max_age_h: Optional[str] = None, _: str = Depends(reviewer)) -> dict[str, Any]:
        items = queue(reason, label, min_age_h, max_age_h)
        return {"counts": state.counts(),
                "items": [{"doc_id": i.doc_id, "version": i.version, "label": i.prediction["label"],
                           "confidence": i.prediction["confidence"], "reasons": i.prediction.get("reasons", []),
                           "seen_ms": i.seen_ms, "filename": i.prediction.get("filename")} for i in items]}

    @app.get("/", response_class=HTMLResponse)
    def index(request: Request, reason: Optional[str] = None, label: Optional[str] = None,
              min_age_h: Optional[str] = None, max_age_h: Optional[str] = None,
              decided: Optional[str] = None, who: str = Depends(reviewer)) -> HTMLResponse:
        items = queue(reason, label, min_age_h, max_age_h)
        everything = state.waiting()
        reasons = sorted({reason_kind(r) for i in everything for r in i.prediction.get("reasons", [])})
        labels = sorted({i.prediction["label"] for i in everything})
        now = time.time() * 1000
        return templates.TemplateResponse(request, "queue.html", {
            "ns": settings.namespace, "who": who, "items": items, "counts": state.counts(), "now_ms": now,
            "reasons": reasons, "labels": labels, "decided": decided,
            "filters": {"reason": reason or "", "label": label or "", "min_age_h": min_age_h or None,
                        "max_age_h": max_age_h or None}})

    @app.get("/items/{doc_id}", response_class=HTMLResponse)
    def item_page(request: Request, doc_id: str, who: str = Depends(reviewer)) -> HTMLResponse:
        item = item_or_404(doc_id)
        extracted = reader.record("extracted", doc_id)
        text = reader.record("texts", doc_id) if extracted is None else None
        fields = item.prediction.get("fields") or {}
        evidence = fields.get("evidence") or []
        pages = []
        for page in (extracted or {}).get("pages", []):
            n = page["page_number"]
            marks = {e["line"]: e["field"] for e in evidence if e["page"] == n and e["line"] >= 0}
            pages.append({"number": n, "method": page["method"],
                          "lines": [(line, marks.get(i)) for i, line in enumerate(page["text"].split("\n"))],
                          "boxes": [e for e in evidence if e["page"] == n and e.get("bbox")]})
        duplicates = [{"doc_id": d["doc_id"], "score": d["score"], "in_queue": state.item(d["doc_id"]) is not None}
                      for d in item.prediction.get("duplicates", [])]
        labels = model_labels(item.prediction["model_name"]) or tuple(
            sorted({item.prediction["label"], *(t["label"] for t in item.prediction.get("top_labels", []))}))
        return templates.TemplateResponse(request, "item.html", {
            "ns": settings.namespace, "who": who, "item": item, "p": item.prediction, "pages": pages,
            "is_document": item.prediction.get("kind") == "document", "text": (text or {}).get("text"),
            "values": _field_values(item), "confidence": fields.get("confidence") or {},
            "withheld": fields.get("withheld") or {}, "duplicates": duplicates, "labels": labels,
            "editable": EDITABLE_FIELDS})

    @app.get("/items/{doc_id}/pages/{page}.png")
    def page_png(doc_id: str, page: int, _: str = Depends(reviewer)) -> Response:
        item_or_404(doc_id)
        try:
            return Response(reader.page_png(doc_id, page), media_type="image/png",
                            headers={"Cache-Control": "private, max-age=3600"})
        except LookupError as exc:
            raise HTTPException(404, str(exc)) from None
        except Exception as exc:  # noqa: BLE001 - blob gone, bytes that no longer decode: say so, don't 500
            raise HTTPException(404, f"page {page} of {doc_id} cannot be shown: {type(exc).__name__}: {exc}") from None

    @app.post("/items/{doc_id}/decision")
    async def decide(request: Request, doc_id: str, who: str = Depends(reviewer)) -> Response:
        if _cross_site(request):
            raise HTTPException(403, "cross-site request refused: decisions come from the review app's own pages")
        size = request.headers.get("content-length")
        if size is None or not size.isdigit() or int(size) > MAX_BODY_BYTES:
            raise HTTPException(413, f"a decision is at most {MAX_BODY_BYTES} bytes with a Content-Length")
        form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
        item = item_or_404(doc_id)
        try:
            decision = decision_from_form(item, form)
            record, written = await run_in_threadpool(writer.submit, doc_id, decision, who)
        except DecisionError as exc:
            raise HTTPException(exc.status, str(exc)) from None
        except KafkaException as exc:  # not committed: nothing was written, the reviewer may submit again
            raise HTTPException(503, f"the decision could not be recorded, nothing was written; try again ({exc})",
                                headers={"Retry-After": "5"}) from None
        if written:
            metrics.decisions.labels(settings.namespace, record["action"]).inc()
        if "text/html" in request.headers.get("accept", ""):
            return RedirectResponse(f"/?decided={doc_id}", status_code=303)
        return JSONResponse({"decision_id": record["decision_id"], "written": written, "action": record["action"],
                             "label": record["label"], "corrected_fields": record["corrected_fields"]},
                            status_code=201 if written else 200)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        headers = getattr(exc, "headers", None)
        if "text/html" in request.headers.get("accept", "") and exc.status_code != 401:
            return HTMLResponse(f"<!doctype html><title>{exc.status_code}</title><p>{exc.status_code}: "
                                f"{_escape(str(exc.detail))}</p><p><a href='/'>back to the queue</a></p>",
                                status_code=exc.status_code, headers=headers)
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=headers)

    return app


def reason_kind(reason: str) -> str:
    """A routing reason without its particulars, for the queue's filter list:
    ``'not validated for auto routing (confidence 0.86)'`` → ``'not validated for auto routing'``,
    ``'out_of_scope: distance 4000 > 3627'`` → ``'out_of_scope'``."""
    return re.sub(r"\s*\(.*\)\s*$", "", reason.split(":")[0]).strip()


def _hours(value: Optional[str], name: str) -> Optional[float]:
    """A filter's age in hours; blank (an empty form field) is no filter.

    Raises:
        HTTPException: 422 when it is not a number ≥ 0.
    """
    if value is None or not value.strip():
        return None
    try:
        hours = float(value)
    except ValueError:
        hours = -1.0
    if not hours >= 0:
        raise HTTPException(422, f"{name} must be a number of hours >= 0, not {value!r}")
    return hours


def _cross_site(request: Request) -> bool:
    """Whether a browser says the request comes from another site (``Sec-Fetch-Site``, or an
    ``Origin`` whose host is not this one): the defence against cross-site request forgery of the
    OWASP CSRF cheat sheet ("verifying origin with standard headers"); clients that send neither
    (scripts with the reviewer's credentials) are not browsers being tricked."""
    from urllib.parse import urlsplit

    if request.headers.get("sec-fetch-site") == "cross-site":
        return True
    origin = request.headers.get("origin")
    return bool(origin) and urlsplit(origin).netloc != request.headers.get("host")


def _escape(text: str) -> str:
    from markupsafe import escape

    return str(escape(text))


@contextlib.contextmanager
def serving(settings: Settings, review: ReviewSettings, *, ready_timeout: float = 120.0) -> Iterator[str]:
    """Run the review app (tailer, writer, uvicorn in a thread) and yield its base URL;
    stops everything on exit.

    Raises:
        TimeoutError: the topics were not read to their end within ``ready_timeout`` seconds.
        RuntimeError: the server did not start (e.g. the port is taken).
    """
    import uvicorn

    state = ReviewState()
    tailer = TopicTailer(settings, state).start()
    writer = FeedbackWriter(settings, state)
    app = create_app(settings, review, state, writer, SourceReader(settings, state), tailer)
    server = uvicorn.Server(uvicorn.Config(app, host=review.addr, port=review.port, log_level="warning",
                                           limit_concurrency=64, timeout_keep_alive=5))
    thread = threading.Thread(target=server.run, name="review-http", daemon=True)
    try:
        if not tailer.wait_caught_up(ready_timeout):
            raise TimeoutError(f"the topics of {settings.namespace} were not read within {ready_timeout:.0f}s"
                               + (f": {tailer.error}" if tailer.error else ""))
        thread.start()
        deadline = time.monotonic() + 30
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the review app did not start on {review.addr}:{review.port}")
            time.sleep(0.05)
        port = server.servers[0].sockets[0].getsockname()[1] if review.port == 0 else review.port
        yield f"http://{review.addr}:{port}"
    finally:
        server.should_exit = True
        if thread.is_alive():
            thread.join(10)
        tailer.stop()
        writer.close()

