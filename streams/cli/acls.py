"""``conveyor acls``: print or apply each processor's least-privilege ACLs (:mod:`conveyor.streams.ops.acls`)."""
from __future__ import annotations

from typing import Optional

import click

from conveyor.streams.cli.common import echo_json, settings_from_env


@click.command("acls")
@click.option("--stage", "stages", multiple=True, help="Only this stage (repeatable; default: every stage).")
@click.option("--apply", "do_apply", is_flag=True,
              help="Create the ACLs on the cluster (run as a principal allowed to alter ACLs).")
def acls(stages: tuple[str, ...], do_apply: bool) -> None:
    """Print each stage's ACLs (one JSON line per grant: principal, resource, pattern, operations),
    derived from the pipeline definition; with --apply, create them. The principal of stage S is
    User:<CONVEYOR_NAMESPACE>-S (its SASL user name)."""
    from conveyor.streams.ops import acls as acl_mod
    from conveyor.streams.topology.pipeline import pipeline

    settings = settings_from_env()
    names: Optional[set[str]] = {pipeline().stage(s).name for s in stages} or None
    grants = [g for stage, gs in acl_mod.pipeline_grants(settings).items() if names is None or stage in names
              for g in gs]
    for g in grants:
        echo_json({"principal": g.principal, **g.strimzi()["resource"], "operations": list(g.operations)})
    if do_apply:
        try:
            sent = acl_mod.apply(settings, grants)
        except acl_mod.AclError as exc:
            raise click.ClickException(str(exc)) from None
        echo_json({"applied": sent})
