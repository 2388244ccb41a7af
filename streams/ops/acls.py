"""Least-privilege Kafka ACLs for each processor, derived from the pipeline definition.

Every stage runs as its own principal, ``User:<namespace>-<stage>`` (the SASL user name
:func:`stage_user`; in Kubernetes the Strimzi ``KafkaUser`` of that name), and may do only
what its :class:`~conveyor.streams.topology.pipeline.StageSpec` says it does (:func:`stage_grants`):

* runner stages: ``Read`` + ``Describe`` on its input topics and its retry topic, ``Read`` on
  its consumer group ``<ns>.<stage>``, ``Write`` + ``Describe`` on its output, retry and
  dead-letter topics, ``Write`` + ``Describe`` on its transactional ids (prefix
  ``<ns>.<stage>.``: one per instance, :func:`conveyor.streams.kafka.delivery.make_delivery`);
* the faust drift monitor: the same reads and writes (its drift reports and dead letters),
  ``Read`` + ``Write`` on the compacted reference topic it owns, its group, and every
  operation on faust's own internal topics (prefix ``<ns>.drift-``: the assignor topic and
  table changelogs it creates) instead of a transactional id.

Nothing else: no other stage's topics, no cluster operations, no topic creation (``conveyor
topics create`` and replays run as an operator principal). The vocabulary — resource types
``topic``/``group``/``transactionalId``, pattern types ``literal``/``prefix``, operations
``Read``/``Write``/``Describe``/… — is Strimzi's ``KafkaUser`` ``spec.authorization.acls``
(``type: simple``), which maps one to one onto Kafka's ACL bindings (KIP-11, the
``StandardAuthorizer`` of KRaft clusters, KIP-801).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

from confluent_kafka import KafkaError, KafkaException

from conveyor.streams.config.settings import Settings
from conveyor.streams.kafka.topics import catalogue, dlq_role, retry_role, topic_name
from conveyor.streams.topology.engines import engine_of
from conveyor.streams.topology.pipeline import Pipeline, StageSpec, pipeline

if TYPE_CHECKING:
    from concurrent.futures import Future

    from confluent_kafka.admin import AclBinding

RESOURCE_TYPES = ("topic", "group", "transactionalId")
PATTERN_TYPES = ("literal", "prefix")
OPERATIONS = ("Read", "Write", "Describe", "Create", "DescribeConfigs", "All")


@dataclass(frozen=True)
class Grant:
    """One ALLOW ACL: ``principal`` may do ``operations`` on a resource.

    Attributes:
        principal: e.g. ``User:conveyor-embed``.
        resource_type: one of :data:`RESOURCE_TYPES`.
        name: topic, group or transactional id; with ``pattern_type="prefix"`` every name
            starting with it.
        pattern_type: ``literal`` or ``prefix``.
        operations: some of :data:`OPERATIONS`, in that order.

    Raises:
        ValueError: an unknown resource type, pattern type or operation.
    """

    principal: str
    resource_type: str
    name: str
    operations: tuple[str, ...]
    pattern_type: str = "literal"

    def __post_init__(self) -> None:
        bad = [o for o in self.operations if o not in OPERATIONS]
        if self.resource_type not in RESOURCE_TYPES or self.pattern_type not in PATTERN_TYPES or bad:
            raise ValueError(f"invalid ACL {self}: resource types {RESOURCE_TYPES}, pattern types "
                             f"{PATTERN_TYPES}, operations {OPERATIONS}")

    def strimzi(self) -> dict[str, Any]:
        """This grant as one entry of a Strimzi ``KafkaUser``'s ``spec.authorization.acls``."""
        return {"resource": {"type": self.resource_type, "name": self.name, "patternType": self.pattern_type},
                "operations": list(self.operations)}

    def __str__(self) -> str:
        star = "*" if self.pattern_type == "prefix" else ""
        return f"{self.principal}: {'+'.join(self.operations)} on {self.resource_type} {self.name}{star}"


def stage_user(settings: Settings, stage: str) -> str:
    """The user name of ``stage``'s principal: ``<namespace>-<stage>`` (e.g. ``conveyor-embed``)."""
    return f"{settings.namespace}-{stage}"


def transactional_id_prefix(settings: Settings, stage: str) -> str:
    """``<ns>.<stage>.``: every transactional id the stage's instances use starts with it."""
    return f"{settings.group_id(stage)}."


def stage_grants(settings: Settings, spec: StageSpec) -> list[Grant]:
    """The ACLs ``spec``'s principal needs and nothing more (see the module docstring),
    grouped by resource, in a stable order."""
    who = f"User:{stage_user(settings, spec.name)}"
    reads = [topic_name(settings, r) for r in spec.inputs]
    writes = [topic_name(settings, dlq_role(spec.name))]
    if spec.output is not None:
        writes.insert(0, topic_name(settings, spec.output.role))
    ops: dict[str, set[str]] = {}
    for t in reads:
        ops.setdefault(t, set()).update(("Read", "Describe"))
    for t in writes:
        ops.setdefault(t, set()).update(("Write", "Describe"))
    if spec.retry:
        ops.setdefault(topic_name(settings, retry_role(spec.name)), set()).update(("Read", "Write", "Describe"))
    for extra in spec.extra_topics:
        ops.setdefault(topic_name(settings, extra.role), set()).update(("Read", "Write", "Describe"))
    grants = [Grant(who, "topic", t, tuple(o for o in OPERATIONS if o in wanted)) for t, wanted in ops.items()]
    grants.append(Grant(who, "group", settings.group_id(spec.name), ("Read",)))
    if engine_of(spec).transactional:
        grants.append(Grant(who, "transactionalId", transactional_id_prefix(settings, spec.name),
                            ("Write", "Describe"), "prefix"))
    else:  # the engine's own topics (faust: changelogs, the assignor's topic)
        grants.append(Grant(who, "topic", f"{settings.group_id(spec.name)}-", ("All",), "prefix"))
    return grants


def pipeline_grants(settings: Settings, of: Optional[Pipeline] = None) -> dict[str, list[Grant]]:
    """``{stage name: its grants}`` for every stage of ``of`` (default: the installed pipeline).

    Raises:
        ValueError: a stage reads or writes a topic that is not in the catalogue (a broken
            plugin definition): its ACLs would grant a topic nobody creates.
    """
    p = of or pipeline()
    known = {spec.name for spec in catalogue(settings, p).values()}
    out = {}
    for spec in p.stages:
        grants = stage_grants(settings, spec)
        unknown = [g.name for g in grants if g.resource_type == "topic" and g.pattern_type == "literal"
                   and g.name not in known]
        if unknown:
            raise ValueError(f"stage {spec.name!r} uses topics outside the catalogue: {unknown}")
        out[spec.name] = grants
    return out


def bindings(grants: list[Grant]) -> list[AclBinding]:
    """``grants`` as confluent-kafka ``AclBinding`` values (one per operation, host ``*``)."""
    from confluent_kafka.admin import (
        AclBinding,
        AclOperation,
        AclPermissionType,
        ResourcePatternType,
        ResourceType,
    )

    types = {"topic": ResourceType.TOPIC, "group": ResourceType.GROUP, "transactionalId": ResourceType.TRANSACTIONAL_ID}
    patterns = {"literal": ResourcePatternType.LITERAL, "prefix": ResourcePatternType.PREFIXED}
    ops = {"Read": AclOperation.READ, "Write": AclOperation.WRITE, "Describe": AclOperation.DESCRIBE,
           "Create": AclOperation.CREATE, "DescribeConfigs": AclOperation.DESCRIBE_CONFIGS, "All": AclOperation.ALL}
    return [AclBinding(types[g.resource_type], g.name, patterns[g.pattern_type], g.principal, "*", ops[o],
                       AclPermissionType.ALLOW) for g in grants for o in g.operations]


def _wait(futures: dict[AclBinding, Future[Any]], what: str, timeout: float) -> None:
    errors = []
    for binding, future in futures.items():
        try:
            future.result(timeout=timeout)
        except KafkaException as exc:
            errors.append(f"{binding}: {exc.args[0].str() if exc.args else exc}")
    if errors:
        raise AclError(f"{what} failed for {len(errors)} ACL(s): " + "; ".join(errors[:3]))


def apply(settings: Settings, grants: list[Grant], timeout: float = 30.0) -> int:
    """Create ``grants`` on the cluster of ``settings`` (whose principal must be allowed to
    alter ACLs: a super user or ``Alter`` on the cluster). Creating an existing ACL is a no-op.

    Returns:
        The number of ACL bindings sent.

    Raises:
        AclError: the broker refused one (no authorizer configured, not allowed, …).
    """
    from conveyor.streams.kafka.clients import make_admin

    wanted = bindings(grants)
    if wanted:
        admin = make_admin(settings)  # kept referenced until the futures resolve
        _wait(admin.create_acls(wanted, request_timeout=timeout), "creating ACLs", timeout)
    return len(wanted)


class AclError(RuntimeError):
    """The broker refused to create or delete ACLs; the message quotes its first reasons."""


DENIALS = {KafkaError.TOPIC_AUTHORIZATION_FAILED: ("Write", "topic"),
           KafkaError.GROUP_AUTHORIZATION_FAILED: ("Read", "group"),
           KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED: ("Write", "transactionalId")}
"""Kafka error codes of an authorization failure → the operation and resource type that was
missing (a producer's topic failure is a missing ``Write``; a consumer's is reported by
:func:`denial` callers with their own operation)."""


def denial(settings: Settings, stage: str, code: int, resource: str) -> Optional[str]:
    """One line naming the ACL that a ``code`` error on ``resource`` shows is missing, e.g.
    ``User:conveyor-embed may not Write on topic conveyor.embedded (TOPIC_AUTHORIZATION_FAILED):
    grant it (conveyor acls --apply --stage embed)``; ``None`` when ``code`` is not an
    authorization failure."""
    if code not in DENIALS:
        return None
    operation, kind = DENIALS[code]
    user = settings.kafka_sasl_username or stage_user(settings, stage)
    return (f"User:{user} may not {operation} on {kind} {resource} ({KafkaError(code).name()}): "
            f"grant it (conveyor acls --apply --stage {stage})")


def explain_denial(settings: Settings, stage: str, exc: BaseException, *, written: set[str], group_id: str,
                   transactional_id: str) -> Optional[str]:
    """The missing ACL that ``exc`` (a failed batch of ``stage``) shows, as :func:`denial` words
    it, naming the resource refused: one of the ``written`` topics, the ``transactional_id`` or
    the ``group_id``; ``None`` when ``exc`` is not an authorization failure."""
    err = exc.args[0] if isinstance(exc, KafkaException) and exc.args else None
    if not isinstance(err, KafkaError) or err.code() not in DENIALS:
        return None
    if err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED:
        resource = " or ".join(sorted(written))
    elif err.code() == KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED:
        resource = transactional_id
    else:
        resource = group_id
    return denial(settings, stage, err.code(), resource)
