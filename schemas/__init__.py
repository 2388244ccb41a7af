"""The Avro schemas (``*.avsc``), the single source of truth for every record; shipped as
package data and read with :func:`importlib.resources.files`.

A named type that several schemas share is defined once, in its own file listed in
:data:`SHARED_TYPES` (``key_fields.avsc``: ``io.conveyor.KeyFields`` with its nested
``FieldEvidence``), and the schemas refer to it by name (``"type": ["null", "KeyFields"]``).
A file that refers to a shared type is not a standalone schema: read schemas through
:func:`schema_text` or :func:`schema_json` (never ``json.loads`` of the file), which put each
shared definition in at its first use, as Avro requires of a standalone schema (what is
registered and what fastavro parses); later uses stay name references. The result for
``extracted.avsc``, ``embedded.avsc`` and ``prediction.avsc`` is byte for byte the file as it
was before the split. A file without references to shared types (every plugin schema so far)
comes back unchanged.

Adding a key field: edit ``key_fields.avsc`` only (optional, with a default, for BACKWARD).
"""
from __future__ import annotations

import json
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, TypedDict, Union

SchemaRef = Union[str, Traversable, Path]
"""A schema: a file name in ``conveyor.schemas`` (``"prediction.avsc"``), or a file (a
:class:`~importlib.resources.abc.Traversable` or :class:`~pathlib.Path`, e.g. a plugin's own)."""

SHARED_TYPES: dict[str, str] = {"io.conveyor.KeyFields": "key_fields.avsc"}
"""Full name of each shared named type -> the file in ``conveyor.schemas`` defining it (the
file's top-level type, with its namespace stated)."""


class _State(TypedDict):
    """What one expansion tracks: the full names defined so far, whether a shared type was put
    in, and the file's label (error messages)."""

    defined: set[str]
    changed: bool
    file: str


_PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
_NAMED = frozenset({"record", "error", "enum", "fixed"})


def schema_text(ref: SchemaRef) -> str:
    """The standalone Avro schema text of ``ref``, shared types put in.

    Args:
        ref: a file name in ``conveyor.schemas`` or a schema file (see :data:`SchemaRef`).

    Returns:
        The file's text unchanged when it refers to no shared type; otherwise the expanded
        schema as ``json.dumps(schema, indent=2)`` plus a newline (the layout of the
        ``.avsc`` files), each shared type's definition at its first use and a name
        reference at later ones.

    Raises:
        FileNotFoundError: ``ref`` names no file.
        ValueError: the file is not JSON; it uses a type name that is neither defined
            before the use nor in :data:`SHARED_TYPES` (the message names the file and the
            type); it defines a name twice (its own definition and a shared one included).
    """
    text, expanded, changed = _load(ref)
    return json.dumps(expanded, indent=2) + "\n" if changed else text


def schema_json(ref: SchemaRef) -> Any:
    """The parsed standalone Avro schema of ``ref``: :func:`schema_text` as JSON.

    Returns:
        A new object on every call (callers may change it): a dict for a record schema
        (every ``.avsc`` here), a list or a string for a union or a named type's schema.

    Raises:
        FileNotFoundError, ValueError: as :func:`schema_text`.
    """
    return _load(ref)[1]


def _file(ref: SchemaRef) -> Traversable:
    return files(__name__) / ref if isinstance(ref, str) else ref


def _label(ref: SchemaRef) -> str:
    return f"conveyor.schemas/{ref}" if isinstance(ref, str) else str(ref)


def _parse(ref: SchemaRef) -> tuple[str, Any]:
    text = _file(ref).read_text(encoding="utf-8")
    try:
        return text, json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{_label(ref)} is not JSON: {exc}") from None


def _split(node: dict[str, Any], namespace: str) -> tuple[str, str]:
    """(full name, namespace) of the named type ``node`` defined where ``namespace`` holds."""
    name = node["name"]
    if "." in name:
        return name, name.rsplit(".", 1)[0]
    ns = node.get("namespace", namespace) or ""
    return (f"{ns}.{name}" if ns else name), ns


def _load(ref: SchemaRef) -> tuple[str, Any, bool]:
    """(file text, expanded schema, whether anything was put in)."""
    text, schema = _parse(ref)
    state: _State = {"defined": set(), "changed": False, "file": _label(ref)}
    return text, _expand(schema, "", state), state["changed"]


def _expand(node: Any, namespace: str, state: _State) -> Any:
    """``node`` (a schema or a type within one) with shared types put in at their first use;
    ``namespace`` is the enclosing one. Whatever is not a valid type is left for fastavro."""
    if isinstance(node, list):
        return [_expand(branch, namespace, state) for branch in node]
    if isinstance(node, str):
        return node if node in _PRIMITIVES else _reference(node, namespace, state)
    if not isinstance(node, dict):
        return node
    kind = node.get("type")
    out = dict(node)
    if kind in _NAMED:
        if isinstance(node.get("name"), str):
            full, inner = _split(node, namespace)
            _define(full, state)
            if kind in ("record", "error") and isinstance(node.get("fields"), list):
                out["fields"] = [{**f, "type": _expand(f["type"], inner, state)}
                                 if isinstance(f, dict) and "type" in f else f for f in node["fields"]]
    elif kind == "array":
        if "items" in node:
            out["items"] = _expand(node["items"], namespace, state)
    elif kind == "map":
        if "values" in node:
            out["values"] = _expand(node["values"], namespace, state)
    elif isinstance(kind, str) and kind not in _PRIMITIVES:  # {"type": "Name"}: the name alone
        expanded = _expand(kind, namespace, state)
        if isinstance(expanded, dict):
            if len(node) > 1:
                raise ValueError(f"{state['file']} gives the shared type {kind!r} attributes at its first use "
                                 f"({', '.join(k for k in node if k != 'type')}); write the name alone")
            return expanded
    return out


def _define(full: str, state: _State) -> None:
    if full in state["defined"]:
        raise ValueError(f"{state['file']} defines the named type {full!r} twice "
                         f"(shared types, put in at their first use: {', '.join(SHARED_TYPES)})")
    state["defined"].add(full)


def _reference(name: str, namespace: str, state: _State) -> Any:
    """The type ``name`` used where ``namespace`` holds: kept when defined before, else the
    shared type's definition (its namespace dropped where it is the enclosing one)."""
    full = name if "." in name or not namespace else f"{namespace}.{name}"
    if full in state["defined"] or name in state["defined"]:  # the latter: a null-namespace type
        return name
    shared = SHARED_TYPES.get(full)
    if shared is None:
        raise ValueError(f"{state['file']} uses the type {name!r} ({full}), which is neither defined before "
                         f"that use nor a shared type of conveyor.schemas ({', '.join(SHARED_TYPES)})")
    _, definition = _parse(shared)
    if not (isinstance(definition, dict) and definition.get("type") in _NAMED
            and isinstance(definition.get("name"), str) and _split(definition, "")[0] == full):
        raise ValueError(f"conveyor.schemas/{shared} does not define {full!r} at its top level")
    own = _split(definition, "")[1]
    if "." not in definition["name"]:
        if own == namespace:
            definition.pop("namespace", None)  # inherited where it is put in, as if written there
        else:
            definition["namespace"] = own  # "" included: not the enclosing one
    state["changed"] = True
    return _expand(definition, own, state)
