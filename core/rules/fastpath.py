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
- money placeholders below 1,000 skip the thousands-grouping format (same text, a third cheaper);
- constants-table entries become plain names (``_K3``) instead of an index per use;
- a whole-number literal compared with a money or ratio value (floats) is written as a float (``>= 20.0``):
  comparisons of numbers are exact whatever their types, and float-to-float is the interpreter's fast case.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["FastGen", "FAST_NAMES"]

# names the rewritten code uses besides the runtime's (see :data:`.runtime.RUNTIME`)
FAST_NAMES: dict[str, object] = {
    "_str": str, "_int": int, "_float": float, "_MONEY": ",.2f", "_MONEY_SMALL": ".2f",
    "_float_format": float.__format__, "_format": format,
}
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
    consts: set[int] = field(default_factory=set)  # indexes of ``_K`` referenced as ``_K<i><suffix>``
    suffix: str = ""  # appended to every name this rule's code defines (several rules in one function)
    # takes an aggregate over a collection that a shared loop iterates anyway (see batch.py):
    # sink(collection local, init statements, statements per element ``_x``) -> taken? (the final statements
    # stay where the aggregate's own loop would have been)
    sink: Callable[[str, list[str], list[str]], bool] | None = None
    _available: dict[str, str] = field(default_factory=dict)
    _planned: dict[str, ast.Call] = field(default_factory=dict)
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
        return f"{prefix}{self._temps}{self.suffix}"

    def plan(self, codes: list[str]) -> None:
        """Note every aggregate the function evaluates unconditionally somewhere, for :meth:`hoist` to fuse."""
        for code in codes:
            found: set[str] = set()
            tree = ast.parse(code, mode="eval").body
            _unconditional_aggregates(tree, found)
            for node in ast.walk(tree):
                if _is_aggregate(node) and ast.dump(node) in found:
                    self._planned.setdefault(ast.dump(node), node)  # type: ignore[arg-type]

    def hoist(self, node: ast.Call, pre: list[str], indent: str, rewrite: Callable[[ast.expr], ast.expr]) -> str:
        """Emit a loop computing aggregate ``node`` into a new local; return the local's name.

        Other sum/count/min/max aggregates over the same collection with the same filter that the function
        evaluates anyway later are computed in the same loop (one pass instead of several).
        """
        # keys are the dumps of the untouched nodes: the rewrites below change the nodes in place, and a later
        # segment looks an aggregate up by the dump of its own untouched copy
        key = ast.dump(node)
        keyed = [(key, node)]
        if _fusable(node):
            signature = _loop_signature(node)
            keyed += [(k, other) for k, other in self._planned.items()
                      if k != key and k not in self._available and _fusable(other)
                      and _loop_signature(other) == signature and _reads_item(other) == _reads_item(node)]
        group = [member for _, member in keyed]
        if self.in_loop and not _reads_item(node):
            target, ind = self.preloop, "    "
        else:
            target, ind = pre, indent
        hoisted: dict[str, str] = {}
        item_fields = _ItemFields(self, hoisted)
        first_gen = node.args[0]
        assert isinstance(first_gen, ast.GeneratorExp)
        comp = first_gen.generators[0]
        src = _code(comp.iter)
        conds = [rewrite(c) for c in comp.ifs]
        elts = []
        for member in group:
            gen = member.args[0]
            assert isinstance(gen, ast.GeneratorExp)
            elts.append(rewrite(gen.elt))
        if self.in_loop and target is pre:
            # fields of the for_each item are the same for every element: read each once, before the loop
            conds = [item_fields.visit(c) for c in conds]
            elts = [item_fields.visit(e) for e in elts]
        lines = [f"{field_var} = _it[{f!r}]" for f, field_var in hoisted.items()]
        cond = " and ".join(_code(c) for c in conds)
        fn = node.func.id  # type: ignore[attr-defined]
        sink = self.sink if isinstance(comp.iter, ast.Name) and not self.in_loop and not _reads_item(node) else None
        shared = comp.iter.id if isinstance(comp.iter, ast.Name) else ""
        if fn == "_any" or fn == "_all":
            var = self.temp("_a")
            elt = _code(elts[0])
            hit = "True" if fn == "_any" else "False"
            test = elt if fn == "_any" else f"not {elt}"
            # in a shared loop: no early exit, the flag is set by the first hit (the same value, more work)
            per_element = [f"if {cond}:", f"    if {test}:", f"        {var} = {hit}"] if cond else \
                [f"if {test}:", f"    {var} = {hit}"]
            if sink is not None and sink(shared, [f"{var} = {'False' if fn == '_any' else 'True'}"], per_element):
                self._available[key] = var
                return var
            lines += [f"{var} = {'False' if fn == '_any' else 'True'}", f"for _x in {src}:",
                      f"    if {test}:", f"        {var} = {hit}", "        break"]
            self._available[key] = var
            target += [ind + line for line in lines]
            return var
        init: list[str] = []
        body: list[str] = []
        final: list[str] = []
        for (member_key, member), elt_node in zip(keyed, elts, strict=True):
            var = self.temp("_a")
            self._available[member_key] = var
            member_fn = member.func.id  # type: ignore[attr-defined]
            if _is_count(member):
                # count(): sum of 1s is an exact int, counted directly
                init.append(f"{var} = 0")
                body.append(f"{var} += 1")
            else:
                # sum/min/max over the same values in the same order as the generator: the same builtin decides
                init.append(f"{var} = []")
                body.append(f"{var}.append({_code(elt_node)})")
                final.append(f"{var} = {member_fn}({var})")
        per_element = [f"if {cond}:", *(f"    {b}" for b in body)] if cond else body
        if sink is not None and sink(shared, init, per_element):
            target += [ind + line for line in final]
            return self._available[key]
        lines += init + [f"for _x in {src}:", *(f"    {b}" for b in per_element)]
        lines += final
        target += [ind + line for line in lines]
        return self._available[key]


def _is_count(node: ast.Call) -> bool:
    gen = node.args[0]
    return isinstance(gen, ast.GeneratorExp) and isinstance(gen.elt, ast.Constant) and gen.elt.value == 1 \
        and type(gen.elt.value) is int and node.func.id == "_sum"  # type: ignore[attr-defined]


def _fusable(node: ast.Call) -> bool:
    return node.func.id in ("_sum", "_agg_max", "_agg_min")  # type: ignore[attr-defined]


def _loop_signature(node: ast.Call) -> tuple[str, ...]:
    """What an aggregate iterates and filters on: aggregates sharing it can share one loop."""
    gen = node.args[0]
    assert isinstance(gen, ast.GeneratorExp)
    comp = gen.generators[0]
    return (ast.dump(comp.iter), *(ast.dump(c) for c in comp.ifs))


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
            return _name(f"_K{node.slice.value}{self.gen.suffix}")
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

    def visit_FormattedValue(self, node: ast.FormattedValue) -> ast.expr:
        self.generic_visit(node)
        spec = node.format_spec
        if self.in_generator or not (isinstance(spec, ast.JoinedStr) and len(spec.values) == 1
                                     and isinstance(spec.values[0], ast.Constant) and spec.values[0].value == ",.2f"):
            return node
        # money: a float is formatted by float.__format__ called directly (what the f-string's format would call,
        # less its look-up of the method); below 1,000 there is nothing to group, and ".2f" gives the same text
        # without the slower grouping path (tested on the float itself, so a rounding up to 1,000.00 never skips
        # it); anything else goes through format() as the f-string would
        t = self.gen.temp("_t")
        value = ast.NamedExpr(ast.Name(t, ast.Store()), node.value)
        is_float = ast.Compare(ast.Attribute(value, "__class__", ast.Load()), [ast.Is()], [_name("_float")])
        small = ast.Compare(ast.Constant(-999.99), [ast.LtE(), ast.LtE()], [_name(t), ast.Constant(999.99)])
        as_float = ast.Call(_name("_float_format"), [_name(t), ast.IfExp(small, _name("_MONEY_SMALL"), _name("_MONEY"))], [])
        other = ast.Call(_name("_format"), [_name(t), _name("_MONEY")], [])
        return ast.FormattedValue(ast.IfExp(is_float, as_float, other), -1, None)

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
