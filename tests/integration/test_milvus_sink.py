"""Integration tests of :class:`conveyor.sinks.milvus.MilvusSink` against real Milvus (no mocks).

Each sink test runs twice: on a Milvus Lite file under ``tmp_path`` and on a real
Milvus 2.3.5 standalone server (PyPI ``milvus`` package) started once per module.

The server launcher needs two adjustments to run beside other Milvus instances and
to restart in place (both through its config API, nothing is patched):

* its embedded etcd listens on the fixed ports 2379/2380 unless given an etcd
  config file, so a second server on the same machine dies (and ``start()`` then
  waits 180 s for a dead process): we add ``etcd.config.path`` to the template
  with free ports;
* its port probe binds without ``SO_REUSEADDR``, so the proxy port is "busy" for
  60 s (TIME_WAIT) after a stop and a restart would move to another port: our
  config subclass probes with ``SO_REUSEADDR`` (Milvus itself binds that way).

The server parameter is skipped, with the reason, only when the server cannot
start here (no ``milvus`` package, not Linux x86-64, or the process exits).
"""
from __future__ import annotations

import logging
import math
import platform
import random
import socket
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Optional
from uuid import uuid4

import grpc
import pytest
from pymilvus.exceptions import MilvusException, ParamError

from conveyor.sinks.base import SinkBackpressureError
from conveyor.sinks.milvus import MilvusSink, MilvusUnavailableError
from conveyor.sinks.milvus_errors import is_unavailable, redact_uri
from conveyor.sinks.milvus_rows import VECTOR_DIM, chunk_rows, row_nbytes
from conveyor.streams.runtime.stages import SinkRows
from tests.ports import server_port

log = logging.getLogger(__name__)

SERVER_START_TIMEOUT = 150.0


# -- the Milvus 2.3.5 server -----------------------------------------------------------
def _free_port() -> int:
    """A free port below the ephemeral range, so a restarted server gets its port back."""
    return server_port()


@dataclass
class MilvusServerHandle:
    """A running Milvus standalone server of this test module."""

    server: object
    port: int
    base_dir: Path
    start_seconds: float

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.stop()

    def start(self) -> float:
        """(Re)start on the same proxy port; returns seconds until it serves."""
        self.server.config.update(proxy_port=self.port)  # explicit: fail rather than move
        return _start_and_wait(self.server)

    def log_tail(self, n: int = 15) -> str:
        lines = []
        for name in ("milvus-stderr.log", "milvus-stdout.log"):
            path = self.base_dir / "server" / "logs" / name
            if path.exists():
                lines += path.read_text(errors="replace").splitlines()[-n:]
        return "\n".join(lines)


def _start_and_wait(server, timeout: float = SERVER_START_TIMEOUT) -> float:
    """Start ``server`` and wait until its health check is OK and a client connects.

    Raises:
        RuntimeError: the process exited. TimeoutError: not ready in ``timeout`` s.
    """
    from pymilvus import MilvusClient

    started = time.monotonic()
    server.start()  # wait_for_started=False: the launcher's own wait ignores a dead process
    health = f"http://127.0.0.1:{server.webservice_port}/healthz"
    uri = f"http://127.0.0.1:{server.listen_port}"
    while time.monotonic() - started < timeout:
        proc = server.server_proc
        if proc is None or proc.poll() is not None:
            raise RuntimeError(f"milvus exited with {None if proc is None else proc.returncode}")
        try:
            with urllib.request.urlopen(health, timeout=2) as resp:
                if b"OK" in resp.read():
                    client = MilvusClient(uri=uri, timeout=5, dedicated=True)
                    try:
                        client.list_collections()
                    finally:
                        client.close()
                    return time.monotonic() - started
        except Exception:  # noqa: BLE001 - not up yet
            pass
        time.sleep(0.25)
    raise TimeoutError(f"milvus not ready in {timeout:.0f}s")


def _make_server(base: Path):
    import milvus
    from milvus import MilvusServer, MilvusServerConfig

    class ReuseAddrConfig(MilvusServerConfig):
        def try_bind_port(self, port):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
                sock.listen()
                return sock
            except OSError:
                sock.close()
                return None

    assert milvus.__version__ == "2.3.5", milvus.__version__
    client_port, peer_port = _free_port(), _free_port()
    etcd_config = base / "etcd.yaml"
    etcd_config.write_text(
        "name: conveyor-test\n"
        f"listen-client-urls: http://127.0.0.1:{client_port}\n"
        f"advertise-client-urls: http://127.0.0.1:{client_port}\n"
        f"listen-peer-urls: http://127.0.0.1:{peer_port}\n"
        f"initial-advertise-peer-urls: http://127.0.0.1:{peer_port}\n"
        f"initial-cluster: conveyor-test=http://127.0.0.1:{peer_port}\n"
    )
    config = ReuseAddrConfig()
    anchor = "  use:\n    embed: true"
    if anchor not in config.template_text:
        raise RuntimeError("unexpected milvus config template (no etcd.use.embed)")
    config.template_text = config.template_text.replace(
        anchor, f"  config:\n    path: {etcd_config}\n{anchor}", 1)
    config.set("etcd_port", client_port)
    server = MilvusServer(config, wait_for_started=False)
    server.set_base_dir(str(base / "server"))
    server.listen_port = _free_port()
    return server


def start_server(base: Path) -> MilvusServerHandle:
    """Start a Milvus 2.3.5 server under ``base`` and wait until it answers.

    Raises:
        RuntimeError: it did not start (the message ends with its log tail); it is stopped.
    """
    server = _make_server(base)
    handle = MilvusServerHandle(server, 0, base, 0.0)
    try:
        handle.start_seconds = _start_and_wait(server)
    except (RuntimeError, TimeoutError, OSError) as exc:
        tail = handle.log_tail()
        server.stop()
        raise RuntimeError(f"{exc}\n{tail}") from exc
    handle.port = server.listen_port
    return handle


@pytest.fixture(scope="module")
def milvus_server(tmp_path_factory) -> MilvusServerHandle:
    """A Milvus 2.3.5 standalone server (binary unpacked from the wheel, nothing
    downloaded), stopped at teardown. Its start time is logged and printed."""
    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64"):
        pytest.skip(f"the milvus==2.3.5 wheel ships a Linux x86-64 binary only, not {platform.machine()}")
    try:
        import milvus  # noqa: F401 - only whether it imports
    except ImportError:
        pytest.skip("PyPI package milvus==2.3.5 is not installed (pip install -e .[test])")
    try:
        handle = start_server(tmp_path_factory.mktemp("milvus-server"))
    except RuntimeError as exc:
        pytest.skip(f"Milvus 2.3.5 server cannot start on this machine: {exc}")
    server = handle.server
    msg = f"Milvus 2.3.5 server started in {handle.start_seconds:.1f}s on port {handle.port}"
    log.warning(msg)
    print(f"\n{msg}")
    try:
        yield handle
    finally:
        server.stop()


@dataclass
class Backend:
    kind: str  # "lite" or "server"
    uri: str
    server: Optional[MilvusServerHandle] = None


@pytest.fixture(params=["lite", "server"])
def backend(request, tmp_path) -> Backend:
    if request.param == "lite":
        return Backend("lite", str(tmp_path / "milvus" / "conveyor.db"))
    server = request.getfixturevalue("milvus_server")
    return Backend("server", server.uri, server)


class SinkFactory:
    """``factory(**kwargs)`` → a :class:`MilvusSink` on ``uri``; all sinks share one fresh,
    uniquely named collection unless ``collection`` is given. :meth:`cleanup` drops and closes them."""

    def __init__(self, uri: str):
        self.uri = uri
        self.collection = f"t_{uuid4().hex[:12]}"
        self.sinks: list[MilvusSink] = []

    def __call__(self, **kwargs) -> MilvusSink:
        kwargs.setdefault("uri", self.uri)
        kwargs.setdefault("collection", self.collection)
        sink = MilvusSink(**kwargs)
        self.sinks.append(sink)
        return sink

    def cleanup(self) -> None:
        for sink in self.sinks:
            try:
                sink.drop()
            except Exception:  # noqa: BLE001 - best-effort cleanup
                pass
            sink.close()


@pytest.fixture
def make_sink(backend):
    """``make_sink(**kwargs)`` → a sink on the parametrised backend; dropped after."""
    factory = SinkFactory(backend.uri)
    yield factory
    factory.cleanup()


# -- rows --------------------------------------------------------------------------------
def _unit(values: list[float]) -> list[float]:
    norm = math.sqrt(sum(v * v for v in values))
    return [v / norm for v in values]


def _random_vector(rng: random.Random) -> list[float]:
    return _unit([rng.gauss(0.0, 1.0) for _ in range(VECTOR_DIM)])


def _embedded(doc_id: str, vectors: list[list[float]], kind: str = "document") -> dict:
    return {
        "doc_id": doc_id, "trace_id": f"trace-{doc_id}", "event_time": 1_700_000_000_000,
        "producer": "embed", "producer_version": "0.1.0", "kind": kind,
        "filename": f"{doc_id}.pdf" if kind == "document" else None,
        "text_length": 10, "ocr_confidence": None, "page_count": 1, "fields": None,
        "model_name": "m", "model_version": "1", "model_sha256": "0" * 64,
        "chunks": [{"chunk_id": f"{doc_id}:{i}", "chunk_index": i, "text": f"text {i:03d} of {doc_id}",
                    "token_count": 5, "vector": v} for i, v in enumerate(vectors)],
        "doc_vector": vectors[0],
    }


def _doc_rows(doc_id: str, n_chunks: int, seed: int, kind: str = "document") -> list[dict]:
    rng = random.Random(seed)
    return chunk_rows(_embedded(doc_id, [_random_vector(rng) for _ in range(n_chunks)], kind))


def _three_docs(n_chunks: int = 4) -> list[dict]:
    return [r for i, d in enumerate(("doc-a", "doc-b", "doc-c")) for r in _doc_rows(d, n_chunks, seed=i)]


# -- tests --------------------------------------------------------------------------------
def test_upsert_three_docs_counts(make_sink):
    sink = make_sink()
    rows = _three_docs(n_chunks=4)
    sink.write(rows)
    assert sink.buffered_rows == 12
    sink.flush()
    assert sink.buffered_rows == 0
    assert sink.count() == 12
    assert sink.count("doc-b") == 4
    assert sink.count("no-such-doc") == 0


def test_upserting_the_same_rows_again_is_idempotent(make_sink):
    sink = make_sink()
    rows = _three_docs(n_chunks=5)
    sink.write(rows)
    sink.flush()
    assert sink.count() == 15
    changed = [{**r, "text": r["text"] + " (re-processed)"} for r in rows]
    sink.write(changed)
    sink.flush()
    assert sink.count() == 15
    # The same chunk twice in one buffer: one row (Milvus 2.3.5 would store both
    # if one upsert request carried the key twice).
    sink.write(rows[:5])
    sink.write(changed[:5])
    assert sink.buffered_rows == 5
    sink.flush()
    assert sink.count() == 15
    assert sink.count("doc-a") == 5


def test_row_bound_triggers_early_flush(make_sink):
    sink = make_sink(max_batch_rows=5)
    rows = _doc_rows("doc-r", 12, seed=7)
    sink.write(rows[:4])
    assert sink.buffered_rows == 4
    assert sink.count() == 0
    sink.write(rows[4:])  # 12 buffered → two full requests of 5 go out now
    assert sink.buffered_rows == 2
    assert sink.count() == 10
    sink.flush()
    assert sink.buffered_rows == 0
    assert sink.count() == 12


def test_byte_bound_triggers_early_flush(make_sink):
    rows = _doc_rows("doc-y", 7, seed=8)
    sizes = {row_nbytes(r) for r in rows}
    assert len(sizes) == 1, sizes  # equal-sized rows make the split exact
    sink = make_sink(max_batch_bytes=3 * sizes.pop())
    sink.write(rows)
    assert sink.buffered_rows == 1  # 3 + 3 sent, 1 left below the bound
    assert sink.count() == 6
    sink.flush()
    assert sink.count() == 7


def test_search_similar_finds_near_duplicate_and_excludes_self(make_sink):
    sink = make_sink()
    rng = random.Random(42)
    base = [_random_vector(rng) for _ in range(3)]
    near = [_unit([x + rng.gauss(0.0, 0.002) for x in v]) for v in base]
    rows = chunk_rows(_embedded("orig", base))
    rows += chunk_rows(_embedded("copy", near))
    rows += chunk_rows(_embedded("text-copy", near, kind="text"))
    for d in range(5):
        rows += _doc_rows(f"other-{d}", 3, seed=100 + d)
    sink.write(rows)
    sink.flush()

    hits = sink.search_similar(base[0], kind="document", exclude_doc_id="orig", limit=5)
    assert hits[0][0] == "copy"
    assert hits[0][1] > 0.99
    assert "orig" not in dict(hits) and "text-copy" not in dict(hits)
    assert len({d for d, _ in hits}) == len(hits) <= 5  # one entry per document
    assert [s for _, s in hits] == sorted((s for _, s in hits), reverse=True)

    strict = sink.search_similar(base[0], kind="document", exclude_doc_id="orig", min_score=0.95)
    assert [d for d, _ in strict] == ["copy"]
    any_kind = sink.search_similar(base[0], exclude_doc_id="orig", min_score=0.95)
    assert sorted(d for d, _ in any_kind) == ["copy", "text-copy"]
    with_self = sink.search_similar(base[0], limit=1)
    assert with_self[0][0] == "orig" and with_self[0][1] == pytest.approx(1.0, abs=1e-4)
    with pytest.raises(ValueError):
        sink.search_similar([0.1] * 3)


def test_doc_ids_with_quotes_are_escaped(make_sink):
    sink = make_sink()
    tricky = 'inv "2024" \\ o\'brien'
    sink.write(_doc_rows(tricky, 2, seed=3) + _doc_rows("plain", 2, seed=4))
    sink.flush()
    assert sink.count(tricky) == 2
    hits = sink.search_similar(_doc_rows(tricky, 1, seed=3)[0]["vector"], exclude_doc_id=tricky)
    assert tricky not in dict(hits)


def test_existing_collection_with_other_dim_is_rejected(make_sink):
    sink = make_sink()
    sink.write(_doc_rows("doc-d", 1, seed=5))
    sink.flush()
    other = make_sink(collection=sink.collection, dim=8)
    with pytest.raises(ValueError, match="dim"):
        other.count()


def test_token_is_passed_and_never_logged(make_sink, caplog):
    token = "root:S3cr3t-Token-Value"  # auth is off on both backends: accepted and ignored
    caplog.set_level(logging.DEBUG)
    sink = make_sink(token=token)
    sink.write(_doc_rows("doc-t", 2, seed=6))
    sink.flush()
    assert sink.count() == 2
    assert token not in caplog.text and "S3cr3t" not in caplog.text
    assert "S3cr3t" not in repr(sink) and "S3cr3t" not in str(vars(sink))


def test_upsert_throughput(make_sink, backend):
    """Rows/s of write+flush with 500-row requests (384-d vectors, ~30-byte texts)."""
    rows = [r for d in range(25) for r in _doc_rows(f"bulk-{d:03d}", 200, seed=1000 + d)]  # 5000 rows
    sink = make_sink(max_batch_rows=500)
    sink.count()  # connect and create the collection outside the timing
    started = time.perf_counter()
    for i in range(0, len(rows), 500):
        sink.write(rows[i:i + 500])
    sink.flush()
    seconds = time.perf_counter() - started
    assert sink.count() == len(rows)
    rate = len(rows) / seconds
    print(f"\nupsert throughput [{backend.kind}]: {len(rows)} rows in {seconds:.2f}s = {rate:.0f} rows/s")
    log.warning("upsert throughput [%s]: %.0f rows/s", backend.kind, rate)


# -- unavailability ---------------------------------------------------------------------------
def _failed_flushes(sink: MilvusSink, attempts: int, *, buffered: int) -> list[SinkBackpressureError]:
    """Flush ``attempts`` times while Milvus is unreachable; each must raise backpressure and
    keep all ``buffered`` rows. Returns the raised errors (their ``retry_after`` in order)."""
    errors = []
    for _ in range(attempts):
        with pytest.raises(SinkBackpressureError) as info:
            sink.flush()
        errors.append(info.value)
        assert sink.buffered_rows == buffered
    return errors


def test_closed_port_backpressure_keeps_buffer_and_backs_off(caplog):
    port = _free_port()  # nothing listens there
    sink = MilvusSink(f"http://user:pw-secret@127.0.0.1:{port}", "tok-secret-123",
                      collection=f"t_{uuid4().hex[:12]}", timeout=2, backoff_initial=0.5, backoff_max=2.0)
    rows = _doc_rows("doc-x", 3, seed=9)
    sink.write(rows)  # below the bounds: nothing is sent yet
    errors = _failed_flushes(sink, 4, buffered=3)
    assert [e.retry_after for e in errors] == [0.5, 1.0, 2.0, 2.0]
    # An early upsert (bound reached in write) that meets the outage keeps the rows
    # and does not raise: the runner calls write() outside its backpressure loop.
    sink.max_batch_rows = 2
    sink.write(_doc_rows("doc-z", 2, seed=10))
    assert sink.buffered_rows == 5
    with pytest.raises(ValueError):
        sink.write([{"text": "no chunk_id"}])
    assert sink.buffered_rows == 5
    with pytest.raises(MilvusUnavailableError) as read_info:
        sink.count()
    assert read_info.value.permanent is False  # dead letters would be "transient"
    text = caplog.text + str(errors[-1]) + str(read_info.value) + repr(sink)
    assert "tok-secret-123" not in text and "pw-secret" not in text


def test_is_unavailable_classification():
    assert is_unavailable(MilvusException(2, "Fail connecting to server on 127.0.0.1:1"))
    assert is_unavailable(MilvusException(grpc.StatusCode.UNAVAILABLE, "Retry timeout: 10s"))
    assert is_unavailable(MilvusException(8, "rate limit exceeded"))
    assert is_unavailable(MilvusException(1, "service not ready"))
    assert is_unavailable(ConnectionRefusedError())
    assert is_unavailable(MilvusException(65535, "[query] Retry timeout: 5.0s, message=proxy TaskCondition context Done"))
    assert not is_unavailable(MilvusException(65535, "field chunk_id not exist"))
    assert not is_unavailable(MilvusException(1100, "the length (9000) of 0th string exceeds max length"))
    assert not is_unavailable(MilvusException(1, "Unexpected error, message=<bad row>"))
    assert not is_unavailable(ParamError(message="bad"))
    assert not is_unavailable(ValueError("x"))
    assert redact_uri("https://u:p@host:19530/db") == "https://***@host:19530/db"
    assert redact_uri("/tmp/x.db") == "/tmp/x.db"


def test_lite_uri_must_be_a_db_file(tmp_path):
    with pytest.raises(ValueError, match=r"\.db"):
        MilvusSink(str(tmp_path / "milvus"), collection="c")
    with pytest.raises(ValueError, match="collection"):
        MilvusSink(str(tmp_path / "x.db"), collection="bad-name")


def _count_when_readable(sink: MilvusSink, doc_id: Optional[str] = None, wait: float = 120.0) -> int:
    """``sink.count()``, retried while reads are unavailable (Milvus 2.3.5 times out
    Strong reads for ~25 s after a restart)."""
    deadline = time.monotonic() + wait
    while True:
        try:
            return sink.count(doc_id)
        except MilvusUnavailableError:
            assert time.monotonic() < deadline, "reads did not recover after the restart"
            time.sleep(1.0)


def test_server_down_then_back(milvus_server, make_sink_server):
    """Stop the server: flush backs off and keeps rows; restart: exact count."""
    sink = make_sink_server(timeout=5, backoff_initial=0.5, backoff_max=4.0)
    first = _three_docs(n_chunks=3)
    sink.write(first)
    sink.flush()
    assert sink.count() == 9
    second = _doc_rows("doc-late", 6, seed=11) + [{**first[0], "text": "updated"}]

    milvus_server.stop()
    try:
        sink.write(second)
        assert sink.buffered_rows == 7
        assert [e.retry_after for e in _failed_flushes(sink, 4, buffered=7)] == [0.5, 1.0, 2.0, 4.0]
        with pytest.raises(MilvusUnavailableError):
            sink.count()
        # A sink created while Milvus is down is usable once it is back.
        late = make_sink_server(timeout=5)
        late.write(_doc_rows("doc-later", 2, seed=12))
        with pytest.raises(SinkBackpressureError):
            late.flush()
        assert late.buffered_rows == 2
    finally:
        restart = milvus_server.start()
    print(f"\nMilvus 2.3.5 server restarted in {restart:.1f}s")

    deadline = time.monotonic() + 60
    while True:  # what the runner does: retry after retry_after until it drains
        try:
            sink.flush()
            break
        except SinkBackpressureError as exc:
            assert time.monotonic() < deadline, "sink did not recover after the restart"
            time.sleep(exc.retry_after)
    assert sink.buffered_rows == 0
    assert sink.retry_after is None  # backoff reset by the successful flush
    late.flush()
    assert late.buffered_rows == 0
    assert _count_when_readable(sink) == 9 + 6 + 2
    assert sink.count("doc-late") == 6
    assert sink.count("doc-a") == 3


@pytest.fixture
def make_sink_server(milvus_server):
    """Like ``make_sink`` but always on the module's server."""
    factory = SinkFactory(milvus_server.uri)
    yield factory
    factory.cleanup()


def test_index_runner_pauses_while_milvus_is_down_and_loses_nothing(milvus_server, make_sink_server, settings):
    """The index processor on real Kafka and a real Milvus server that goes away mid-stream:
    partitions pause, the worker survives, and every chunk lands once Milvus is back."""
    import threading

    from conveyor.streams.kafka.admin import create_topics
    from conveyor.streams.kafka.clients import make_producer
    from conveyor.streams.kafka.serde import AvroSerde, key_bytes
    from conveyor.streams.kafka.topics import topic
    from conveyor.streams.runtime.runner import Runner, Stage

    create_topics(settings)
    serde = AvroSerde(settings)
    embedded_topic = topic(settings, "embedded")
    rng = random.Random(7)
    records = [_embedded(f"doc-{i:02d}", [_random_vector(rng) for _ in range(3)]) for i in range(12)]
    sink = make_sink_server(timeout=5, backoff_initial=0.5, backoff_max=2.0)
    sink.write(chunk_rows(records[0]))
    sink.flush()  # the collection exists before the outage

    producer = make_producer(settings)
    milvus_server.stop()
    try:
        for rec in records:
            producer.produce(embedded_topic, key=key_bytes(rec["doc_id"]), value=serde.encode(embedded_topic, rec))
        producer.flush(10)
        runner = Runner(settings, Stage(SinkRows("index", sink), ("embedded",), None, sink=sink), batch_size=50)
        thread = threading.Thread(target=runner.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 60
        while not runner.paused:
            assert time.monotonic() < deadline, "runner never paused while Milvus was down"
            time.sleep(0.2)
        time.sleep(3)
        assert thread.is_alive() and runner.paused and runner.processed == 0  # nothing committed yet
    finally:
        milvus_server.start()
    deadline = time.monotonic() + 120
    while runner.processed < len(records):
        assert time.monotonic() < deadline, "runner did not drain after Milvus came back"
        time.sleep(0.5)
    runner.stop()
    thread.join(30)
    assert not runner.paused and runner.dead_lettered == 0
    counter = make_sink_server(timeout=5)  # the runner closed its sink on stop
    assert _count_when_readable(counter) == 3 * len(records)  # doc-00 re-upserted, not duplicated
