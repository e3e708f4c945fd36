"""Reading a rule's YAML file with the position of every value, and checking its plain fields.

PyYAML's node tree (``compose``) keeps line/column marks that ``safe_load`` throws away; we keep both so
every problem can be reported where the author wrote it.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import yaml

from .errors import ValidationIssue
from .expressions import ExprSource

__all__ = ["RuleDoc", "read_rule_doc", "parse_duration", "REQUIRED", "OPTIONAL"]

REQUIRED = ("id", "version", "title", "kind", "trigger", "when", "score", "message")
OPTIONAL = ("description", "owner", "for_each", "values", "cooldown", "valid_from", "valid_until", "examples")
_ID_RE = re.compile(r"^[a-z][a-z0-9_]{2,63}$")
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([dhm])\s*$")


@dataclass
class RuleDoc:
    """The parsed file: plain values plus the YAML node of each, for positions."""

    file: str
    text: str
    data: dict[str, Any] = field(default_factory=dict)
    nodes: dict[str, yaml.Node] = field(default_factory=dict)
    issues: list[ValidationIssue] = field(default_factory=list)

    def issue(self, node: yaml.Node | None, message: str, code: str) -> None:
        line, col = (node.start_mark.line + 1, node.start_mark.column + 1) if node is not None else (1, 1)
        self.issues.append(ValidationIssue(self.file, line, col, message, code))

    def expr_source(self, node: yaml.Node) -> ExprSource:
        return expr_source(node, self.text, self.file)


def expr_source(node: yaml.Node, text: str, file: str) -> ExprSource:
    """Where a scalar's text starts in the file, so expression positions map back to file positions."""
    mark = node.start_mark
    value = str(node.value)
    style = getattr(node, "style", None)
    if style in ("|", ">"):
        lines = text.split("\n")
        for idx in range(mark.line + 1, len(lines)):
            if lines[idx].strip():
                indent = len(lines[idx]) - len(lines[idx].lstrip(" "))
                return ExprSource(value, file, line=idx + 1, column=indent + 1, indent=indent)
        return ExprSource(value, file, line=mark.line + 2, column=1)
    quoted = 1 if style in ("'", '"') else 0
    return ExprSource(value, file, line=mark.line + 1, column=mark.column + 1 + quoted, indent=mark.column)


def parse_duration(value: object) -> timedelta | None:
    """``30d``, ``12h``, ``90m`` or a number of days; None when the text is not a duration."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return timedelta(days=value) if value >= 0 else None
    if not isinstance(value, str):
        return None
    m = _DURATION_RE.match(value)
    if not m:
        return None
    n = float(m.group(1))
    return {"d": timedelta(days=n), "h": timedelta(hours=n), "m": timedelta(minutes=n)}[m.group(2)]


def read_rule_doc(text: str, file: str) -> RuleDoc:
    """Parse the YAML and check every non-expression field; expressions are compiled by the caller."""
    doc = RuleDoc(file=file, text=text)
    try:
        loader = yaml.SafeLoader(text)
        try:
            root = loader.get_single_node()
            data = loader.construct_document(root) if root is not None else None
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        doc.issues.append(ValidationIssue(file, line, col, f"YAML syntax error: {exc.problem or exc}",
                                          "yaml-syntax"))
        return doc
    except (yaml.YAMLError, ValueError, TypeError, RecursionError) as exc:
        doc.issues.append(ValidationIssue(file, 1, 1, f"YAML error: {exc}", "yaml-syntax"))
        return doc
    if not isinstance(root, yaml.MappingNode) or not isinstance(data, dict):
        doc.issues.append(ValidationIssue(file, 1, 1, "a rule file must be a YAML mapping (key: value lines)",
                                          "bad-value"))
        return doc
    doc.data = data
    for key_node, value_node in root.value:
        key = key_node.value
        if key in doc.nodes:
            doc.issue(key_node, f"'{key}' is given twice", "duplicate-key")
        doc.nodes[key] = value_node
        if key not in REQUIRED and key not in OPTIONAL:
            close = difflib.get_close_matches(str(key), [*REQUIRED, *OPTIONAL], n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            doc.issue(key_node, f"unknown field '{key}'{hint}", "unknown-field")
    for key in REQUIRED:
        if key not in data:
            doc.issue(root, f"missing required field '{key}'", "missing-field")
    _check_plain_fields(doc)
    return doc


def _check_plain_fields(doc: RuleDoc) -> None:
    d, n = doc.data, doc.nodes
    rid = d.get("id")
    if "id" in d and not (isinstance(rid, str) and _ID_RE.match(rid)):
        doc.issue(n["id"], "id must be 3-64 characters of lower-case letters, digits and _, starting with a "
                           "letter", "bad-value")
    version = d.get("version")
    if "version" in d and (isinstance(version, bool) or not isinstance(version, int) or version < 1):
        doc.issue(n["version"], "version must be a whole number from 1 (raise it on every change)", "bad-value")
    for key in ("title", "description", "owner"):
        if key in d and not (isinstance(d[key], str) and d[key].strip()):
            doc.issue(n[key], f"{key} must be non-empty text", "bad-value")
    if "kind" in d and d["kind"] not in ("alert", "insight"):
        doc.issue(n["kind"], "kind must be 'alert' (real-time push) or 'insight' (in-app feed)", "bad-value")
    if "trigger" in d and d["trigger"] not in ("realtime", "nightly", "both"):
        doc.issue(n["trigger"], "trigger must be 'realtime', 'nightly' or 'both'", "bad-value")
    if "cooldown" in d and d["cooldown"] is not None:
        if parse_duration(d["cooldown"]) is None:
            doc.issue(n["cooldown"], "cooldown must be a duration such as 30d, 12h or 90m", "bad-value")
        elif d.get("kind") == "insight":
            doc.issue(n["cooldown"], "cooldown only applies to alerts (kind: alert)", "bad-value")
    for key in ("valid_from", "valid_until"):
        if key in d and d[key] is not None and not isinstance(d[key], date):
            doc.issue(n[key], f"{key} must be a date written YYYY-MM-DD", "bad-value")
    vf, vu = d.get("valid_from"), d.get("valid_until")
    if isinstance(vf, date) and isinstance(vu, date) and vf > vu:
        doc.issue(n["valid_until"], f"valid_until {vu} is before valid_from {vf}", "bad-value")
    if "when" in d:
        when = d["when"]
        items = when if isinstance(when, list) else [when]
        if not items or not all(isinstance(w, str) and w.strip() for w in items):
            doc.issue(n["when"], "when must be a condition or a list of conditions (all must hold)", "bad-value")
    for key in ("score", "message"):
        if key in d and not isinstance(d[key], str | int | float):
            doc.issue(n[key], f"{key} must be {'an expression' if key == 'score' else 'text'}", "bad-value")
    if "values" in d and d["values"] is not None and not (
            isinstance(d["values"], dict) and all(isinstance(k, str) and k.isidentifier() for k in d["values"])):
        doc.issue(n["values"], "values must map placeholder names to expressions", "bad-value")
    if "examples" in d and not isinstance(d["examples"], list):
        doc.issue(n["examples"], "examples must be a list of {name, features, expect}", "bad-value")
