"""The expression language: author text → whitelisted Python AST → type-checked, bounded Python source.

Authors write Python-looking expressions (``spend_30d > 1.3 * spend_prev_30d and known(income_next_date)``)
plus money literals (``£12.50``) and durations (``30d``). The text is parsed with :func:`ast.parse` in
``eval`` mode and only the node types handled below are accepted. Every accepted node is re-emitted as
Python source built by this module: author text never reaches ``compile()`` (string literals become
entries of a constants table, names become generated local variables).
"""

from __future__ import annotations

import ast
import difflib
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from core.features.registry import FeatureSpec, FeatureType

from .errors import ValidationIssue

__all__ = ["ExprCompiler", "ExprSource", "Limits", "Typed", "NUMERIC"]

INF = math.inf
NUMERIC = frozenset({"money", "count", "days", "ratio", "number"})
AGGREGATES = frozenset({"any", "all", "count", "sum", "min", "max"})
FUNCTIONS = frozenset({"min", "max", "abs", "round", "floor", "ceil", "clamp", "days_between", "pct_change",
                       "known", "any", "all", "count", "sum"})
_NODE_NAMES = {
    "Lambda": "lambda functions", "ListComp": "comprehensions (loops)", "SetComp": "comprehensions (loops)",
    "DictComp": "comprehensions (loops)", "GeneratorExp": "comprehensions (loops)", "Subscript": "indexing",
    "JoinedStr": "f-strings", "FormattedValue": "f-strings", "NamedExpr": "assignment (:=)",
    "Await": "await", "Yield": "yield", "YieldFrom": "yield", "Starred": "*-unpacking", "Dict": "dictionaries",
    "Slice": "slicing",
}
_MONEY_RE = re.compile(r"£(?=\d)")
_DURATION_RE = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)d(?!\w)")


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds that keep validation and evaluation cheap whatever an author (or a fuzzer) writes."""

    max_chars: int = 2000
    max_nodes: int = 300
    max_depth: int = 24


@dataclass(slots=True)
class ExprSource:
    """Where an expression sits in its file, to turn AST positions into file line/column."""

    text: str
    file: str
    line: int = 1  # file line of the expression's first line
    column: int = 1  # file column of the expression's first character
    indent: int = 0  # file column (0-based) where continuation lines start (block scalars)

    def position(self, lineno: int, char_col: int) -> tuple[int, int]:
        if lineno <= 1:
            return self.line, self.column + char_col
        return self.line + lineno - 1, self.indent + char_col + 1


@dataclass(slots=True)
class Typed:
    """A compiled sub-expression: its Python code, type, value interval and what is known when it holds."""

    code: str
    kind: str
    coll: str | None = None  # collection name for kinds collection/item
    lo: float = -INF
    hi: float = INF
    facts: frozenset[str] = frozenset()  # dumps of expressions known non-zero when this (bool) is true
    negfacts: frozenset[str] = frozenset()  # ... known non-zero when this is false
    const: object = None


@dataclass(slots=True)
class Scope:
    item_coll: str | None = None  # for_each collection: `item`
    agg_coll: str | None = None  # aggregate element: `it`
    facts: frozenset[str] = frozenset()


class _Reject(Exception):
    """Internal: abandon the current expression after an issue was recorded."""


@dataclass
class ExprCompiler:
    """Compiles the expressions of one rule; shares its constants table and feature variables."""

    registry: Mapping[str, FeatureSpec]
    issues: list[ValidationIssue]
    limits: Limits = field(default_factory=Limits)
    vector: bool = False  # emit array code (elementwise &, |, ~, _where) for the batch sweep path
    consts: list[object] = field(default_factory=list)
    feature_vars: dict[str, str] = field(default_factory=dict)
    used: set[str] = field(default_factory=set)
    used_fields: set[str] = field(default_factory=set)  # item.<field> names read (for explain)
    _src: ExprSource | None = None
    _py: str = ""
    _money: set[tuple[int, int]] = field(default_factory=set)
    _days: set[tuple[int, int]] = field(default_factory=set)

    # ------------------------------------------------------------------ entry point
    def compile(self, src: ExprSource, scope: Scope) -> Typed | None:
        """Compile one expression; record issues and return None when it is invalid."""
        self._src = src
        self.used = set()
        self.used_fields = set()
        text = src.text
        if len(text) > self.limits.max_chars:
            self._issue(1, 0, f"expression is too long ({len(text)} characters, limit {self.limits.max_chars})",
                        "too-complex")
            return None
        if not text.strip():
            self._issue(1, 0, "expression is empty", "syntax")
            return None
        self._py, self._money, self._days = _preprocess(text)
        try:
            # wrapped in parentheses so an expression may span lines; positions are shifted back in _loc
            tree = ast.parse("(" + self._py + "\n)", mode="eval")
        except SyntaxError as exc:
            line = min(exc.lineno or 1, self._py.count("\n") + 1)
            col = max((exc.offset or 1) - 1 - (1 if line == 1 else 0), 0)
            msg = exc.msg.replace("'(' was never closed", "unbalanced parentheses")
            self._issue(line, col, f"syntax error: {msg}", "syntax", chars=True)
            return None
        except (ValueError, RecursionError, MemoryError, OverflowError) as exc:
            self._issue(1, 0, f"cannot parse expression: {type(exc).__name__}", "syntax")
            return None
        if not self._within_limits(tree):
            return None
        try:
            return self._node(tree.body, scope)
        except _Reject:
            return None
        except RecursionError:
            self._issue(1, 0, "expression is nested too deeply", "too-complex")
            return None

    def _loc(self, lineno: int, byte_col: int) -> tuple[int, int]:
        """AST position (in the parenthesised text) → (line, character column) in the author's text."""
        lines = self._py.split("\n")
        if lineno == 1:
            byte_col -= 1
        if not 0 < lineno <= len(lines):
            return min(max(lineno, 1), len(lines)), 0
        return lineno, _char_col(lines[lineno - 1], max(byte_col, 0))

    def source_of(self, node: ast.AST) -> str:
        """The author's text of ``node`` (original characters, £ and durations included)."""
        text = self._src.text.strip("\n") if self._src else ""
        lines = text.split("\n")
        try:
            l0, c0 = self._loc(node.lineno, node.col_offset)  # type: ignore[attr-defined]
            l1, c1 = self._loc(node.end_lineno or node.lineno, node.end_col_offset or 0)  # type: ignore[attr-defined]
            l0, l1 = l0 - 1, l1 - 1
        except AttributeError:
            return ""
        if l0 == l1:
            return lines[l0][c0:c1]
        return "\n".join([lines[l0][c0:], *lines[l0 + 1 : l1], lines[l1][:c1]])

    # ------------------------------------------------------------------ helpers
    def _issue(self, lineno: int, col: int, message: str, code: str, *, chars: bool = False) -> None:
        assert self._src is not None
        if not chars:
            lineno, col = self._loc(lineno, col)
        line, column = self._src.position(lineno, col)
        self.issues.append(ValidationIssue(self._src.file, line, column, message, code))

    def _fail(self, node: ast.AST, message: str, code: str) -> _Reject:
        self._issue(getattr(node, "lineno", 1), getattr(node, "col_offset", 0), message, code)
        return _Reject()

    def _within_limits(self, tree: ast.AST) -> bool:
        count = 0
        stack: list[tuple[ast.AST, int]] = [(tree, 0)]
        while stack:
            node, depth = stack.pop()
            count += 1
            if count > self.limits.max_nodes:
                self._issue(1, 0, f"expression is too complex (more than {self.limits.max_nodes} parts)",
                            "too-complex")
                return False
            if depth > self.limits.max_depth:
                self._issue(getattr(node, "lineno", 1), getattr(node, "col_offset", 0),
                            f"expression is nested too deeply (limit {self.limits.max_depth})", "too-complex")
                return False
            stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))
        return True

    def const(self, value: object) -> str:
        """Reference to a constant; author strings live in the table, never in generated code."""
        for i, existing in enumerate(self.consts):
            if type(existing) is type(value) and existing == value:
                return f"_K[{i}]"
        self.consts.append(value)
        return f"_K[{len(self.consts) - 1}]"

    def feature_var(self, name: str) -> str:
        self.used.add(name)
        if name not in self.feature_vars:
            self.feature_vars[name] = f"_v{len(self.feature_vars)}"
        return self.feature_vars[name]

    def _suggest(self, name: str, candidates: list[str]) -> str:
        close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
        return f"; did you mean '{close[0]}'?" if close else ""

    def _desc(self, node: ast.AST, t: Typed) -> str:
        return f"{t.kind} (`{self.source_of(node)}`)"

    # ------------------------------------------------------------------ node dispatch
    def _node(self, node: ast.expr, scope: Scope) -> Typed:
        handler: Callable[[ast.expr, Scope], Typed] | None = getattr(self, f"_n_{type(node).__name__}", None)
        if handler is None:
            what = _NODE_NAMES.get(type(node).__name__, type(node).__name__)
            raise self._fail(node, f"{what} not allowed in rule expressions", "forbidden-syntax")
        return handler(node, scope)

    def _n_Constant(self, node: ast.Constant, scope: Scope) -> Typed:
        v = node.value
        if isinstance(v, bool):
            return Typed("True" if v else "False", "bool", const=v)
        if isinstance(v, int | float):
            pos = self._loc(node.lineno, node.col_offset)
            kind = "money" if pos in self._money else "days" if pos in self._days else "number"
            fv = float(v)
            if not math.isfinite(fv):
                raise self._fail(node, "number is too large", "bad-value")
            return Typed(repr(fv) if isinstance(v, float) else repr(int(v)), kind, lo=fv, hi=fv, const=v)
        if isinstance(v, str):
            return Typed(self.const(v), "string", const=v)
        if v is None:
            raise self._fail(node, "None is not allowed; test a value with known(name)", "forbidden-syntax")
        raise self._fail(node, f"literal {type(v).__name__} not allowed", "forbidden-syntax")

    def _n_Name(self, node: ast.Name, scope: Scope) -> Typed:
        name = node.id
        if name == "item" and scope.item_coll:
            return Typed("_it", "item", coll=scope.item_coll)
        if name == "it" and scope.agg_coll:
            return Typed("_x", "item", coll=scope.agg_coll)
        spec = self.registry.get(name)
        if spec is None:
            hint = self._suggest(name, list(self.registry))
            if name == "item":
                hint = "; `item` exists only in a rule with for_each"
            elif name == "it":
                hint = "; `it` exists only inside count/any/all/sum/min/max over a collection"
            elif name in FUNCTIONS:
                hint = f"; {name} is a function, call it as {name}(...)"
            raise self._fail(node, f"unknown feature '{name}'{hint}", "unknown-feature")
        var = self.feature_var(name)
        if spec.type == FeatureType.COLLECTION:
            return Typed(var, "collection", coll=name)
        return Typed(var, spec.type.value, lo=_feature_lo(spec.type.value, spec.doc))

    def _n_Attribute(self, node: ast.Attribute, scope: Scope) -> Typed:
        base = node.value
        if not (isinstance(base, ast.Name) and base.id in ("item", "it")):
            raise self._fail(node, "attribute access is only allowed on `item` (for_each) and `it` (aggregates)",
                             "forbidden-syntax")
        owner = self._n_Name(base, scope)
        assert owner.coll is not None
        spec = self.registry[owner.coll]
        fspec = spec.item.get(node.attr)
        if fspec is None:
            hint = self._suggest(node.attr, list(spec.item))
            raise self._fail(node, f"'{owner.coll}' items have no field '{node.attr}'{hint}", "unknown-feature")
        if owner.code == "_it":
            self.used_fields.add(node.attr)
        return Typed(f"{owner.code}[{node.attr!r}]", fspec.type.value, lo=_feature_lo(fspec.type.value, fspec.doc))

    def _n_UnaryOp(self, node: ast.UnaryOp, scope: Scope) -> Typed:
        t = self._node(node.operand, scope)
        if isinstance(node.op, ast.Not):
            self._need_bool(node.operand, t, "not")
            return Typed(f"(~{t.code})" if self.vector else f"(not {t.code})", "bool", facts=t.negfacts, negfacts=t.facts)
        if isinstance(node.op, ast.USub | ast.UAdd):
            if t.kind not in NUMERIC:
                raise self._fail(node, f"cannot negate {self._desc(node.operand, t)}", "type-mismatch")
            if isinstance(node.op, ast.UAdd):
                return t
            const = -t.const if isinstance(t.const, int | float) else None
            return Typed(f"(-{t.code})", t.kind, lo=-t.hi, hi=-t.lo, const=const)
        raise self._fail(node, "bitwise operators not allowed", "forbidden-syntax")

    def _n_BoolOp(self, node: ast.BoolOp, scope: Scope) -> Typed:
        is_and = isinstance(node.op, ast.And)
        parts: list[Typed] = []
        facts = scope.facts
        for value in node.values:
            t = self._node(value, Scope(scope.item_coll, scope.agg_coll, facts))
            self._need_bool(value, t, "and" if is_and else "or")
            parts.append(t)
            facts = facts | (t.facts if is_and else t.negfacts)
        if self.vector:
            joined = (" & " if is_and else " | ").join(p.code for p in parts)
        else:
            joined = (" and " if is_and else " or ").join(p.code for p in parts)
        all_facts = frozenset().union(*(p.facts if is_and else p.negfacts for p in parts))
        if is_and:
            return Typed(f"({joined})", "bool", facts=all_facts)
        return Typed(f"({joined})", "bool", negfacts=all_facts)

    def _need_bool(self, node: ast.AST, t: Typed, where: str) -> None:
        if t.kind != "bool":
            raise self._fail(node, f"`{where}` needs a true/false condition, got {self._desc(node, t)}",
                             "type-mismatch")

    def _n_IfExp(self, node: ast.IfExp, scope: Scope) -> Typed:
        test = self._node(node.test, scope)
        self._need_bool(node.test, test, "if")
        body = self._node(node.body, Scope(scope.item_coll, scope.agg_coll, scope.facts | test.facts))
        orelse = self._node(node.orelse, Scope(scope.item_coll, scope.agg_coll, scope.facts | test.negfacts))
        kind = self._unify(node, [(node.body, body), (node.orelse, orelse)])
        code = f"_where({test.code}, {body.code}, {orelse.code})" if self.vector else \
            f"({body.code} if {test.code} else {orelse.code})"
        return Typed(code, kind, coll=body.coll,
                     lo=min(body.lo, orelse.lo), hi=max(body.hi, orelse.hi))

    def _unify(self, node: ast.AST, parts: list[tuple[ast.AST, Typed]]) -> str:
        kinds = {t.kind for _, t in parts}
        if len(kinds) == 1:
            return kinds.pop()
        unit = kinds - {"number"}
        if kinds <= NUMERIC and len(unit) <= 1:
            return unit.pop() if unit else "number"
        if kinds <= {"count", "days", "number"}:
            return "days"
        a, b = parts[0], next(p for p in parts if p[1].kind != parts[0][1].kind)
        raise self._fail(node, f"mixed types: {self._desc(a[0], a[1])} and {self._desc(b[0], b[1])}",
                         "type-mismatch")

    def _n_BinOp(self, node: ast.BinOp, scope: Scope) -> Typed:
        op = node.op
        if not isinstance(op, ast.Add | ast.Sub | ast.Mult | ast.Div | ast.Mod | ast.FloorDiv):
            what = "powers (**)" if isinstance(op, ast.Pow) else "this operator"
            raise self._fail(node, f"{what} not allowed in rule expressions", "forbidden-syntax")
        a = self._node(node.left, scope)
        b = self._node(node.right, scope)
        sym = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Mod: "%", ast.FloorDiv: "//"}[type(op)]
        if a.kind == "date" or b.kind == "date":
            return self._date_arith(node, sym, a, b)
        for side, t in ((node.left, a), (node.right, b)):
            if t.kind not in NUMERIC:
                raise self._fail(side, f"cannot use {self._desc(side, t)} in arithmetic ({sym})", "type-mismatch")
        if sym in "+-":
            kind = self._unify(node, [(node.left, a), (node.right, b)])
            lo, hi = (a.lo + b.lo, a.hi + b.hi) if sym == "+" else (a.lo - b.hi, a.hi - b.lo)
            return Typed(f"({a.code} {sym} {b.code})", kind, lo=_nan0(lo, -INF), hi=_nan0(hi, INF))
        if sym == "*":
            if a.kind == "money" and b.kind == "money":
                raise self._fail(node, "cannot multiply money by money", "type-mismatch")
            kind = a.kind if b.kind in ("number", "ratio") or a.kind == "money" else b.kind
            if a.kind == "ratio" and b.kind != "number":
                kind = b.kind
            lo, hi = _mul(a, b)
            return Typed(f"({a.code} * {b.code})", kind, lo=lo, hi=hi)
        # division-like: the divisor must be provably non-zero or guarded
        dump = ast.dump(node.right)
        if b.lo <= 0 <= b.hi and dump not in scope.facts:
            src = self.source_of(node.right)
            raise self._fail(node.right, f"division by `{src}`, which can be zero: guard it (e.g. `{src} > 0` "
                                         f"in when, or `... if {src} > 0 else ...`) or divide by max({src}, 1)",
                             "division-by-zero")
        if sym == "/":
            if a.kind == b.kind and a.kind != "number":
                kind = "ratio"
            elif b.kind == "number":
                kind = a.kind
            elif a.kind == "money":
                kind = "money"
            else:
                kind = "number"
            lo, hi = _div(a, b)
            return Typed(f"({a.code} / {b.code})", kind, lo=lo, hi=hi)
        return Typed(f"({a.code} {sym} {b.code})", a.kind)

    def _date_arith(self, node: ast.BinOp, sym: str, a: Typed, b: Typed) -> Typed:
        if sym == "-" and a.kind == b.kind == "date":
            return Typed(f"({a.code} - {b.code})" if self.vector else f"_date_diff({a.code}, {b.code})", "days")
        if a.kind == "date" and sym in "+-" and b.kind in ("days", "number", "count"):
            sign = "" if sym == "+" else "-"
            code = f"({a.code} {sym} {b.code})" if self.vector else f"_date_add({a.code}, {sign}{b.code})"
            return Typed(code, "date")
        if b.kind == "date" and sym == "+" and a.kind in ("days", "number", "count"):
            return Typed(f"({b.code} + {a.code})" if self.vector else f"_date_add({b.code}, {a.code})", "date")
        raise self._fail(node, f"cannot compute {a.kind} {sym} {b.kind}: dates support date - date (days) and "
                               f"date ± days", "type-mismatch")

    def _n_Compare(self, node: ast.Compare, scope: Scope) -> Typed:
        left_node: ast.expr = node.left
        left = self._node(left_node, scope)
        codes = [left.code]
        pairs: list[str] = []  # vector mode: a chain a < b < c becomes (a < b) & (b < c)
        facts: set[str] = set()
        negfacts: set[str] = set()
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            if isinstance(op, ast.Is | ast.IsNot):
                raise self._fail(node, "`is` not allowed; use == or known(name)", "forbidden-syntax")
            if isinstance(op, ast.In | ast.NotIn):
                member = self._membership(left_node, left, right_node, scope)
                codes.append(("in " if isinstance(op, ast.In) else "not in ") + member)
                neg = "" if isinstance(op, ast.In) else "~"
                pairs.append(f"{neg}_isin({left.code}, {member})")
                left_node = right_node
                continue
            right = self._node(right_node, scope)
            self._comparable(node, left_node, left, right_node, right, op)
            sym = {ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">="}[type(op)]
            codes.append(f"{sym} {right.code}")
            pairs.append(f"({left.code} {sym} {right.code})")
            _facts_from(sym, left_node, left, right_node, right, facts, negfacts)
            left_node, left = right_node, right
        code = f"({' & '.join(pairs)})" if self.vector else f"({' '.join(codes)})"
        return Typed(code, "bool", facts=frozenset(facts), negfacts=frozenset(negfacts))

    def _comparable(self, node: ast.AST, ln: ast.AST, a: Typed, rn: ast.AST, b: Typed, op: ast.cmpop) -> None:
        ka, kb = a.kind, b.kind
        if ka in ("collection", "item") or kb in ("collection", "item"):
            raise self._fail(node, "a collection or item cannot be compared; compare one of its fields",
                             "type-mismatch")
        ok = ka == kb or (ka in NUMERIC and kb in NUMERIC and (
            "number" in (ka, kb) or {ka, kb} <= {"count", "days"}))
        if ok and ka == "bool" and not isinstance(op, ast.Eq | ast.NotEq):
            ok = False
        if not ok:
            raise self._fail(node, f"cannot compare {self._desc(ln, a)} with {self._desc(rn, b)}", "type-mismatch")

    def _membership(self, ln: ast.AST, left: Typed, rn: ast.expr, scope: Scope) -> str:
        if isinstance(rn, ast.Tuple | ast.List | ast.Set):
            values: list[object] = []
            for elt in rn.elts:
                t = self._node(elt, scope)
                if t.const is None:
                    raise self._fail(elt, "the list after `in` may only hold literal values", "forbidden-syntax")
                self._comparable(rn, ln, left, elt, t, ast.Eq())
                values.append(t.const)
            return self.const(frozenset(values))
        right = self._node(rn, scope)
        if left.kind == right.kind == "string" and not self.vector:
            return right.code
        raise self._fail(rn, "`in` needs a list of literal values, e.g. `x in (\"energy\", \"broadband\")`, or text",
                         "type-mismatch")

    # ------------------------------------------------------------------ functions
    def _n_Call(self, node: ast.Call, scope: Scope) -> Typed:
        if not isinstance(node.func, ast.Name):
            self._node(node.func, scope)  # reports the forbidden construct being called, if any
            raise self._fail(node, f"only the built-in functions can be called ({', '.join(sorted(FUNCTIONS))})",
                             "unknown-function")
        if node.func.id not in FUNCTIONS:
            name = node.func.id
            hint = self._suggest(name, sorted(FUNCTIONS))
            raise self._fail(node, f"unknown function '{name}'{hint}; available: {', '.join(sorted(FUNCTIONS))}",
                             "unknown-function")
        name = node.func.id
        if node.keywords:
            raise self._fail(node, f"{name}() takes no keyword arguments", "bad-arguments")
        args = node.args
        if any(isinstance(a, ast.Starred) for a in args):
            raise self._fail(node, "*-unpacking not allowed", "forbidden-syntax")
        if name in AGGREGATES and args and isinstance(args[0], ast.Name) and self._is_collection(args[0].id):
            return self._aggregate(node, name, scope)
        if name in ("any", "all", "count", "sum"):
            if args:
                first = self._node(args[0], scope)
                raise self._fail(args[0], f"{name}() works over a collection such as recurring; "
                                          f"`{self.source_of(args[0])}` is {first.kind}", "not-a-collection")
            raise self._fail(node, f"{name}(collection, condition) needs a collection", "bad-arguments")
        typed = [self._node(a, scope) for a in args]
        return getattr(self, f"_f_{name}")(node, args, typed)

    def _is_collection(self, name: str) -> bool:
        spec = self.registry.get(name)
        return spec is not None and spec.type == FeatureType.COLLECTION

    def _arity(self, node: ast.Call, n: int, m: int | None = None) -> None:
        got = len(node.args)
        hi = n if m is None else m
        if not n <= got <= hi:
            want = str(n) if n == hi else f"{n} to {hi}"
            name = node.func.id  # type: ignore[attr-defined]
            raise self._fail(node, f"{name}() takes {want} arguments, got {got}", "bad-arguments")

    def _numeric_args(self, node: ast.Call, args: list[ast.expr], typed: list[Typed]) -> str:
        for a, t in zip(args, typed, strict=True):
            if t.kind not in NUMERIC:
                raise self._fail(a, f"{getattr(node.func, 'id', '?')}() needs numbers, got {self._desc(a, t)}",
                                 "type-mismatch")
        return self._unify(node, list(zip(args, typed, strict=True)))

    def _f_min(self, node: ast.Call, args: list[ast.expr], typed: list[Typed]) -> Typed:
        self._arity(node, 2, 8)
        kind = self._numeric_args(node, args, typed)
        return Typed(f"_min({', '.join(t.code for t in typed)})", kind, lo=min(t.lo for t in typed),
                     hi=min(t.hi for t in typed))

    def _f_max(self, node: ast.Call, args: list[ast.expr], typed: list[Typed]) -> Typed:
        self._arity(node, 2, 8)
        kind = self._numeric_args(node, args, typed)
        return Typed(f"_max({', '.join(t.code for t in typed)})", kind, lo=max(t.lo for t in typed),
                     hi=max(t.hi for t in typed))

    def _f_abs(self, node: ast.Call, args: list[ast.expr], typed: list[Typed]) -> Typed:
        self._arity(node, 1)
        kind = self._numeric_args(node, args, typed)
        t = typed[0]
        lo = 0.0 if t.lo <= 0 <= t.hi else min(abs(t.lo), abs(t.hi))
        return Typed(f"_abs({t.code})", kind, lo=lo, hi=max(abs(t.lo), abs(t.hi)))

    def _f_round(self, node: ast.Call, args: list[ast.expr], typed: list[Typed]) -> Typed:
        self._arity(node, 1, 2)
        self._numeric_args(node, args[:1], typed[:1])
        if len(typed) == 2 and not (isinstance(typed[1].const, int) and 0 <= typed[1].const <= 6):
            raise self._fail(args[1], "round()'s second argument must be a whole number from 0 to 6",
                             "bad-arguments")
        digits = f", {typed[1].code}" if len(typed) == 2 else ""
        return Typed(f"_round({typed[0].code}{digits})", typed[0].kind, lo=typed[0].lo - 1, hi=typed[0].hi + 1)

    def _f_floor(self, node: ast.Call, args: list[ast.expr], typed: list[Typed]) -> Typed:
        self._arity(node, 1)
        self._numeric_args(node, args, typed)
        return Typed(f"_floor({typed[0].code})", typed[0].kind, lo=typed[0].lo - 1, hi=typed[0].hi)

    def _f_ceil(self, node: ast.Call, args: list[ast.expr], typed: list[Typed]) -> Typed:
        self._arity(node, 1)
        self._numeric_args(node, args, typed)
        return Typed(f"_ceil({typed[0].code})", typed[0].kind, lo=typed[0].lo, hi=typed[0].hi + 1)

    def _f_clamp(self, node: ast.Call, args: list[ast.expr], typed: list[Typed]) -> Typed:
        self._arity(node, 3)
        kind = self._numeric_args(node, args, typed)
        x, low, high = typed
        lo = min(max(x.lo, low.lo), high.hi)
        hi = max(min(x.hi, high.hi), low.lo)
        return Typed(f"_clamp({x.code}, {low.code}, {high.code})", kind, lo=lo, hi=hi)

    def _f_days_between(self, node: ast.Call, args: list[ast.expr], typed: list[Typed]) -> Typed:
        self._arity(node, 2)
        for a, t in zip(args, typed, strict=True):
            if t.kind != "date":
                raise self._fail(a, f"days_between() needs two dates, got {self._desc(a, t)}", "type-mismatch")
        return Typed(f"_days_between({typed[0].code}, {typed[1].code})", "days")

    def _f_pct_change(self, node: ast.Call, args: list[ast.expr], typed: list[Typed]) -> Typed:
        self._arity(node, 2)
        self._numeric_args(node, args, typed)
        old = typed[0]
        # pct_change divides by `old`; the same guard rule applies as for `/`
        if old.lo <= 0 <= old.hi:
            raise self._fail(args[0], f"pct_change() divides by `{self.source_of(args[0])}`, which can be zero: "
                                      f"guard it with `{self.source_of(args[0])} > 0`", "division-by-zero")
        return Typed(f"_pct_change({old.code}, {typed[1].code})", "ratio")

    def _f_known(self, node: ast.Call, args: list[ast.expr], typed: list[Typed]) -> Typed:
        self._arity(node, 1)
        if not isinstance(args[0], ast.Name | ast.Attribute):
            raise self._fail(args[0], "known() takes a feature name or item field", "bad-arguments")
        return Typed(f"_known({typed[0].code})" if self.vector else f"({typed[0].code} is not None)", "bool")

    def _aggregate(self, node: ast.Call, name: str, scope: Scope) -> Typed:
        args = node.args
        coll_name = args[0].id  # type: ignore[attr-defined]
        if scope.agg_coll:
            raise self._fail(node, f"{name}() cannot be nested inside another aggregate", "forbidden-syntax")
        if self.vector:
            raise self._fail(node, f"{name}() over a collection has no array form", "not-vectorisable")
        var = self.feature_var(coll_name)
        inner = Scope(scope.item_coll, coll_name, scope.facts)
        if name in ("any", "all"):
            self._arity(node, 2)
            cond = self._node(args[1], inner)
            self._need_bool(args[1], cond, name)
            return Typed(f"_{name}({cond.code} for _x in {var})", "bool")
        if name == "count":
            self._arity(node, 1, 2)
            if len(args) == 1:
                return Typed(f"_len({var})", "count", lo=0.0)
            cond = self._node(args[1], inner)
            self._need_bool(args[1], cond, name)
            return Typed(f"_sum(1 for _x in {var} if {cond.code})", "count", lo=0.0)
        self._arity(node, 2, 3)
        filt = ""
        if len(args) == 3:
            cond = self._node(args[2], inner)
            self._need_bool(args[2], cond, name)
            filt = f" if {cond.code}"
            inner = Scope(inner.item_coll, inner.agg_coll, inner.facts | cond.facts)
        value = self._node(args[1], inner)
        if value.kind not in NUMERIC:
            raise self._fail(args[1], f"{name}() needs a number per item, got {self._desc(args[1], value)}",
                             "type-mismatch")
        gen = f"({value.code} for _x in {var}{filt})"
        if name == "sum":
            return Typed(f"_sum{gen}", value.kind, lo=0.0 if value.lo >= 0 else -INF)
        return Typed(f"_agg_{name}{gen}", value.kind, lo=value.lo, hi=value.hi)


# ---------------------------------------------------------------------- pure helpers
def _preprocess(text: str) -> tuple[str, set[tuple[int, int]], set[tuple[int, int]]]:
    """Replace `£` and the `d` of durations by spaces outside string literals (same length, same positions)."""
    out: list[str] = []
    money: set[tuple[int, int]] = set()
    days: set[tuple[int, int]] = set()
    lines = text.strip("\n").split("\n")
    for lineno, line in enumerate(lines, start=1):
        chunks = _split_strings(line)
        pos = 0
        rebuilt: list[str] = []
        for chunk, is_string in chunks:
            if not is_string:
                for m in _MONEY_RE.finditer(chunk):
                    money.add((lineno, pos + m.end()))
                chunk = _MONEY_RE.sub(" ", chunk)
                for m in _DURATION_RE.finditer(chunk):
                    days.add((lineno, pos + m.start(1)))
                chunk = _DURATION_RE.sub(lambda m: m.group(1) + " ", chunk)
            rebuilt.append(chunk)
            pos += len(chunk)
        out.append("".join(rebuilt))
    return "\n".join(out), money, days


def _split_strings(line: str) -> list[tuple[str, bool]]:
    chunks: list[tuple[str, bool]] = []
    i, start, quote = 0, 0, ""
    while i < len(line):
        ch = line[i]
        if quote:
            if ch == "\\":
                i += 2
                continue
            if ch == quote:
                chunks.append((line[start : i + 1], True))
                start, quote = i + 1, ""
        elif ch in "'\"":
            chunks.append((line[start:i], False))
            start, quote = i, ch
        i += 1
    chunks.append((line[start:], bool(quote)))
    return chunks


def _char_col(line: str, byte_col: int) -> int:
    return len(line.encode("utf-8")[:byte_col].decode("utf-8", errors="ignore"))


def _feature_lo(kind: str, doc: str) -> float:
    if kind == "count" or (kind == "money" and "signed" not in doc.lower()):
        return 0.0
    return -INF


def _nan0(v: float, default: float) -> float:
    return default if v != v else v


def _mul(a: Typed, b: Typed) -> tuple[float, float]:
    products = [_nan0(x * y, 0.0) for x in (a.lo, a.hi) for y in (b.lo, b.hi)]
    return min(products), max(products)


def _div(a: Typed, b: Typed) -> tuple[float, float]:
    if b.lo <= 0 <= b.hi:
        return -INF, INF
    quotients = [x / y if math.isfinite(y) else 0.0 for x in (a.lo, a.hi) for y in (b.lo, b.hi)]
    quotients = [_nan0(q, 0.0) for q in quotients]
    return min(quotients), max(quotients)


def _facts_from(sym: str, ln: ast.AST, a: Typed, rn: ast.AST, b: Typed, facts: set[str], neg: set[str]) -> None:
    """Record which expressions are non-zero when `a sym b` holds (or fails), for the division guard."""
    for node, other, op in ((ln, b, sym), (rn, a, _MIRROR[sym])):
        dump = ast.dump(node)
        if (op == ">" and other.lo >= 0) or (op == ">=" and other.lo > 0) or (op == "<" and other.hi <= 0) \
                or (op == "<=" and other.hi < 0) or (op == "!=" and other.lo == other.hi == 0):
            facts.add(dump)
        if (op == "==" and other.lo == other.hi == 0) or (op == "<=" and other.lo == other.hi == 0):
            neg.add(dump)


_MIRROR = {">": "<", "<": ">", ">=": "<=", "<=": ">=", "==": "==", "!=": "!="}
