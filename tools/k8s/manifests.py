"""The Kubernetes objects of a Conveyor deployment, derived from the pipeline definition.

:func:`generated` returns the objects of ``k8s/base`` that depend on the pipeline — one
Deployment, PodDisruptionBudget and KEDA ``ScaledObject`` per stage, and one Strimzi
``KafkaTopic`` per catalogue topic — so adding a stage or a topic changes them here, and
``tests/unit/tools/test_k8s.py`` fails until ``make k8s`` has rewritten the committed files.

Figures (units: CPU cores and bytes):

* resources: requests are the peak RSS measured per process on this project's 2-core machine
  (``make bench`` prints them) rounded up, limits leave headroom for the largest allowed input
  (:data:`RESOURCES`);
* ``terminationGracePeriodSeconds``: the stage's longest batch (its ``max.poll.interval.ms``)
  plus 30 s, so SIGTERM lets the batch finish and commit;
* KEDA: the consumer group's lag over all its topics; ``activationLagThreshold`` is the number
  of partitions the stage reads, because every partition written in transactions keeps a lag
  of one (the commit marker after the last record, kedacore/keda#5675) — so scaling to zero
  is not held up by markers; ``maxReplicaCount`` is the input partitions (more would idle).
"""
from __future__ import annotations

from typing import Any

from conveyor.streams.config.settings import DEFAULT_MAX_MESSAGE_BYTES, Settings
from conveyor.streams.kafka.topics import catalogue
from conveyor.streams.ops.acls import stage_grants, stage_user
from conveyor.streams.topology.engines import engine_of
from conveyor.streams.topology.pipeline import StageSpec, builtin_pipeline

APP = "conveyor"
IMAGE = "localhost/conveyor:0.1.0"
METRICS_PORT = 9464
STATE_DIR = "/var/lib/conveyor"
KAFKA_CLUSTER = "conveyor"
"""Name of the Strimzi ``Kafka`` cluster (its ``strimzi.io/cluster`` label and bootstrap Service)."""
TOPIC_PREFIX = "conveyor"
"""``CONVEYOR_NAMESPACE`` of the deployment: every topic is ``conveyor.<role>``."""
DEFAULT_LIVENESS_S = 300

RESOURCES: dict[str, dict[str, dict[str, str]]] = {
    "extract": {"requests": {"cpu": "1", "memory": "1152Mi"}, "limits": {"cpu": "2", "memory": "1536Mi"}},
    "embed": {"requests": {"cpu": "1", "memory": "704Mi"}, "limits": {"cpu": "2", "memory": "1Gi"}},
    "index": {"requests": {"cpu": "250m", "memory": "384Mi"}, "limits": {"cpu": "1", "memory": "768Mi"}},
    "classify": {"requests": {"cpu": "500m", "memory": "384Mi"}, "limits": {"cpu": "1", "memory": "768Mi"}},
    "drift": {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "512Mi"}},
}
"""Per stage; a stage without an entry (a plugin) gets :data:`DEFAULT_RESOURCES`. Peak RSS
measured here (``make bench``, demo corpus: 12 documents + 200 texts, 2026-12-04): extract
1,080 MiB, embed 634 MiB, index and classify together 344 MiB (one process, Milvus Lite);
drift 114 MiB idle. Requests are the peak rounded up, limits leave headroom for the largest
allowed input (50 pages, 60 Mpx)."""
DEFAULT_RESOURCES = {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "512Mi"}}
LAG_PER_REPLICA = {"extract": 2, "embed": 200, "index": 400, "classify": 400}
"""KEDA ``lagThreshold``: records of lag one replica is expected to work off in about 10 s
(extract OCRs about one scan per 5–10 s; the text stages handle 50–100 records/s)."""


def _labels(stage: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": stage, "app.kubernetes.io/part-of": APP,
            "app.kubernetes.io/component": "processor"}


def _grace_seconds(spec: StageSpec) -> int:
    longest = (spec.max_poll_interval_ms or DEFAULT_LIVENESS_S * 1000) // 1000
    return int(longest) + 30


def _user(spec: StageSpec) -> str:
    """The stage's own Kafka user (its Strimzi ``KafkaUser`` and that user's Secret)."""
    return stage_user(Settings(namespace=TOPIC_PREFIX), spec.name)


def kafka_user(spec: StageSpec) -> dict[str, Any]:
    """The stage's Strimzi ``KafkaUser`` (SCRAM-SHA-512): exactly the ACLs
    :func:`conveyor.streams.ops.acls.stage_grants` derives from the pipeline definition."""
    grants = stage_grants(Settings(namespace=TOPIC_PREFIX), spec)
    return {"apiVersion": "kafka.strimzi.io/v1beta2", "kind": "KafkaUser",
            "metadata": {"name": _user(spec), "labels": {"strimzi.io/cluster": KAFKA_CLUSTER, **_labels(spec.name)}},
            "spec": {"authentication": {"type": "scram-sha-512"},
                     "authorization": {"type": "simple", "acls": [g.strimzi() for g in grants]}}}


def deployment(spec: StageSpec) -> dict[str, Any]:
    """The Deployment of one stage: ``conveyor run <name>``, probes on ``/healthz`` and
    ``/readyz``, restricted security context, writable ``/tmp`` and state directory only."""
    probe_port = {"port": "metrics"}
    volumes = [{"name": "tmp", "emptyDir": {}}, {"name": "state", "emptyDir": {}},
               {"name": "kafka-ca", "secret": {"secretName": f"{KAFKA_CLUSTER}-cluster-ca-cert"}}]
    mounts = [{"name": "tmp", "mountPath": "/tmp"}, {"name": "state", "mountPath": STATE_DIR},
              {"name": "kafka-ca", "mountPath": "/etc/conveyor/kafka-ca", "readOnly": True}]
    if "documents" in spec.inputs:  # documents above the inline limit are read from the blob store
        volumes.append({"name": "blobs", "persistentVolumeClaim": {"claimName": "conveyor-blobs"}})
        mounts.append({"name": "blobs", "mountPath": f"{STATE_DIR}/blobs"})
    container = {
        "name": spec.name, "image": IMAGE, "imagePullPolicy": "IfNotPresent",
        "args": ["run", spec.name],
        "envFrom": [{"configMapRef": {"name": "conveyor-settings"}}],
        "env": [
            {"name": "CONVEYOR_KAFKA_SASL_USERNAME", "value": _user(spec)},
            {"name": "CONVEYOR_KAFKA_SASL_PASSWORD",
             "valueFrom": {"secretKeyRef": {"name": _user(spec), "key": "password"}}},
            {"name": "CONVEYOR_INSTANCE_ID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        ],
        "ports": [{"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"}],
        "startupProbe": {"httpGet": {"path": "/healthz", **probe_port}, "periodSeconds": 5, "failureThreshold": 60},
        "livenessProbe": {"httpGet": {"path": "/healthz", **probe_port}, "periodSeconds": 15, "timeoutSeconds": 3,
                          "failureThreshold": 4},
        "readinessProbe": {"httpGet": {"path": "/readyz", **probe_port}, "periodSeconds": 10, "timeoutSeconds": 3,
                           "failureThreshold": 3},
        "resources": RESOURCES.get(spec.name, DEFAULT_RESOURCES),
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]}},
        "volumeMounts": mounts,
    }
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": f"conveyor-{spec.name}", "labels": _labels(spec.name)},
        "spec": {
            "replicas": spec.instances,
            "selector": {"matchLabels": {"app.kubernetes.io/name": spec.name, "app.kubernetes.io/part-of": APP}},
            "strategy": {"type": "Recreate"} if engine_of(spec).singleton else {"type": "RollingUpdate"},
            "template": {
                "metadata": {"labels": _labels(spec.name)},
                "spec": {
                    "terminationGracePeriodSeconds": _grace_seconds(spec),
                    "securityContext": {"runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001,
                                        "fsGroup": 10001, "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [container],
                    "volumes": volumes,
                },
            },
        },
    }


def pod_disruption_budget(spec: StageSpec) -> dict[str, Any]:
    """At most one pod of the stage down at a time during voluntary disruptions (drains)."""
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": f"conveyor-{spec.name}", "labels": _labels(spec.name)},
            "spec": {"maxUnavailable": 1,
                     "selector": {"matchLabels": {"app.kubernetes.io/name": spec.name,
                                                  "app.kubernetes.io/part-of": APP}}}}


def scaled_object(spec: StageSpec, partitions: int, max_replicas: int) -> dict[str, Any]:
    """KEDA ScaledObject of a runner stage on its consumer group's lag (see the module doc):
    ``partitions`` it reads in all (the activation threshold), at most ``max_replicas``."""
    return {
        "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
        "metadata": {"name": f"conveyor-{spec.name}", "labels": _labels(spec.name)},
        "spec": {
            "scaleTargetRef": {"name": f"conveyor-{spec.name}"},
            "minReplicaCount": 0, "maxReplicaCount": max(1, max_replicas),
            "pollingInterval": 15, "cooldownPeriod": 300,
            "triggers": [{
                "type": "kafka",
                "authenticationRef": {"name": "conveyor-kafka"},
                "metadata": {
                    "bootstrapServers": f"{KAFKA_CLUSTER}-kafka-bootstrap:9093",
                    "consumerGroup": f"{TOPIC_PREFIX}.{spec.name}",
                    "lagThreshold": str(LAG_PER_REPLICA.get(spec.name, 100)),
                    "activationLagThreshold": str(partitions),
                    "sasl": "scram_sha512", "tls": "enable",
                    "offsetResetPolicy": "earliest",
                    "allowIdleConsumers": "false",
                    "scaleToZeroOnInvalidOffset": "false",
                },
            }],
        },
    }


def kafka_topics(replicas: int = 3, min_insync: int = 2) -> list[dict[str, Any]]:
    """One Strimzi KafkaTopic per catalogue topic (namespace :data:`TOPIC_PREFIX`): the same
    partitions and configs ``conveyor topics create`` uses, plus replication."""
    out = []
    for spec in catalogue(Settings(namespace=TOPIC_PREFIX), builtin_pipeline()).values():
        config = {"max.message.bytes": DEFAULT_MAX_MESSAGE_BYTES, "min.insync.replicas": min_insync,
                  **dict(spec.config)}
        out.append({"apiVersion": "kafka.strimzi.io/v1beta2", "kind": "KafkaTopic",
                    "metadata": {"name": spec.name, "labels": {"strimzi.io/cluster": KAFKA_CLUSTER,
                                                               "app.kubernetes.io/part-of": APP}},
                    "spec": {"topicName": spec.name, "partitions": spec.partitions, "replicas": replicas,
                             "config": config}})
    return out


def input_partitions(spec: StageSpec) -> tuple[int, int]:
    """``(partitions of every topic the stage reads, its retry topic included; the most
    partitions of one input topic)``."""
    specs = catalogue(Settings(namespace=TOPIC_PREFIX), builtin_pipeline())
    counts = [specs[r].partitions for r in spec.inputs]
    total = sum(counts) + (specs[f"retry.{spec.name}"].partitions if spec.retry else 0)
    return total, max(counts)


def generated() -> dict[str, list[dict[str, Any]]]:
    """``{file name in k8s/base: objects}`` of everything derived from the pipeline definition."""
    stages = builtin_pipeline().stages
    scaled = [s for s in stages if not engine_of(s).singleton]
    return {
        "deployments.yaml": [deployment(s) for s in stages],
        "pdbs.yaml": [pod_disruption_budget(s) for s in stages],
        "scaledobjects.yaml": [scaled_object(s, *input_partitions(s)) for s in scaled],
        "kafkatopics.yaml": kafka_topics(),
        "processor-kafkausers.yaml": [kafka_user(s) for s in stages],
    }
