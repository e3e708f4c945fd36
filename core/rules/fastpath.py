"""The evaluator's fast path: the rule's generated expressions rewritten into cheaper Python.

Every rule compiles to two functions over the same expressions. The reference function is the direct
translation: per-item error handling, reasons, errors. The fast function runs first, without any error
handling; if anything in it raises, the evaluation is re-run by the reference function, which then gives the
outcome (not eligible plus reason, or the item error) exactly as before. That is what makes the rewrites
safe: the fast function may evaluate *more* than the reference does (an aggregate hoisted out of an
``if``-branch, say) but never less, so any input on which the reference meets an error makes the fast
function raise too, and when nothing raises both compute the same values in the same order of arithmetic.

The input is code this package generated (from the validated rule AST; author text only ever sits in the
constants table ``_K``), parsed again with :mod:`ast`; only the node types the expression compiler emits
occur in it. Rewrites:

- aggregates (``count/sum/any/all/min/max`` over a collection) become loops in the function body, computed
  once per evaluation (or once per item when they read ``item``) and shared by every condition, the score
  and the values that use them, instead of a generator expression per use;
- ``clamp`` with literal bounds, ``days_between`` and the text/count placeholders become inline expressions;
- constants-table entries become plain names (``_K3``) instead of an index per use;
- a whole-number literal compared with a money or ratio value (floats) is written as a float (``>= 20.0``):
  comparisons of numbers are exact whatever their types, and float-to-float is the interpreter's fast case.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["FastGen"]

_AGGREGATES = frozenset({"_sum", "_any", "_all", "_agg_max", "_agg_min"})
_NUMBER_FORMATTERS = frozenset({"_fmt_count", "_fmt_days", "_fmt_number"})


def _name(ident: str) -> ast.Name:
    return ast.Name(ident, ast.Load())


def _code(node: ast.expr) -> str:
    """Source of an expression, parenthesised so it keeps its meaning wherever it is spliced in."""
    return f"({ast.unparse(ast.fix_missing_locations(node))})"


def _is_aggregate(node: ast.AST) -> bool:
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _AGGREGATES
            and len(node.args) == 1 and isinstance(node.args[0], ast.GeneratorExp))


def _reads_item(node: ast.AST) -> bool:
    return any(isinstance(n, ast.Name) and n.id == "_it" for n in ast.walk(node))


def _simple(node: ast.expr) -> bool:
    """A bound cheap and pure enough to evaluate twice: a literal (possibly negated) or a local name."""
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        node = node.operand
    return isinstance(node, ast.Name) or (isinstance(node, ast.Constant) and isinstance(node.value, int | float)
                                          and not isinstance(node.value, bool))


def _whole_literal(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and type(node.value) is int and abs(node.value) < 2**53


def _unconditional_aggregates(node: ast.AST, out: set[str], conditional: bool = False) -> None:
    """Dumps of the aggregates evaluated whenever ``node`` is (not behind and/or, if-else or a chained compare)."""
    if _is_aggregate(node):
        if not conditional:
            out.add(ast.dump(node))
        return
    if isinstance(node, ast.BoolOp):
        for i, value in enumerate(node.values):
            _unconditional_aggregates(value, out, conditional or i > 0)
    elif isinstance(node, ast.IfExp):
        _unconditional_aggregates(node.test, out, conditional)
        _unconditional_aggregates(node.body, out, True)
        _unconditional_aggregates(node.orelse, out, True)
    elif isinstance(node, ast.Compare):
        _unconditional_aggregates(node.left, out, conditional)
        for i, comp in enumerate(node.comparators):
            _unconditional_aggregates(comp, out, conditional or i > 0)
    elif not isinstance(node, ast.GeneratorExp | ast.Lambda):
        for child in ast.iter_child_nodes(node):
            _unconditional_aggregates(child, out, conditional)


@dataclass
class FastGen:
    """Rewrites the expressions of one rule, segment by segment, in the order the fast function runs them.

    A segment is a group of expressions the function evaluates together with no exit in between (one
    ``when`` condition; or the score, values and message). Aggregates hoisted in a segment stay available
    to the segments after it.
    """

    in_loop: bool = False  # generating the body of a for_each loop (``_it`` is the item)
    float_names: frozenset[str] = frozenset()  # feature locals (``_v3``) holding money or ratio values
    float_fields: frozenset[str] = frozenset()  # item fields that are money or ratio in every collection
    preloop: list[str] = field(default_factory=list)  # statements for before the for_each loop
    consts: set[int] = field(default_factory=set)  # indexes of ``_K`` referenced as ``_K<i>``
    _available: dict[str, str] = field(default_factory=dict)
    _temps: int = 0

    def segment(self, codes: list[str], indent: str) -> tuple[list[str], list[str]]:
        """(statements to run first, rewritten expressions) for one segment's expression codes."""
        trees = [ast.parse(code, mode="eval").body for code in codes]
        wanted: set[str] = set()
        for tree in trees:
            _unconditional_aggregates(tree, wanted)
        pre: list[str] = []
        out = []
        for tree in trees:
            new = _Rewriter(self, wanted, pre, indent).visit(tree)
            out.append(_code(new))
        return pre, out

    def temp(self, prefix: str) -> str:
        self._temps += 1
        return f"{prefix}{self._temps}"

    def hoist(self, node: ast.Call, pre: list[str], indent: str, rewrite: Callable[[ast.expr], ast.expr]) -> str:
        """Emit a loop computing aggregate ``node`` into a new local; return the local's name."""
        key = ast.dump(node)
        gen = node.args[0]
        assert isinstance(gen, ast.GeneratorExp) and isinstance(node.func, ast.Name)
        comp = gen.generators[0]
        var = self.temp("_a")
        if self.in_loop and not _reads_item(node):
            target, ind = self.preloop, "    "
        else:
            target, ind = pre, indent
        src = _code(comp.iter)
        parts = [rewrite(gen.elt), *(rewrite(c) for c in comp.ifs)]
        if self.in_loop and target is pre:
            # fields of the for_each item are the same for every element: read each once, before the loop
            hoisted: dict[str, str] = {}
            parts = [_ItemFields(self, hoisted).visit(p) for p in parts]
            target += [f"{indent}{t} = _it[{f!r}]" for f, t in hoisted.items()]
        elt = _code(parts[0])
        cond = " and ".join(_code(c) for c in parts[1:])
        fn = node.func.id
        lines: list[str]
        if fn == "_any" or fn == "_all":
            hit = "True" if fn == "_any" else "False"
            test = elt if fn == "_any" else f"not {elt}"
            lines = [f"{var} = {'False' if fn == '_any' else 'True'}", f"for _x in {src}:",
                     f"    if {test}:", f"        {var} = {hit}", "        break"]
        elif fn == "_sum" and isinstance(gen.elt, ast.Constant) and gen.elt.value == 1:
            # count(): sum of 1s is an exact int, counted directly
            lines = [f"{var} = 0", f"for _x in {src}:", f"    if {cond}: {var} += 1" if cond else f"    {var} += 1"]
        else:
            # sum/min/max over the same values in the same order as the generator: the same builtin decides
            lines = [f"{var} = []", f"for _x in {src}:",
                     f"    if {cond}: {var}.append({elt})" if cond else f"    {var}.append({elt})",
                     f"{var} = {fn}({var})"]
        target += [ind + line for line in lines]
        self._available[key] = var
        return var


class _ItemFields(ast.NodeTransformer):
    """``_it['field']`` → a local read once (inside an aggregate's loop over another collection)."""

    def __init__(self, gen: FastGen, hoisted: dict[str, str]) -> None:
        self.gen, self.hoisted = gen, hoisted

    def visit_Subscript(self, node: ast.Subscript) -> ast.expr:
        if isinstance(node.value, ast.Name) and node.value.id == "_it" and isinstance(node.slice, ast.Constant) \
                and isinstance(node.slice.value, str):
            field = node.slice.value
            if field not in self.hoisted:
                self.hoisted[field] = self.gen.temp("_f")
            return _name(self.hoisted[field])
        self.generic_visit(node)
        return node


class _Rewriter(ast.NodeTransformer):
    def __init__(self, gen: FastGen, wanted: set[str], pre: list[str], indent: str) -> None:
        self.gen, self.wanted, self.pre, self.indent = gen, wanted, pre, indent
        self.in_generator = False

    def visit_Subscript(self, node: ast.Subscript) -> ast.expr:
        if isinstance(node.value, ast.Name) and node.value.id == "_K" and isinstance(node.slice, ast.Constant) \
                and isinstance(node.slice.value, int):
            self.gen.consts.add(node.slice.value)
            return _name(f"_K{node.slice.value}")
        self.generic_visit(node)
        return node

    def visit_GeneratorExp(self, node: ast.GeneratorExp) -> ast.expr:
        # an aggregate left in place: only constants are renamed inside (a walrus here would make a closure)
        outer, self.in_generator = self.in_generator, True
        self.generic_visit(node)
        self.in_generator = outer
        return node

    def visit_Call(self, node: ast.Call) -> ast.expr:
        if _is_aggregate(node) and not self.in_generator:
            key = ast.dump(node)
            var = self.gen._available.get(key)
            if var is None and key in self.wanted:
                var = self.gen.hoist(node, self.pre, self.indent, self._inner)
            if var is not None:
                return _name(var)
        self.generic_visit(node)
        if self.in_generator or not isinstance(node.func, ast.Name):
            return node
        fn, args = node.func.id, node.args
        if fn == "_clamp" and len(args) == 3 and _simple(args[1]) and _simple(args[2]):
            # clamp(v, lo, hi) is `lo if v < lo else hi if v > hi else v`, without the call
            t = self.gen.temp("_t")
            store = ast.NamedExpr(ast.Name(t, ast.Store()), args[0])
            low, high = (self._float_bound(b) if self._is_float(args[0]) else b for b in args[1:])
            return ast.IfExp(ast.Compare(store, [ast.Lt()], [low]), args[1],
                             ast.IfExp(ast.Compare(_name(t), [ast.Gt()], [high]), args[2], _name(t)))
        if fn == "_days_between" and len(args) == 2:
            return ast.Attribute(ast.BinOp(args[1], ast.Sub(), args[0]), "days", ast.Load())
        if fn == "_fmt_string" and len(args) == 1:
            return self._typed_or_call(node, "_str")
        if fn in _NUMBER_FORMATTERS and len(args) == 1:
            # a plain int renders as itself (what the formatter returns for it); anything else goes through it
            return self._typed_or_call(node, "_int")
        return node

    def visit_Compare(self, node: ast.Compare) -> ast.expr:
        self.generic_visit(node)
        operands = [node.left, *node.comparators]
        for i, operand in enumerate(operands):
            neighbours = operands[max(i - 1, 0): i] + operands[i + 1: i + 2]
            if _whole_literal(operand) and any(self._is_float(n) for n in neighbours):
                assert isinstance(operand, ast.Constant) and isinstance(operand.value, int)
                operands[i] = ast.Constant(float(operand.value))
        node.left, node.comparators = operands[0], operands[1:]
        return node

    @staticmethod
    def _float_bound(node: ast.expr) -> ast.expr:
        """A whole-number clamp bound as a float for the comparison (the bound returned keeps its own type)."""
        return ast.Constant(float(node.value)) if _whole_literal(node) else node  # type: ignore[attr-defined]

    def _is_float(self, node: ast.expr) -> bool:
        """Whether ``node`` is a money/ratio value (a float by the registry's contract) or a true division."""
        if isinstance(node, ast.Name):
            return node.id in self.gen.float_names
        if isinstance(node, ast.Subscript):
            return (isinstance(node.value, ast.Name) and node.value.id in ("_it", "_x")
                    and isinstance(node.slice, ast.Constant) and node.slice.value in self.gen.float_fields)
        if isinstance(node, ast.BinOp):
            if isinstance(node.op, ast.Div):
                return True
            sides = (node.left, node.right)
            return isinstance(node.op, ast.Add | ast.Sub | ast.Mult) and all(
                self._is_float(n) or (isinstance(n, ast.Constant) and type(n.value) in (int, float)) for n in sides) \
                and any(self._is_float(n) for n in sides)
        return False

    def _typed_or_call(self, call: ast.Call, type_name: str) -> ast.expr:
        """``(t if type(t := x) is T else formatter(t))``: the formatter's own result for exactly type T."""
        t = self.gen.temp("_t")
        store = ast.NamedExpr(ast.Name(t, ast.Store()), call.args[0])
        test = ast.Compare(ast.Attribute(store, "__class__", ast.Load()), [ast.Is()], [_name(type_name)])
        return ast.IfExp(test, _name(t), ast.Call(call.func, [_name(t)], []))

    def _inner(self, node: ast.expr) -> ast.expr:
        """Rewrite an aggregate's element or condition for its hoisted loop (function scope, not a generator)."""
        result: ast.expr = self.visit(node)
        return result
