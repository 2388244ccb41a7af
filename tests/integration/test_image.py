"""The container image (``make image``, podman): non-root, no compilers, models inside, one
image for every processor — embed and index + classify run from it against the test stack and
texts become predictions; their ``/readyz`` answers from the container."""
from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.request
import uuid

import pytest

from conveyor.streams.kafka.admin import create_topics
from conveyor.streams.kafka.io import InputProducer
from conveyor.streams.kafka.serde import AvroSerde
from conveyor.streams.kafka.topics import topic
from conveyor.tools.image import RUN_FLAGS
from tests.integration.helpers import cli_env, read_all
from tests.ports import server_port

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def image() -> tuple[list[str], str]:
    """The engine command and the image, built by :func:`conveyor.tools.image.build` unless
    it exists already (``make image``)."""
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed (apt-get install podman runc debootstrap)")
    from conveyor.tools.image import DEFAULT_IMAGE, build, engine, image_exists

    cmd = engine()
    if not image_exists(cmd, DEFAULT_IMAGE):
        report = build(DEFAULT_IMAGE)
        print(f"\nimage built: {json.dumps(report)}")
    return cmd, DEFAULT_IMAGE


def _out(cmd: list[str]) -> str:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120).stdout.strip()


def test_the_image_is_non_root_without_compilers_and_with_its_models(image):
    cmd, name = image
    run = [*cmd, "run", "--rm", *RUN_FLAGS, "--entrypoint", "sh", name, "-c"]
    assert _out([*run, "id -u"]) == "10001"
    assert _out([*run, "command -v gcc cc g++ make || true"]) == ""
    assert "Stages: extract, embed, index, classify, drift" in _out([*run, "conveyor run --help"])
    assert "stack" not in _out([*run, "conveyor --help"])  # the offline tools are not in the runtime image
    ok = _out([*run, "python -c \"from conveyor.processors.embed.model import MiniLMEmbedder; "
                     "print(MiniLMEmbedder().embed(['hello']).shape)\""])
    assert ok == "(1, 384)"


def test_embed_and_index_classify_run_from_the_image(image, settings):
    cmd, name = image
    create_topics(settings)
    env = {**cli_env(settings), "CONVEYOR_MILVUS_URI": "/var/lib/conveyor/milvus.db"}
    containers, ports = [], []
    try:
        for stage in (["embed"], ["index", "classify"]):
            port = server_port()
            cname = f"conveyor-test-{'-'.join(stage)}-{uuid.uuid4().hex[:6]}"
            flags = [f"--env={k}={v}" for k, v in {**env, "CONVEYOR_METRICS_PORT": str(port)}.items()]
            subprocess.run([*cmd, "run", "-d", "--name", cname, *RUN_FLAGS, *flags, name, "run", *stage],
                           check=True, timeout=120)
            containers.append(cname)
            ports.append(port)
        with InputProducer(settings) as p:
            ids = [p.text(t)["doc_id"] for t in ("I lost my card", "What is the exchange rate for euros?")]
        preds = read_all(settings, topic(settings, "predictions"), expect=2, timeout=300)
        serde = AvroSerde(settings)
        assert sorted(m.key().decode() for m in preds) == sorted(ids)
        assert all(serde.decode(m.topic(), m.value())["label"] for m in preds)
        for port in ports:
            deadline = time.monotonic() + 60
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as r:
                        assert json.loads(r.read())["ready"] is True
                        break
                except (OSError, AssertionError):
                    assert time.monotonic() < deadline, f"/readyz on {port} never answered ready"
                    time.sleep(1)
    finally:
        logs = {c: _out([*cmd, "logs", "--tail", "20", c]) for c in containers}
        for c in containers:
            subprocess.run([*cmd, "stop", "-t", "60", c], capture_output=True, timeout=120)
        codes = {c: _out([*cmd, "inspect", "--format", "{{.State.ExitCode}}", c]) for c in containers}
        for c in containers:
            subprocess.run([*cmd, "rm", "-f", c], capture_output=True, timeout=60)
    assert set(codes.values()) == {"0"}, (codes, logs)
    for c, text in logs.items():  # JSON logs, one object a line
        assert all(json.loads(line)["level"] for line in text.splitlines() if line.startswith("{")), c
