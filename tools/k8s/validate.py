"""Offline validation of rendered manifests against the official schemas (:mod:`.schemas`).

Each object is validated with ``jsonschema`` against the schema of its ``apiVersion`` and
``kind``: a built-in kind against the Kubernetes OpenAPI v3 document of its group/version, a
custom resource against its CRD's ``openAPIV3Schema``. As kubeconform's ``-strict``, every
object schema that lists ``properties`` and says nothing of other fields is made to reject
them (``additionalProperties: false``) — except where the schema preserves unknown fields
(``x-kubernetes-preserve-unknown-fields``) — so a misspelled field fails, not only a wrong
type. An object of a kind no schema covers is an error too.
"""
from __future__ import annotations

import argparse
import copy
import json
import shutil
import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft7Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

from conveyor.tools.k8s import K8S_DIR
from conveyor.tools.k8s.schemas import fetch


def _strict(schema: Any) -> Any:
    """``schema`` with ``additionalProperties: false`` on every object schema that lists
    properties, allows no others explicitly and does not preserve unknown fields."""
    if isinstance(schema, dict):
        out = {k: _strict(v) for k, v in schema.items()}
        if ("properties" in out and "additionalProperties" not in out
                and not out.get("x-kubernetes-preserve-unknown-fields")):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


@dataclass(frozen=True)
class Problem:
    """One validation error: which object, where in it, and why."""

    kind: str
    name: str
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.kind}/{self.name}: {self.path or '<root>'}: {self.message}"


class Validator:
    """Validates objects against the schemas under ``schema_dir`` (``openapi/``, ``crds/``)."""

    def __init__(self, schema_dir: Path):
        self.schema_dir = schema_dir
        self._builtin: dict[tuple[str, str], tuple[Registry, str]] = {}
        self._crds: dict[tuple[str, str], dict] = {}
        for crd_file in sorted((schema_dir / "crds").glob("*.yaml")):
            for crd in yaml.safe_load_all(crd_file.read_text(encoding="utf-8")):
                if not crd or crd.get("kind") != "CustomResourceDefinition":
                    continue
                group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
                for version in crd["spec"]["versions"]:
                    self._crds[(f"{group}/{version['name']}", kind)] = _strict(version["schema"]["openAPIV3Schema"])

    def _openapi_file(self, api_version: str) -> Path:
        if "/" in api_version:
            group, version = api_version.split("/", 1)
            return self.schema_dir / "openapi" / f"apis__{group}__{version}_openapi.json"
        return self.schema_dir / "openapi" / f"api__{api_version}_openapi.json"

    def _builtin_schema(self, api_version: str, kind: str) -> tuple[Registry, str] | None:
        key = (api_version, kind)
        if key in self._builtin:
            return self._builtin[key]
        path = self._openapi_file(api_version)
        if not path.exists():
            return None
        doc = _strict(json.loads(path.read_text(encoding="utf-8")))
        group, _, version = api_version.rpartition("/")
        registry = Registry().with_resource("urn:k8s", Resource.from_contents(doc, default_specification=DRAFT7))
        for name, schema in doc.get("components", {}).get("schemas", {}).items():
            for gvk in schema.get("x-kubernetes-group-version-kind", []):
                if (gvk.get("group", ""), gvk["version"], gvk["kind"]) == (group, version, kind):
                    self._builtin[key] = (registry, f"urn:k8s#/components/schemas/{name}")
                    return self._builtin[key]
        return None

    def problems(self, obj: dict) -> list[Problem]:
        """Every schema violation of ``obj`` (empty: valid)."""
        api_version, kind = obj.get("apiVersion", ""), obj.get("kind", "")
        name = (obj.get("metadata") or {}).get("name", "?")
        if (api_version, kind) in self._crds:
            validator = Draft7Validator(self._crds[(api_version, kind)])
        else:
            found = self._builtin_schema(api_version, kind)
            if found is None:
                return [Problem(kind, name, "", f"no schema for {api_version} {kind}")]
            registry, ref = found
            validator = Draft7Validator({"$ref": ref}, registry=registry)
        return [Problem(kind, name, "/".join(str(p) for p in e.absolute_path), e.message)
                for e in sorted(validator.iter_errors(obj), key=lambda e: list(e.absolute_path))]


def render(overlay: Path, kustomize: str = "kustomize") -> list[dict]:
    """The objects ``kustomize build overlay`` renders.

    Raises:
        RuntimeError: kustomize failed.
    """
    out = subprocess.run([kustomize, "build", str(overlay)], capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise RuntimeError(f"kustomize build {overlay} failed: {out.stderr.strip()[-1000:]}")
    return [o for o in yaml.safe_load_all(out.stdout) if o]


def validate_all(objects: Iterable[dict], validator: Validator) -> Iterator[Problem]:
    """The problems of every object."""
    for obj in objects:
        yield from validator.problems(obj)


def main(argv: list[str]) -> int:
    """``validate [--overlay dev --overlay prod] [--kustomize PATH]``: exit 1 on any problem."""
    ap = argparse.ArgumentParser(prog="python -m conveyor.tools.k8s validate")
    ap.add_argument("--overlay", action="append", default=None, help="overlay name (default: dev and prod)")
    ap.add_argument("--kustomize", default=shutil.which("kustomize") or "kustomize")
    args = ap.parse_args(argv)
    validator = Validator(fetch())
    failed = 0
    for name in args.overlay or ["dev", "prod"]:
        objects = render(K8S_DIR / "overlays" / name, args.kustomize)
        problems = list(validate_all(objects, validator))
        for p in problems:
            print(f"{name}: {p}")
        print(f"{name}: {len(objects)} objects, {len(problems)} problems")
        failed += bool(problems)
    return 1 if failed else 0


def object_kinds(objects: Iterable[dict]) -> dict[str, int]:
    """``{kind: count}`` of rendered objects (for reports)."""
    counts: dict[str, int] = {}
    for o in objects:
        counts[o.get("kind", "?")] = counts.get(o.get("kind", "?"), 0) + 1
    return counts


def mutated(obj: dict, path: list[str], value: Any) -> dict:
    """A deep copy of ``obj`` with ``value`` set at ``path`` (tests break objects on purpose)."""
    out = copy.deepcopy(obj)
    node = out
    for key in path[:-1]:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if isinstance(node, list):
        node[int(path[-1])] = value
    else:
        node[path[-1]] = value
    return out
