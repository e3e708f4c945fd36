"""Backward-compatibility check between a schema and its previous released version.

"Backward compatible" here means what the pipeline needs: a reader using the NEW schema can read data
written with the OLD one (Kafka topics keep old records; workers upgrade first). The check is structural,
following the Avro spec's schema-resolution rules, so it explains *why* a change breaks:

- a field added to a record needs a default;
- a field's type may only widen (int→long→float→double, string↔bytes), never narrow or change kind;
- an enum may not lose a symbol unless the reader enum has a default;
- a union may not lose a branch the writer could have used;
- named types keep their (unqualified) name.

:func:`sample_records` builds records covering every field of a schema, so tests can also run fastavro's
real resolution over them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

__all__ = ["compatibility_problems", "sample_records"]

_PROMOTIONS = {
    "int": {"int", "long", "float", "double"},
    "long": {"long", "float", "double"},
    "float": {"float", "double"},
    "double": {"double"},
    "string": {"string", "bytes"},
    "bytes": {"bytes", "string"},
}
_PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}


def _collect(schema: Any, named: dict[str, Any]) -> None:
    """Index named types by unqualified name so references can be followed."""
    if isinstance(schema, list):
        for s in schema:
            _collect(s, named)
    elif isinstance(schema, Mapping):
        t = schema.get("type")
        if t in ("record", "enum", "fixed"):
            named[str(schema["name"]).rsplit(".", 1)[-1]] = schema
            for f in schema.get("fields", []):
                _collect(f["type"], named)
        elif t == "array":
            _collect(schema["items"], named)
        elif t == "map":
            _collect(schema["values"], named)
        elif isinstance(t, (Mapping, list)):
            _collect(t, named)


def _resolve(schema: Any, named: dict[str, Any]) -> Any:
    if isinstance(schema, str) and schema not in _PRIMITIVES:
        return named[schema.rsplit(".", 1)[-1]]
    if isinstance(schema, Mapping) and isinstance(schema.get("type"), str) and schema["type"] in _PRIMITIVES:
        return schema["type"]  # {"type": "long", "logicalType": ...} resolves like its primitive
    return schema


def _kind(schema: Any) -> str:
    if isinstance(schema, str):
        return schema
    if isinstance(schema, list):
        return "union"
    return str(schema["type"])


def _check(writer: Any, reader: Any, wn: dict[str, Any], rn: dict[str, Any], path: str, out: list[str],
           seen: set[tuple[int, int]]) -> None:
    writer, reader = _resolve(writer, wn), _resolve(reader, rn)
    wk, rk = _kind(writer), _kind(reader)
    if wk == "union":
        for branch in writer:
            sub: list[str] = []
            _check(branch, reader, wn, rn, path, sub, seen)
            out.extend(sub)
        return
    if rk == "union":
        for branch in reader:
            sub = []
            _check(writer, branch, wn, rn, path, sub, seen)
            if not sub:
                return
        out.append(f"{path}: writer type {wk} matches no branch of the reader union")
        return
    if wk in _PROMOTIONS or wk in ("null", "boolean"):
        if rk != wk and rk not in _PROMOTIONS.get(wk, set()):
            out.append(f"{path}: type changed from {wk} to {rk} (only widening is allowed)")
        return
    if wk != rk:
        out.append(f"{path}: type changed from {wk} to {rk}")
        return
    if wk in ("record", "enum", "fixed"):
        w_name = str(writer["name"]).rsplit(".", 1)[-1]
        r_name = str(reader["name"]).rsplit(".", 1)[-1]
        if w_name != r_name and w_name not in reader.get("aliases", []):
            out.append(f"{path}: named type renamed from {w_name} to {r_name} without an alias")
            return
    if wk == "record":
        key = (id(writer), id(reader))
        if key in seen:
            return
        seen.add(key)
        w_fields = {f["name"]: f for f in writer["fields"]}
        for f in reader["fields"]:
            names = [f["name"], *f.get("aliases", [])]
            wf = next((w_fields[n] for n in names if n in w_fields), None)
            fpath = f"{path}.{f['name']}"
            if wf is None:
                if "default" not in f:
                    out.append(f"{fpath}: new field without a default")
                continue
            _check(wf["type"], f["type"], wn, rn, fpath, out, seen)
    elif wk == "enum":
        missing = [s for s in writer["symbols"] if s not in reader["symbols"]]
        if missing and "default" not in reader:
            out.append(f"{path}: enum symbols removed without a default: {', '.join(missing)}")
    elif wk == "fixed":
        if writer["size"] != reader["size"]:
            out.append(f"{path}: fixed size changed")
    elif wk == "array":
        _check(writer["items"], reader["items"], wn, rn, f"{path}[]", out, seen)
    elif wk == "map":
        _check(writer["values"], reader["values"], wn, rn, f"{path}{{}}", out, seen)


def compatibility_problems(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Why a reader with ``new`` could not read data written with ``old`` (empty list = compatible)."""
    wn: dict[str, Any] = {}
    rn: dict[str, Any] = {}
    _collect(old, wn)
    _collect(new, rn)
    out: list[str] = []
    _check(old, new, wn, rn, str(new.get("name", "$")), out, set())
    return out


def _values(schema: Any, named: dict[str, Any], depth: int) -> Iterator[Any]:
    """A few values of ``schema``: every union branch and enum symbol appears in at least one."""
    schema = _resolve(schema, named)
    kind = _kind(schema)
    if kind == "union":
        for branch in schema:
            yield from _values(branch, named, depth)
    elif kind == "null":
        yield None
    elif kind == "boolean":
        yield True
    elif kind in ("int", "long"):
        yield 1_700_000_000_000 if kind == "long" else 7
    elif kind in ("float", "double"):
        yield 1.5
    elif kind == "string":
        yield "s"
    elif kind == "bytes":
        yield b"b"
    elif kind == "enum":
        yield from schema["symbols"]
    elif kind == "fixed":
        yield b"\0" * schema["size"]
    elif kind == "array":
        yield []
        if depth < 4:
            yield from ([v] for v in _values(schema["items"], named, depth + 1))
    elif kind == "map":
        yield {}
        if depth < 4:
            yield from ({"k": v} for v in _values(schema["values"], named, depth + 1))
    elif kind == "record":
        yield from _records(schema, named, depth + 1)


def _records(schema: Mapping[str, Any], named: dict[str, Any], depth: int) -> Iterator[dict[str, Any]]:
    options = {f["name"]: list(_values(f["type"], named, depth)) for f in schema["fields"]}
    width = max((len(v) for v in options.values()), default=1)
    for i in range(width):
        yield {name: vals[i % len(vals)] for name, vals in options.items()}


def sample_records(schema: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Records of ``schema`` that together use every field, union branch and enum symbol."""
    named: dict[str, Any] = {}
    _collect(schema, named)
    return list(_records(schema, named, 0))
