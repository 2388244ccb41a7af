"""Shared named types of the Avro schemas: ``KeyFields`` is defined once (``key_fields.avsc``),
the topic schemas refer to it by name, and :func:`conveyor.schemas.schema_text` puts it back in
so that what is registered is byte for byte what was registered before (commit 03a1f86)."""
from __future__ import annotations

import fnmatch
import hashlib
import io
import json
import tomllib
from datetime import UTC, datetime
from importlib.resources import files
from pathlib import Path

import fastavro
import pytest
from fastavro.schema import to_parsing_canonical_form

from conveyor.schemas import SHARED_TYPES, schema_json, schema_text

REPO = Path(__file__).resolve().parents[3]
SCHEMAS = files("conveyor.schemas")
USERS = ("extracted.avsc", "embedded.avsc", "prediction.avsc")
"""The schemas holding a ``fields`` field of type ``KeyFields``."""

PINNED = {  # sha256 of the text, and of fastavro's Parsing Canonical Form, of 03a1f86's files
    "extracted.avsc": ("07b5548f85eb5882c8d5d9a1a4b2a207bb59a52be4b312fde1ea8867a667ca86",
                       "4b424587f126249544b310af5a8ab5aebcde2400ad2647b94ac8d4678b0295f9"),
    "embedded.avsc": ("1fce5c703baa4bd58be118fabd7c1cb66e621e29927bd9daf2a7473e3b3e3e25",
                      "a43d967199b9c55451354d6c1f30fd634dd46aa2fd64d3be269f031216f7e471"),
    "prediction.avsc": ("e0bb6bd32d6919a496a2bda347f38d63ace5b70ec61ed760e280c9c21247ffea",
                        "d7d6766d61b4e7b48b00dde6920cddf090d45be29d424d66fe86a4942eabcac8"),
}
"""A changed digest means a changed registered schema: intended (a new optional field with a
default, checked BACKWARD by tests/unit/processors/test_field_confidence.py)? pin the new one."""


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _definitions(node, namespace: str = "", out: list | None = None) -> list[tuple[str, dict]]:
    """(full name, definition) of every named type defined in ``node``, in document order."""
    out = [] if out is None else out
    if isinstance(node, list):
        for branch in node:
            _definitions(branch, namespace, out)
    elif isinstance(node, dict):
        kind = node.get("type")
        if kind in ("record", "enum", "fixed"):
            name = node["name"]
            ns = name.rsplit(".", 1)[0] if "." in name else node.get("namespace", namespace)
            out.append((name if "." in name else f"{ns}.{name}" if ns else name, node))
            for field in node.get("fields", []):
                _definitions(field["type"], ns, out)
        elif kind == "array":
            _definitions(node["items"], namespace, out)
        elif kind == "map":
            _definitions(node["values"], namespace, out)
    return out


def _avsc_files() -> list:
    return sorted((f for f in SCHEMAS.iterdir() if f.name.endswith(".avsc")), key=lambda f: f.name)


def _shared_names() -> dict[str, str]:
    """Every named type a shared file defines (nested ones included) -> that file."""
    return {name: file for file in SHARED_TYPES.values()
            for name, _ in _definitions(json.loads((SCHEMAS / file).read_text()))}


def test_each_shared_type_is_defined_in_its_own_file_only():
    shared = _shared_names()
    assert {"io.conveyor.KeyFields", "io.conveyor.FieldEvidence"} <= set(shared)
    for path in _avsc_files():
        for name, _ in _definitions(json.loads(path.read_text())):
            if name in shared:
                assert path.name == shared[name], f"{path.name} defines {name}; refer to it by name instead"
    for name in USERS:  # on disk, a name reference; expanded, the definition
        assert "io.conveyor.KeyFields" not in dict(_definitions(json.loads((SCHEMAS / name).read_text()))), name
        assert "io.conveyor.KeyFields" in dict(_definitions(schema_json(name))), name


def test_a_shared_file_states_its_namespace_and_is_a_schema_of_its_own():
    for full, file in SHARED_TYPES.items():
        raw = json.loads((SCHEMAS / file).read_text())
        assert raw["type"] == "record" and f"{raw['namespace']}.{raw['name']}" == full, file
        assert schema_text(file) == (SCHEMAS / file).read_text()  # nothing to put in
        fastavro.parse_schema(schema_json(file))


def test_the_shared_files_ship_as_package_data():
    patterns = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["*"]
    for file in SHARED_TYPES.values():
        assert any(fnmatch.fnmatch(file, p) for p in patterns), f"{file} is not package data of conveyor.schemas"
        assert (SCHEMAS / file).is_file()


@pytest.mark.parametrize("name", USERS)
def test_the_expanded_schemas_are_the_ones_registered_before(name):
    text_digest, canonical_digest = PINNED[name]
    text = schema_text(name)
    assert _sha256(text) == text_digest, f"{name}: the registered text changed"
    assert json.loads(text) == schema_json(name)
    assert _sha256(to_parsing_canonical_form(fastavro.parse_schema(schema_json(name)))) == canonical_digest


@pytest.mark.parametrize("name", USERS)
def test_every_expanded_schema_holds_key_fields_as_key_fields_avsc_defines_it(name):
    shared = json.loads((SCHEMAS / "key_fields.avsc").read_text())
    shared.pop("namespace")  # inherited from the io.conveyor record it is put in
    definitions = _definitions(schema_json(name))
    assert [n for n, _ in definitions].count("io.conveyor.KeyFields") == 1
    assert dict(definitions)["io.conveyor.KeyFields"] == shared
    assert schema_json(name)["namespace"] == "io.conveyor"


def _value(schema, named: dict):
    """A value of ``schema`` with every optional part present (first non-null union branch, one
    array item, one map entry)."""
    if isinstance(schema, list):
        return _value(next(b for b in schema if b != "null"), named)
    if isinstance(schema, str):
        if schema in named:
            return _value(named[schema], named)
        return {"string": "s", "int": 3, "long": 4, "double": 0.25, "float": 0.5, "boolean": True,
                "bytes": b"\x00b", "null": None}[schema]
    kind = schema["type"]
    if schema.get("logicalType") == "timestamp-millis":
        return datetime(2024, 1, 2, 3, 4, 5, 6000, tzinfo=UTC)
    if kind in ("record", "enum", "fixed"):
        named[schema["name"]] = schema
    if kind == "record":
        return {f["name"]: _value(f["type"], named) for f in schema["fields"]}
    if kind == "enum":
        return schema["symbols"][-1]
    if kind == "fixed":
        return b"f" * schema["size"]
    if kind == "array":
        return [_value(schema["items"], named)]
    if kind == "map":
        return {"k": _value(schema["values"], named)}
    return _value(kind, named)


@pytest.mark.parametrize("name", [f.name for f in _avsc_files()])
def test_records_round_trip_with_the_expanded_schemas(name):
    raw = schema_json(name)
    value = _value(raw, {})
    parsed = fastavro.parse_schema(raw)
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, parsed, value)
    buf.seek(0)
    assert fastavro.schemaless_reader(buf, parsed) == value
    if name in USERS:
        assert value["fields"]["evidence"][0]["field"] == "s"  # KeyFields and FieldEvidence were written


def test_files_without_shared_types_come_back_unchanged():
    plugin = REPO / "examples" / "conveyor-langid" / "conveyor_langid" / "language.avsc"
    for path in [plugin] + [f for f in _avsc_files() if f.name not in USERS]:
        assert schema_text(path) == path.read_text(), path
        assert schema_json(path) == json.loads(path.read_text()), path
    assert schema_text("text.avsc") == (SCHEMAS / "text.avsc").read_text()  # by name in the package


def _write(tmp_path: Path, schema: dict) -> Path:
    path = tmp_path / "plugin.avsc"
    path.write_text(json.dumps(schema))
    return path


def test_a_shared_type_is_put_in_at_its_first_use_only(tmp_path):
    path = _write(tmp_path, {"type": "record", "name": "Plugin", "namespace": "io.conveyor", "fields": [
        {"name": "a", "type": ["null", "KeyFields"], "default": None},
        {"name": "b", "type": {"type": "array", "items": "io.conveyor.KeyFields"}},
        {"name": "c", "type": {"type": "map", "values": "FieldEvidence"}}]})
    out = schema_json(path)
    assert out["fields"][0]["type"][1]["name"] == "KeyFields" and "namespace" not in out["fields"][0]["type"][1]
    assert out["fields"][1]["type"]["items"] == "io.conveyor.KeyFields"
    assert out["fields"][2]["type"]["values"] == "FieldEvidence"
    fastavro.parse_schema(out)
    assert json.loads(schema_text(path)) == out


def test_a_plugin_in_another_namespace_names_the_shared_type_in_full(tmp_path):
    path = _write(tmp_path, {"type": "record", "name": "Plugin", "namespace": "org.example",
                             "fields": [{"name": "fields", "type": "io.conveyor.KeyFields"}]})
    kf = schema_json(path)["fields"][0]["type"]
    assert (kf["name"], kf["namespace"]) == ("KeyFields", "io.conveyor")  # stated: not the enclosing one
    fastavro.parse_schema(schema_json(path))
    short = _write(tmp_path, {"type": "record", "name": "Plugin", "namespace": "org.example",
                              "fields": [{"name": "fields", "type": "KeyFields"}]})
    with pytest.raises(ValueError, match=r"plugin\.avsc uses the type 'KeyFields' \(org\.example\.KeyFields\)"):
        schema_text(short)  # org.example.KeyFields is not shared


def test_an_unknown_type_name_is_a_value_error_naming_the_file_and_the_type(tmp_path):
    path = _write(tmp_path, {"type": "record", "name": "Plugin", "namespace": "io.conveyor",
                             "fields": [{"name": "x", "type": ["null", "Missing"]}]})
    with pytest.raises(ValueError, match=r"plugin\.avsc uses the type 'Missing' \(io\.conveyor\.Missing\)"):
        schema_json(path)


def test_a_name_defined_twice_is_a_value_error(tmp_path):
    path = _write(tmp_path, {"type": "record", "name": "Plugin", "namespace": "io.conveyor", "fields": [
        {"name": "a", "type": "KeyFields"},
        {"name": "b", "type": {"type": "record", "name": "FieldEvidence", "fields": []}}]})
    with pytest.raises(ValueError, match=r"plugin\.avsc defines the named type 'io\.conveyor\.FieldEvidence' twice"):
        schema_text(path)


def test_a_file_that_is_not_json_or_not_there(tmp_path):
    bad = tmp_path / "bad.avsc"
    bad.write_text("{")
    with pytest.raises(ValueError, match=r"bad\.avsc is not JSON"):
        schema_text(bad)
    with pytest.raises(FileNotFoundError):
        schema_text("no_such.avsc")
