"""Least privilege against a real broker running KRaft's StandardAuthorizer.

The embed processor runs as its own principal with the ACLs the pipeline definition gives it,
except ``Write`` on its output topic: every batch is aborted and rewound (nothing reaches the
output, no input offset is committed) and the log names the missing ACL. Once the ACL is
granted the same runner, never restarted, delivers every input exactly once.

The faust drift monitor runs as its own principal with exactly its derived ACLs (its own
namespace): the label-shift scenario of ``test_drift_app`` passes, internal topics included.
"""
from __future__ import annotations

import dataclasses
import gc
import logging
import threading
import time
from collections import Counter
from uuid import uuid4

import pytest
from pydantic import SecretStr

from conveyor.streams.config import env
from conveyor.streams.config.settings import Settings
from conveyor.streams.kafka.admin import create_topics
from conveyor.streams.kafka.clients import make_admin
from conveyor.streams.kafka.io import InputProducer
from conveyor.streams.kafka.topics import topic_name
from conveyor.streams.ops import acls
from conveyor.streams.runtime.supervisor import run_stages
from conveyor.tools.stack import SaslBroker, StackError, start_sasl_broker, stop_sasl_broker
from conveyor.tools.stack._common import check_java
from tests.integration import test_drift_app as drift_scenario
from tests.integration.helpers import read_all
from tests.integration.test_security import _free_port

TEXTS = ("I lost my card yesterday", "Where is my refund?", "How do I change my PIN?")


@pytest.fixture(scope="module")
def acl_broker(stack_settings: Settings):
    """A SASL broker with the authorizer on and one user, the embed stage's."""
    try:
        check_java(17, "the ACL test broker")
    except StackError as exc:
        pytest.skip(f"needs Java 17+: {exc}")
    ns, drift_ns = f"t{uuid4().hex[:10]}", f"t{uuid4().hex[:10]}"
    user = acls.stage_user(Settings(namespace=ns), "embed")
    drift_user = acls.stage_user(Settings(namespace=drift_ns), "drift")
    broker = SaslBroker(home=stack_settings.home, users=((user, "embed-pw"), (drift_user, "drift-pw")),
                        port=_free_port(), controller_port=_free_port(), authorizer=True)
    start_sasl_broker(broker, stack_settings, timeout=120, log=lambda line: None)
    base = dict(bootstrap_servers=broker.bootstrap_servers, kafka_security_protocol="SASL_PLAINTEXT",
                kafka_sasl_mechanism="PLAIN", namespace=ns, home=stack_settings.home,
                schema_registry_url=stack_settings.schema_registry_url, metrics_port=0)
    admin = Settings(**base, kafka_sasl_username="admin", kafka_sasl_password=SecretStr(broker.admin_password))
    embed = Settings(**base, kafka_sasl_username=user, kafka_sasl_password=SecretStr("embed-pw"))
    drift = Settings(**{**base, "namespace": drift_ns}, kafka_sasl_username=drift_user,
                     kafka_sasl_password=SecretStr("drift-pw"))
    yield admin, embed, drift
    gc.collect()
    stop_sasl_broker(broker)


def test_a_processor_denied_a_write_aborts_loses_nothing_and_names_the_acl(acl_broker, caplog):
    admin, embed, _ = acl_broker
    create_topics(admin)
    output = topic_name(admin, "embedded")
    grants = acls.pipeline_grants(admin)["embed"]
    assert next(g for g in grants if g.name == output).operations == ("Write", "Describe")
    acls.apply(admin, [g for g in grants if g.name != output] + [acls.Grant(grants[0].principal, "topic", output,
                                                                           ("Describe",))])
    with InputProducer(admin) as producer:
        ids = {producer.text(t)["doc_id"] for t in TEXTS}

    stop, errors = threading.Event(), []
    worker = threading.Thread(target=lambda: _run(embed, stop, errors), daemon=True)
    caplog.set_level(logging.ERROR, logger="conveyor.streams.runtime.runner")
    worker.start()
    try:
        deadline = time.monotonic() + 120
        while "may not Write" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.5)
        assert f"{grants[0].principal} may not Write on topic {output} (TOPIC_AUTHORIZATION_FAILED)" in caplog.text
        assert read_all(admin, output, timeout=3) == []
        assert _committed(admin) == 0, "no input offset may be committed while the output is refused"

        acls.apply(admin, [acls.Grant(grants[0].principal, "topic", output, ("Write",))])
        got = read_all(admin, output, expect=len(ids), timeout=120)
    finally:
        stop.set()
        worker.join(60)
    assert not errors, errors
    assert {m.key().decode() for m in got} == ids
    assert max(Counter((m.key(), m.value()) for m in got).values()) == 1
    assert _committed(admin) == len(ids)


def test_the_drift_monitor_runs_with_only_its_own_acls(acl_broker, tmp_path, monkeypatch):
    _, _, drift = acl_broker
    admin = dataclasses.replace(acl_broker[0], namespace=drift.namespace, drift_window_seconds=drift_scenario.WINDOW_S)
    grants = acls.pipeline_grants(admin)["drift"]
    assert {g.principal for g in grants} == {f"User:{drift.kafka_sasl_username}"}
    acls.apply(admin, grants)
    for name, value in ((env.KAFKA_SECURITY_PROTOCOL, "SASL_PLAINTEXT"), (env.KAFKA_SASL_MECHANISM, "PLAIN"),
                        (env.KAFKA_SASL_USERNAME, drift.kafka_sasl_username),
                        (env.KAFKA_SASL_PASSWORD, drift.kafka_sasl_password.get_secret_value())):
        monkeypatch.setenv(name, value)  # the worker subprocess: the drift principal; this test: admin
    drift_scenario.check_label_shift_alarm(admin, tmp_path)


def _run(settings: Settings, stop: threading.Event, errors: list) -> None:
    try:
        run_stages(["embed"], settings, install_signals=False, stop_event=stop)
    except BaseException as exc:  # noqa: BLE001 - reported by the test
        errors.append(exc)


def _committed(settings: Settings) -> int:
    """Records of the texts topic the embed group has committed past (sum over partitions)."""
    from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition

    texts = topic_name(settings, "texts")
    request = ConsumerGroupTopicPartitions(settings.group_id("embed"), [TopicPartition(texts, p) for p in range(3)])
    admin = make_admin(settings)  # referenced until the answer is in
    result = admin.list_consumer_group_offsets([request])[settings.group_id("embed")].result(30)
    return sum(max(tp.offset, 0) for tp in result.topic_partitions)
