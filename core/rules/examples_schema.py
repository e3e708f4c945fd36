"""A rule's ``examples``: feature sets with the expected result, checked against the registry's types.

Example values are written in YAML (dates as ``2026-03-01``, money as numbers) and converted to the
feature-vector representation the registry documents, so an example runs exactly like production input.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from datetime import date
from typing import Any

import yaml

from core.features.registry import FeatureSpec, FeatureType

from .model import Example
from .rulefile import RuleDoc

__all__ = ["parse_examples", "coerce_value", "EXPECT_KEYS"]

EXPECT_KEYS = ("eligible", "score", "message", "message_contains", "keys", "reason_contains")
_EXAMPLE_KEYS = ("name", "features", "expect")


def coerce_value(kind: FeatureType, value: object) -> tuple[bool, object]:
    """Convert a YAML value to the registry's representation for ``kind``; (False, None) when impossible."""
    if value is None:
        return True, None
    if kind in (FeatureType.MONEY, FeatureType.RATIO, FeatureType.DAYS):
        if isinstance(value, int | float) and not isinstance(value, bool):
            return True, float(value) if kind != FeatureType.DAYS else value
        return False, None
    if kind == FeatureType.COUNT:
        return (True, value) if isinstance(value, int) and not isinstance(value, bool) else (False, None)
    if kind == FeatureType.DATE:
        if isinstance(value, date):
            return True, value
        if isinstance(value, str):
            try:
                return True, date.fromisoformat(value)
            except ValueError:
                return False, None
        return False, None
    if kind == FeatureType.STRING:
        return (True, value) if isinstance(value, str) else (False, None)
    if kind == FeatureType.BOOL:
        return (True, value) if isinstance(value, bool) else (False, None)
    return False, None


def _children(node: yaml.Node) -> dict[str, yaml.Node]:
    return {str(k.value): v for k, v in node.value} if isinstance(node, yaml.MappingNode) else {}


def parse_examples(doc: RuleDoc, registry: Mapping[str, FeatureSpec]) -> tuple[Example, ...]:
    node, data = doc.nodes.get("examples"), doc.data.get("examples")
    if not isinstance(node, yaml.SequenceNode) or not isinstance(data, list):
        return ()
    out: list[Example] = []
    for index, (enode, ex) in enumerate(zip(node.value, data, strict=False), start=1):
        if not isinstance(ex, dict):
            doc.issue(enode, "an example must be a mapping with name, features and expect", "bad-example")
            continue
        kids = _children(enode)
        for key, knode in kids.items():
            if key not in _EXAMPLE_KEYS:
                doc.issue(knode, f"unknown example field '{key}' (use name, features, expect)", "bad-example")
        name = str(ex.get("name") or f"example {index}")
        features = _example_features(doc, registry, kids.get("features"), ex.get("features"), enode)
        expect = _example_expect(doc, kids.get("expect"), ex.get("expect"), enode)
        if features is not None and expect is not None:
            out.append(Example(name, features, expect, enode.start_mark.line + 1))
    return tuple(out)


def _example_features(doc: RuleDoc, registry: Mapping[str, FeatureSpec], node: yaml.Node | None, data: object,
                      parent: yaml.Node) -> dict[str, object] | None:
    if not isinstance(data, dict) or node is None:
        doc.issue(node or parent, "example needs features: a mapping of feature name to value", "bad-example")
        return None
    kids = _children(node)
    out: dict[str, object] = {}
    ok = True
    for fname, value in data.items():
        vnode = kids.get(str(fname), node)
        spec = registry.get(str(fname))
        if spec is None:
            close = difflib.get_close_matches(str(fname), list(registry), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            doc.issue(vnode, f"example uses unknown feature '{fname}'{hint}", "unknown-feature")
            ok = False
            continue
        if spec.type == FeatureType.COLLECTION:
            items = _example_items(doc, spec, vnode, value)
            ok = ok and items is not None
            out[str(fname)] = items
            continue
        good, converted = coerce_value(spec.type, value)
        if not good:
            doc.issue(vnode, f"example value of {fname} must be {spec.type.value}, got {value!r}", "type-mismatch")
            ok = False
        out[str(fname)] = converted
    return out if ok else None


def _example_items(doc: RuleDoc, spec: FeatureSpec, node: yaml.Node, value: object) -> list[dict[str, Any]] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        doc.issue(node, f"{spec.name} must be a list of items", "type-mismatch")
        return None
    item_nodes = node.value if isinstance(node, yaml.SequenceNode) else []
    items: list[dict[str, Any]] = []
    for i, item in enumerate(value):
        inode = item_nodes[i] if i < len(item_nodes) else node
        if not isinstance(item, dict):
            doc.issue(inode, f"each {spec.name} item must be a mapping of field to value", "type-mismatch")
            return None
        kids = _children(inode)
        converted: dict[str, Any] = {}
        for field, fvalue in item.items():
            fspec = spec.item.get(str(field))
            fnode = kids.get(str(field), inode)
            if fspec is None:
                close = difflib.get_close_matches(str(field), list(spec.item), n=1)
                hint = f"; did you mean '{close[0]}'?" if close else ""
                doc.issue(fnode, f"{spec.name} items have no field '{field}'{hint}", "unknown-feature")
                return None
            good, cv = coerce_value(fspec.type, fvalue)
            if not good:
                doc.issue(fnode, f"{spec.name}.{field} must be {fspec.type.value}, got {fvalue!r}", "type-mismatch")
                return None
            converted[str(field)] = cv
        items.append(converted)
    return items


def _example_expect(doc: RuleDoc, node: yaml.Node | None, data: object, parent: yaml.Node) -> dict[str, Any] | None:
    if not isinstance(data, dict) or node is None:
        doc.issue(node or parent, "example needs expect: {eligible: true|false, ...}", "bad-example")
        return None
    kids = _children(node)
    ok = True
    for key, value in data.items():
        knode = kids.get(str(key), node)
        if key not in EXPECT_KEYS:
            doc.issue(knode, f"unknown expectation '{key}' (use {', '.join(EXPECT_KEYS)})", "bad-example")
            ok = False
        elif key == "eligible" and not isinstance(value, bool):
            doc.issue(knode, "eligible must be true or false", "bad-example")
            ok = False
        elif key == "score" and not _is_score_spec(value):
            doc.issue(knode, "score must be a number or [low, high] within 0..1", "bad-example")
            ok = False
        elif key in ("message", "message_contains", "reason_contains") and not isinstance(value, str):
            doc.issue(knode, f"{key} must be text", "bad-example")
            ok = False
        elif key == "keys" and not (isinstance(value, list) and all(isinstance(k, str) for k in value)):
            doc.issue(knode, "keys must be a list of item keys, best first", "bad-example")
            ok = False
    if "eligible" not in data:
        doc.issue(node, "expect needs eligible: true or false", "bad-example")
        ok = False
    return data if ok else None


def _is_score_spec(value: object) -> bool:
    def num(v: object) -> bool:
        return isinstance(v, int | float) and not isinstance(v, bool) and 0 <= v <= 1

    if num(value):
        return True
    return isinstance(value, list) and len(value) == 2 and all(num(v) for v in value) and value[0] <= value[1]
