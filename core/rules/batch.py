"""Catalogue-level evaluation: every given rule for one feature set in ONE generated function.

Scoring a customer evaluates many rules over the same feature vector. Rule by rule, each pays its own call,
its own feature reads, and its own pass over each collection it iterates (a dozen rules loop over the same
recurring payments, each reading the same item fields). :func:`evaluate_all` runs a function generated for
the exact list of rules it is given:

- every feature the rules read is read once, into a local;
- the for_each rules over the same collection share ONE loop over it; item fields that several of them read
  are read once per item;
- outcomes are built exactly as each rule's own fast function builds them (the same rewritten expressions,
  see :mod:`.fastpath`), and the not-eligible ones are the rule's own precomputed instances.

Errors: each rule's part of the function runs under its own ``try``. If anything in it raises, that rule's
outcome comes from its reference function (the direct translation, which records the reason exactly as
``CompiledRule.evaluate`` does); a failure in a shared step (a missing feature, a collection that is not a
list, an item without a shared field) sends every rule sharing that step to its reference function. As in
the per-rule fast path, the shared function may evaluate more than a rule would (a field read for another
rule) but never less, so whenever the reference meets an error, so does the shared function.

The source is assembled from code this package generated from validated rule ASTs (author text only ever
sits in the constants tables), re-parsed with :mod:`ast` and compiled once per distinct list of rules (the
incremental path asks the same few lists again and again; a bounded cache keeps the functions).
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from operator import itemgetter
from typing import Any

from .fastpath import FAST_NAMES, FastGen
from .model import ItemResult, RuleOutcome
from .runtime import RUNTIME

__all__ = ["RulePlan", "BatchEvaluator", "batch_evaluator", "evaluate_all"]

_MAX_CACHED = 64


@dataclass(frozen=True, slots=True)
class RulePlan:
    """What a rule's evaluation consists of, as generated code fragments: input to the shared function."""

    coll: str | None  # the for_each collection
    key: str | None  # the collection's key field
    conjuncts: tuple[str, ...]  # the when-conditions' code, in order
    score: str
    values: tuple[tuple[str, str], ...]  # (name, code)
    message: str  # the message's f-string code (reads ``_p_<value>`` locals)
    feature_vars: Mapping[str, str]  # feature name -> the local the codes use for it
    consts: tuple[object, ...]  # the constants table ``_K``
    not_eligible: tuple[RuleOutcome, ...]
    windows: tuple[RuleOutcome, RuleOutcome]  # outside valid_from, outside valid_until
    valid_from: date | None
    valid_until: date | None
    float_features: frozenset[str]  # money/ratio features (floats by the registry's contract)
    float_fields: frozenset[str]  # item fields that are money/ratio in every collection
    reference: Callable[[Mapping[str, object]], RuleOutcome]  # never raises


class _Renamer(ast.NodeTransformer):
    def __init__(self, names: Mapping[str, str]) -> None:
        self.names = names

    def visit_Name(self, node: ast.Name) -> ast.Name:
        new = self.names.get(node.id)
        return node if new is None else ast.Name(new, node.ctx)


def _renamed(code: str, names: Mapping[str, str]) -> str:
    tree = _Renamer(names).visit(ast.parse(code, mode="eval"))
    return ast.unparse(ast.fix_missing_locations(tree))


def _feature_local(name: str) -> str:
    return f"_g_{name}"


class _Section:
    """One rule's part of the shared function."""

    def __init__(self, index: int, rule: Any, loop_colls: frozenset[str]) -> None:
        plan: RulePlan = rule.plan
        self.loop_colls = loop_colls  # locals of the collections a shared loop iterates
        self.fused_init: list[str] = []  # this rule's aggregates computed in shared loops: their initial values
        self.fused: dict[str, list[str]] = {}  # collection local -> statements per element (``_x``)
        self.index, self.rule, self.plan = index, rule, plan
        self.sfx = f"_{index}"
        self.out = f"_o{index}"
        rename = {var: _feature_local(name) for name, var in plan.feature_vars.items()}
        self.conds = [_renamed(c, rename) for c in plan.conjuncts]
        self.score = _renamed(plan.score, rename)
        self.values = [(k, _renamed(c, rename)) for k, c in plan.values]
        self.message = _renamed(plan.message, rename)
        self.gen = FastGen(in_loop=plan.coll is not None,
                           float_names=frozenset(_feature_local(n) for n in plan.float_features),
                           float_fields=plan.float_fields, suffix=self.sfx,
                           sink=self._take if plan.coll is None else None)
        self.gen.plan([*self.conds, self.score, *(c for _, c in self.values), self.message])

    def _take(self, coll_local: str, init: list[str], per_element: list[str]) -> bool:
        if coll_local not in self.loop_colls:
            return False
        self.fused_init += init
        self.fused.setdefault(coll_local, []).extend(per_element)
        return True

    def namespace(self) -> dict[str, object]:
        p, s = self.plan, self.sfx
        ns: dict[str, object] = {f"_K{s}": p.consts, f"_RID{s}": p.not_eligible[0].rule_id,
                                 f"_VER{s}": p.not_eligible[0].rule_version, f"_VF{s}": p.valid_from,
                                 f"_VU{s}": p.valid_until, f"_NW0{s}": p.windows[0], f"_NW1{s}": p.windows[1],
                                 f"_REF{s}": p.reference}
        ns.update({f"_K{i}{s}": p.consts[i] for i in self.gen.consts})
        ns.update({f"_NE{i}{s}": o for i, o in enumerate(p.not_eligible)})
        return ns

    def body(self, cur: str) -> list[str]:
        """Score, values and message at indent ``cur``; leaves ``_s`` and the message expression."""
        pre, (s, *vals, msg) = self.gen.segment([self.score, *(c for _, c in self.values), self.message], cur)
        lines = [*pre, f"{cur}_s = {s}", f"{cur}if not 0.0 <= _s <= 1.0: _s = _check_score(_s)"]
        lines += [f"{cur}_p_{k} = {code}" for (k, _), code in zip(self.values, vals, strict=True)]
        self._msg = msg
        return lines

    def plain(self) -> list[str]:
        """A rule without for_each (unindented): assigns its outcome to ``_o<i>``.

        It reads each feature just before the first test that needs it, as the rule's own fast function
        does: a feature behind a failing condition is never touched (touching a value costs a memory access).
        """
        p, s, o = self.plan, self.sfx, self.out
        ind = ""
        lines = [f"{ind}try:"]
        cur = ind + "    "
        loaded: set[str] = set()

        def load(codes: list[str], at: str) -> list[str]:
            names = sorted({n.id for code in codes for n in ast.walk(ast.parse(code, mode="eval"))
                            if isinstance(n, ast.Name) and n.id.startswith("_g_")} - loaded)
            loaded.update(names)
            return [f"{at}{name} = _F[{name[3:]!r}]" for name in names]

        checks: list[tuple[str, str]] = []
        if p.valid_from:
            checks.append((f"{_feature_local('today')} >= _VF{s}", f"_NW0{s}"))
        if p.valid_until:
            checks.append((f"{_feature_local('today')} <= _VU{s}", f"_NW1{s}"))
        for test, otherwise in checks:
            lines += load([test], cur)
            lines += [f"{cur}if not ({test}): {o} = {otherwise}", f"{cur}else:"]
            cur += "    "
        for i, cond in enumerate(self.conds):
            lines += load([cond], cur)
            pre, (code,) = self.gen.segment([cond], cur)
            lines += pre
            lines += [f"{cur}if not {code}: {o} = _NE{i}{s}", f"{cur}else:"]
            cur += "    "
        lines += load([self.score, *(c for _, c in self.values), self.message], cur)
        lines += self.body(cur)
        lines.append(f"{cur}{o} = _new(_O, (_RID{s}, _VER{s}, True, _s, (), {self._msg}, (), None))")
        lines += [f"{ind}except Exception:", f"{ind}    {o} = _REF{s}(_F)"]
        return lines

    def item_part(self, ind: str) -> list[str]:
        """A for_each rule's work for one item of the shared loop (``_it``), under its own try."""
        p, i = self.plan, self.index
        lines = [f"{ind}try:"]
        cur = ind + "    "
        if p.valid_from or p.valid_until:
            lines.append(f"{cur}if _win{i} is None:")
            cur += "    "
        for cond in self.conds:
            pre, (code,) = self.gen.segment([cond], cur)
            lines += pre
            lines.append(f"{cur}if {code}:")
            cur += "    "
        lines += self.body(cur)
        lines += [f"{cur}_r = _new(_I, (_it[{p.key!r}], _s, {self._msg}))",
                  f"{cur}if _first{i} is None: _first{i} = _r",
                  f"{cur}elif _items{i} is None: _items{i} = [_first{i}, _r]",
                  f"{cur}else: _items{i}.append(_r)",
                  f"{ind}except Exception:", f"{ind}    _bad{i} = True"]
        return lines

    def before_loop(self, ind: str) -> list[str]:
        p, s, i = self.plan, self.sfx, self.index
        lines = [f"{ind}_bad{i} = False", f"{ind}_first{i} = _items{i} = None"]
        if p.valid_from or p.valid_until:
            today = _feature_local("today")
            lines += [f"{ind}_win{i} = None", f"{ind}try:"]
            if p.valid_from:
                lines.append(f"{ind}    if {today} < _VF{s}: _win{i} = _NW0{s}")
            if p.valid_until:
                lines.append(f"{ind}    {'elif' if p.valid_from else 'if'} {today} > _VU{s}: _win{i} = _NW1{s}")
            lines += [f"{ind}except Exception:", f"{ind}    _bad{i} = True"]
        if self.gen.preloop:  # aggregates not reading the item: once, before the shared loop
            lines += [f"{ind}try:", *(ind + line for line in self.gen.preloop),
                      f"{ind}except Exception:", f"{ind}    _bad{i} = True"]
        return lines

    def after_loop(self, ind: str) -> list[str]:
        p, s, i, o = self.plan, self.sfx, self.index, self.out
        lines = [f"{ind}if _bad{i}: {o} = _REF{s}(_F)"]
        if p.valid_from or p.valid_until:
            lines.append(f"{ind}elif _win{i} is not None: {o} = _win{i}")
        lines += [f"{ind}elif _first{i} is None: {o} = _NE0{s}",
                  f"{ind}elif _items{i} is None: {o} = _new(_O, (_RID{s}, _VER{s}, True, _first{i}[1], (_first{i},),"
                  f" _first{i}[2], (), None))",
                  f"{ind}else:", f"{ind}    _items{i}.sort(key=_by_score, reverse=True)",
                  f"{ind}    {o} = _new(_O, (_RID{s}, _VER{s}, True, _items{i}[0][1], tuple(_items{i}),"
                  f" _items{i}[0][2], (), None))"]
        return lines


class _SharedFields(ast.NodeTransformer):
    """In a shared loop: ``_it['field']`` → the local ``_i_field`` for the fields read once per item."""

    def __init__(self, fields: set[str]) -> None:
        self.fields = fields

    def visit_Subscript(self, node: ast.Subscript) -> ast.expr:
        if isinstance(node.value, ast.Name) and node.value.id == "_it" and isinstance(node.slice, ast.Constant) \
                and node.slice.value in self.fields:
            return ast.Name(f"_i_{node.slice.value}", ast.Load())
        self.generic_visit(node)
        return node


def _item_field_reads(node: ast.AST) -> list[str]:
    return [n.slice.value for n in ast.walk(node)
            if isinstance(n, ast.Subscript) and isinstance(n.value, ast.Name) and n.value.id == "_it"
            and isinstance(n.slice, ast.Constant) and isinstance(n.slice.value, str) and n.slice.value.isidentifier()]


def _first_reads(part: ast.stmt) -> list[str]:
    """Item fields a rule's part of the loop reads for every item: before and in its first test."""
    body = part.body if isinstance(part, ast.Try) else [part]
    out: list[str] = []
    for stmt in body:
        if isinstance(stmt, ast.If):
            return out + _item_field_reads(stmt.test)
        out += _item_field_reads(stmt)
    return out


def _share_item_fields(tree: ast.Module) -> None:
    """Each shared loop reads once per item, up front, the item fields that its code reads in two or more
    places of which one is reached for every item (a rule's first test).

    A read that fails (an item without the field, or not a mapping) fails every rule of the loop over to its
    reference function. A field read only behind some rule's conditions is left where it is: reading it for
    every item would touch values (and memory) most evaluations never need.
    """
    for loop in ast.walk(tree):
        if not (isinstance(loop, ast.For) and isinstance(loop.target, ast.Name) and loop.target.id == "_it"):
            continue
        counts: dict[str, int] = {}
        for name in _item_field_reads(loop):
            counts[name] = counts.get(name, 0) + 1
        always = {name for part in loop.body for name in _first_reads(part)}
        shared = {name for name, n in counts.items() if n >= 2 and name in always}
        if not shared:
            continue
        loop.body = [_SharedFields(shared).visit(part) for part in loop.body]
        reads = [ast.parse(f"_i_{name} = _it[{name!r}]").body[0] for name in sorted(shared)]
        loop.body = [*reads, *loop.body]


class _ShortJumps(ast.NodeTransformer):
    """``if test: <body building an outcome>`` → ``if not test: pass`` / ``else: <body>``: the same branches.

    CPython 3.11 specialises a comparison (float, int, str) only when a conditional jump follows it at once;
    a jump over a body longer than 255 code units takes an EXTENDED_ARG first, and the comparison then stays
    generic for good (a call of PyObject_RichCompare, a bool object, then the jump). In the second form the
    conditional jump only skips an unconditional one (which carries the EXTENDED_ARG), so the comparisons of
    the test specialise. Applied where the body builds an outcome (the long bodies) and the test compares.
    """

    def visit_If(self, node: ast.If) -> ast.If:
        self.generic_visit(node)
        if node.orelse or not any(isinstance(n, ast.Compare) for n in ast.walk(node.test)) or not any(
                isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "_new"
                for stmt in node.body for n in ast.walk(stmt)):
            return node
        return ast.If(ast.UnaryOp(ast.Not(), node.test), [ast.Pass()], node.body)


def _element_as_item(statements: list[str], indent: str) -> list[str]:
    """An aggregate's per-element statements (element ``_x``) for the shared loop, whose element is ``_it``."""
    tree = _Renamer({"_x": "_it"}).visit(ast.parse("\n".join(statements)))
    return [indent + line for line in ast.unparse(ast.fix_missing_locations(tree)).splitlines()]


def _source(sections: list[_Section]) -> str:
    """The shared function's source (before the shared item fields are put in by :func:`_share_item_fields`)."""
    lines: list[str] = []
    groups: dict[str, list[_Section]] = {}
    for sec in sections:
        if sec.plan.coll is not None:
            groups.setdefault(_feature_local(sec.plan.coll), []).append(sec)
    deferred: list[tuple[_Section, list[str]]] = []
    for sec in sections:
        if sec.plan.coll is None:
            plain = sec.plain()  # generating it routes its aggregates over shared collections to the loops
            if sec.fused:
                deferred.append((sec, plain))
                lines += [f"    _bad{sec.index} = False", *("    " + line for line in sec.fused_init)]
            else:
                lines += ["    " + line for line in plain]
    for coll_local, members in groups.items():
        loop = [f"        for _it in {coll_local}:"]
        for sec in members:
            loop += sec.item_part("            ")
        takers = [sec for sec, _ in deferred if coll_local in sec.fused]
        for sec in takers:
            loop += ["            try:", *_element_as_item(sec.fused[coll_local], "                "),
                     "            except Exception:", f"                _bad{sec.index} = True"]
        for sec in members:  # after the loop parts: generating them fills each rule's pre-loop statements
            lines += sec.before_loop("    ")
        lines += ["    try:", *loop, "    except Exception:",
                  "        " + " = ".join(f"_bad{sec.index}" for sec in [*members, *takers]) + " = True"]
        for sec in members:
            lines += sec.after_loop("    ")
    for sec, plain in deferred:  # after the loops that computed their aggregates
        lines += [f"    if _bad{sec.index}: {sec.out} = _REF{sec.sfx}(_F)", "    else:", *("        " + x for x in plain)]
    # read up front: what the shared loops need (plain rules read their own features, see _Section.plain)
    features = {name for sec in sections if sec.plan.coll is not None for name in sec.plan.feature_vars}
    for sec, _ in deferred:
        features |= {n.id[3:] for code in sec.fused.values() for n in ast.walk(ast.parse("\n".join(code)))
                     if isinstance(n, ast.Name) and n.id.startswith("_g_")}
    top = ["def _evaluate_all(_F):"]
    if features:
        top += ["    try:", *(f"        {_feature_local(n)} = _F[{n!r}]" for n in sorted(features)),
                "    except Exception:", "        return [_ref(_F) for _ref in _REFS]"]
    lines = top + lines
    lines.append("    return [" + ", ".join(sec.out for sec in sections) + "]")
    return "\n".join(lines) + "\n"


def _sets_for_membership(tree: ast.Module, ns: dict[str, Any]) -> None:
    """A constant tuple of strings used only as ``x in (...)`` becomes a frozenset: the same answer for any
    hashable ``x`` (a string equals only an equal string), a hash lookup instead of comparing with each entry;
    an unhashable ``x`` raises, and the rule's reference function (a tuple) then decides."""
    uses: dict[str, int] = {}
    members: dict[str, int] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            uses[node.id] = uses.get(node.id, 0) + 1
        elif isinstance(node, ast.Compare) and len(node.ops) == 1 and isinstance(node.ops[0], ast.In | ast.NotIn) \
                and isinstance(node.comparators[0], ast.Name):
            name = node.comparators[0].id
            members[name] = members.get(name, 0) + 1
    for name, n in members.items():
        value = ns.get(name)
        if n == uses[name] and isinstance(value, tuple) and value and all(type(v) is str for v in value):
            ns[name] = frozenset(value)


@dataclass(frozen=True, slots=True)
class BatchEvaluator:
    """The shared function for one list of rules: ``evaluate(features)`` gives their outcomes, in order."""

    rules: tuple[Any, ...]
    code: str
    evaluate: Callable[[Mapping[str, object]], list[RuleOutcome]]


def _per_rule(rules: tuple[Any, ...]) -> Callable[[Mapping[str, object]], list[RuleOutcome]]:
    def evaluate(features: Mapping[str, object]) -> list[RuleOutcome]:
        return [rule.evaluate(features) for rule in rules]

    return evaluate


def _build(rules: tuple[Any, ...]) -> BatchEvaluator:
    if not rules or not all(isinstance(getattr(rule, "plan", None), RulePlan) for rule in rules):
        return BatchEvaluator(rules, "", _per_rule(rules))  # rules this compiler did not make
    loop_colls = frozenset(_feature_local(rule.plan.coll) for rule in rules if rule.plan.coll is not None)
    sections = [_Section(i, rule, loop_colls) for i, rule in enumerate(rules)]
    tree = ast.parse(_source(sections))
    _share_item_fields(tree)
    tree = _ShortJumps().visit(tree)
    ast.fix_missing_locations(tree)
    ns: dict[str, Any] = {
        "__builtins__": {}, **RUNTIME, "Exception": Exception, "tuple": tuple, "len": len,
        "_O": RuleOutcome, "_I": ItemResult, "_new": tuple.__new__, "_by_score": itemgetter(1), **FAST_NAMES,
        "_REFS": tuple(sec.plan.reference for sec in sections),
    }
    for sec in sections:
        ns.update(sec.namespace())
    _sets_for_membership(tree, ns)
    code = ast.unparse(tree)  # compiled from its text, so tracebacks and profiles point into ``code``
    exec(compile(code, f"<rules {len(rules)}>", "exec"), ns)  # noqa: S102 - generated, see module doc
    return BatchEvaluator(rules, code, ns["_evaluate_all"])


_cache: dict[tuple[Any, ...], BatchEvaluator] = {}
# the rules of the last call (as a tuple and as a list) and their function: a sweep asks for the same rules
# customer after customer (rescore passes a new list each time), and comparing the list given with the last one
# costs a fraction of making a tuple of it and hashing that (~0.6 µs a call for 36 rules, 3-4% of evaluating them)
_last: tuple[tuple[Any, ...], list[Any], BatchEvaluator] | None = None


def batch_evaluator(rules: Sequence[Any]) -> BatchEvaluator:
    """The shared function for ``rules`` (compiled on first use, then remembered; bounded)."""
    global _last
    last = _last
    if last is not None:
        try:  # the same rules in the same order: equal element by element (identity, for this compiler's rules)
            if rules == last[1] if rules.__class__ is list else rules == last[0]:
                return last[2]
        except Exception:  # noqa: BLE001 - rules whose comparison fails are looked up the usual way
            pass
    key = tuple(rules)
    try:
        found = _cache.get(key)
    except TypeError:  # rules that cannot be told apart by identity (not this compiler's): one by one
        return BatchEvaluator(key, "", _per_rule(key))
    if found is None:
        if len(_cache) >= _MAX_CACHED:
            _cache.clear()
        found = _cache[key] = _build(key)
    _last = (key, list(key), found)
    return found


def evaluate_all(rules: Sequence[Any], features: Mapping[str, object]) -> list[RuleOutcome]:
    """Outcomes of ``rules`` for ``features``, in order, identical to ``[r.evaluate(features) for r in rules]``."""
    return batch_evaluator(rules).evaluate(features)
