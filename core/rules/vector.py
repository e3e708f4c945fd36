"""Array form of a plain rule, for sweeps over a batch of customers (one column per feature).

The same validated expressions are emitted as elementwise array code (``&``, ``|``, ``~``, ``_where``)
instead of scalar code. This module only generates source: the caller supplies the array functions
(numpy in ``bench/bench_rules.py``), so ``core`` keeps its no-numpy rule. Rules with ``for_each``,
aggregates over collections, a validity window or text-in-text tests have no array form and raise
:class:`NotVectorisable`; the scalar evaluator stays the reference (messages are rendered by it for
the eligible rows only).
"""

from __future__ import annotations

import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from core.features.registry import REGISTRY, FeatureSpec

from .errors import ValidationIssue
from .expressions import ExprCompiler, Scope
from .model import CompiledRule
from .rulefile import read_rule_doc

__all__ = ["NotVectorisable", "VectorRule", "compile_vector", "ARRAY_FUNCTIONS"]

ARRAY_FUNCTIONS = ("_min", "_max", "_abs", "_round", "_floor", "_ceil", "_clamp", "_days_between",
                   "_pct_change", "_where", "_isin", "_known")
"""Names the generated array code calls; the namespace given to :func:`compile_vector` must define them."""


class NotVectorisable(ValueError):
    """The rule uses something with no array form (it is still evaluated by the scalar path)."""


@dataclass(frozen=True, slots=True)
class VectorRule:
    id: str
    version: int
    reads: tuple[str, ...]
    code: str
    fn: Callable[[Mapping[str, Any]], tuple[Any, Any]]
    """``fn(columns) -> (eligible mask, raw scores)``; scores are meaningful where the mask is true."""


def compile_vector(rule: CompiledRule, namespace: Mapping[str, object],
                   registry: Mapping[str, FeatureSpec] = REGISTRY) -> VectorRule:
    """Array code for ``rule``'s conditions and score; raise :class:`NotVectorisable` when impossible."""
    if rule.for_each or rule.valid_from or rule.valid_until:
        raise NotVectorisable(f"{rule.id}: for_each and validity windows have no array form")
    missing = [name for name in ARRAY_FUNCTIONS if name not in namespace]
    if missing:
        raise ValueError(f"namespace lacks {', '.join(missing)}")
    doc = read_rule_doc(rule.source, rule.filename)
    issues: list[ValidationIssue] = []
    cc = ExprCompiler(registry, issues, vector=True)
    when_nodes = doc.nodes["when"].value if isinstance(doc.data["when"], list) else [doc.nodes["when"]]
    conds = []
    facts: frozenset[str] = frozenset()
    for node in when_nodes:
        typed = cc.compile(doc.expr_source(node), Scope(facts=facts))
        if typed is None:
            break
        conds.append(typed.code)
        facts = facts | typed.facts
    score = cc.compile(doc.expr_source(doc.nodes["score"]), Scope(facts=facts)) if not issues else None
    if issues or score is None:
        raise NotVectorisable(f"{rule.id}: " + "; ".join(i.message for i in issues))
    # the scalar path fails (not eligible) when the score, a value or a placeholder reads an unknown
    # feature: the mask must require those to be known too
    body = set(cc.used)
    for value_node in (v for _, v in doc.nodes["values"].value) if "values" in doc.nodes else ():
        if cc.compile(doc.expr_source(value_node), Scope(facts=facts)) is None:
            raise NotVectorisable(f"{rule.id}: " + "; ".join(i.message for i in issues))
        body |= cc.used
    values = set(doc.data.get("values") or {})
    for _, name, _, _ in string.Formatter().parse(str(doc.data["message"])):
        if name and name not in values and name in registry:
            body.add(name)
    var = cc.feature_vars
    for name in body:
        cc.feature_var(name)
    known = [f"_known({var[name]})" for name in sorted(body)]
    lines = ["def _vec(_C):", *(f"    {v} = _C[{name!r}]" for name, v in sorted(var.items())),
             f"    _m = {' & '.join([*conds, *known])}", f"    return _m, {score.code}"]
    code = "\n".join(lines) + "\n"
    ns: dict[str, Any] = {"__builtins__": {}, **namespace, "_K": tuple(cc.consts)}
    exec(compile(code, f"<vector rule {rule.id}>", "exec"), ns)  # noqa: S102 - generated from validated AST
    return VectorRule(rule.id, rule.version, tuple(sorted(var)), code, ns["_vec"])
