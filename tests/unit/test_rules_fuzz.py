"""Fuzzing the validator: random text and random ASTs either compile or give a validation error.

Nothing else may escape, nothing may take long (the hypothesis deadline bounds every example), and a rule
that compiles must evaluate any feature values, however wrong, without raising.
Run with ``--hypothesis-show-statistics`` to see how many inputs were accepted and which errors the rest got.
"""

from __future__ import annotations

import ast
from datetime import date, timedelta

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from core.features.registry import REGISTRY, FeatureType
from core.rules import RuleOutcome, RuleValidationError, compile_rule
from core.rules.errors import ValidationIssue
from core.rules.expressions import ExprCompiler, ExprSource, Scope

FUZZ = settings(max_examples=400, deadline=timedelta(seconds=2), suppress_health_check=[HealthCheck.too_slow])
SCALARS = [n for n, s in REGISTRY.items() if s.type != FeatureType.COLLECTION]
COLLECTIONS = [n for n, s in REGISTRY.items() if s.type == FeatureType.COLLECTION]
FIELDS = sorted({f for s in REGISTRY.values() for f in s.item})
FUNCS = ["min", "max", "abs", "round", "clamp", "days_between", "pct_change", "known", "any", "all", "count",
         "sum", "floor", "ceil", "len", "eval", "__import__", "open"]

TEMPLATE = """\
id: fuzz_rule
version: 1
title: Fuzz
kind: alert
trigger: both
{for_each}when: {when}
score: {score}
message: "m {{balance_available}}"
"""


def _quote(expr: str) -> str:
    return '"' + expr.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ") + '"'


# ---------------------------------------------------------------------- random ASTs
names = st.one_of(st.sampled_from(SCALARS + COLLECTIONS + ["item", "it", "x", "__class__"]),
                  st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True))
constants = st.one_of(st.integers(-10**6, 10**6), st.floats(allow_nan=True, allow_infinity=True),
                      st.sampled_from(["energy", "", "£", "30d", "monthly"]), st.booleans(), st.none())
leaves = st.one_of(names.map(lambda n: ast.Name(n, ast.Load())), constants.map(ast.Constant),
                   st.tuples(st.sampled_from(["item", "it", "x"]), st.sampled_from(FIELDS + ["__dict__"])).map(
                       lambda p: ast.Attribute(ast.Name(p[0], ast.Load()), p[1], ast.Load())))
BINOPS = [ast.Add(), ast.Sub(), ast.Mult(), ast.Div(), ast.Mod(), ast.FloorDiv(), ast.Pow(), ast.BitAnd()]
CMPOPS = [ast.Eq(), ast.NotEq(), ast.Lt(), ast.LtE(), ast.Gt(), ast.GtE(), ast.In(), ast.NotIn(), ast.Is()]


def _extend(children: st.SearchStrategy[ast.expr]) -> st.SearchStrategy[ast.expr]:
    return st.one_of(
        st.builds(ast.BinOp, children, st.sampled_from(BINOPS), children),
        st.builds(lambda a, op, b: ast.Compare(a, [op], [b]), children, st.sampled_from(CMPOPS), children),
        st.builds(lambda vs, op: ast.BoolOp(op, vs), st.lists(children, min_size=2, max_size=3),
                  st.sampled_from([ast.And(), ast.Or()])),
        st.builds(ast.UnaryOp, st.sampled_from([ast.Not(), ast.USub(), ast.Invert()]), children),
        st.builds(ast.IfExp, children, children, children),
        st.builds(lambda f, args: ast.Call(ast.Name(f, ast.Load()), args, []), st.sampled_from(FUNCS),
                  st.lists(children, max_size=3)),
        st.builds(lambda c, cond: ast.Call(ast.Name("count", ast.Load()), [ast.Name(c, ast.Load()), cond], []),
                  st.sampled_from(COLLECTIONS), children),
        st.builds(lambda vs: ast.Tuple(vs, ast.Load()), st.lists(children, max_size=3)),
        st.builds(lambda v: ast.Subscript(v, ast.Constant(0), ast.Load()), children),
        st.builds(lambda b: ast.Lambda(ast.arguments([], [], None, [], [], None, []), b), children),
    )


random_asts = st.recursive(leaves, _extend, max_leaves=25)


def _features_strategy() -> st.SearchStrategy[dict[str, object]]:
    anything = st.one_of(st.none(), st.floats(allow_nan=True), st.integers(-5, 10**9), st.text(max_size=5),
                         st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 1, 1)), st.booleans())
    item = st.dictionaries(st.sampled_from(FIELDS), anything, max_size=8)
    value = st.one_of(anything, st.lists(item, max_size=4))
    return st.dictionaries(st.sampled_from(SCALARS + COLLECTIONS), value, max_size=40)


def _check_compile(text: str) -> object | None:
    try:
        rule = compile_rule(text, "fuzz.yaml")
    except RuleValidationError as exc:
        assert exc.errors, "a validation error must list at least one problem"
        for issue in exc.errors:
            assert isinstance(issue, ValidationIssue) and issue.message and issue.line >= 0
        event(f"rejected: {exc.errors[0].code}")
        return None
    event("accepted")
    return rule


@FUZZ
@given(tree=random_asts, score=random_asts, for_each=st.booleans(), features=_features_strategy())
def test_random_asts_compile_or_fail_cleanly_and_evaluate_safely(tree: ast.expr, score: ast.expr, for_each: bool,
                                                                 features: dict[str, object]) -> None:
    try:
        when_text, score_text = ast.unparse(tree), ast.unparse(score)
    except Exception:  # noqa: BLE001 - some random trees cannot be unparsed; not the validator's concern
        return
    text = TEMPLATE.format(for_each="for_each: recurring\n" if for_each else "", when=_quote(when_text),
                           score=_quote(score_text))
    rule = _check_compile(text)
    if rule is not None:
        out = rule.evaluate(features)  # type: ignore[attr-defined]
        assert isinstance(out, RuleOutcome)
        assert out.eligible or out.reasons
        if out.eligible:
            assert out.score is not None and 0.0 <= out.score <= 1.0
        assert isinstance(rule.evaluate(features, explain=True), RuleOutcome)  # type: ignore[attr-defined]


@FUZZ
@given(expr=st.text(max_size=200))
def test_random_text_as_an_expression(expr: str) -> None:
    issues: list[ValidationIssue] = []
    compiler = ExprCompiler(REGISTRY, issues)
    result = compiler.compile(ExprSource(expr, "fuzz"), Scope(item_coll="recurring"))
    assert (result is None) == bool(issues)
    event("accepted" if result is not None else f"rejected: {issues[0].code}")


@FUZZ
@given(text=st.text(max_size=400))
def test_random_text_as_a_rule_file(text: str) -> None:
    _check_compile(text)


@FUZZ
@given(expr=st.lists(st.sampled_from(SCALARS + ["+", "-", "*", "/", "<", "and", "or", "not", "(", ")", "£5",
                                                  "30d", "0", "1.5", "==", "known(", "max(", ",", "item.",
                                                  "last_amount", "if", "else", "in", "('a', 'b')"]),
                     max_size=30).map(" ".join))
def test_token_soup(expr: str) -> None:
    rule = _check_compile(TEMPLATE.format(for_each="", when=_quote(expr), score="0.5"))
    if rule is not None:
        assert isinstance(rule.evaluate({}), RuleOutcome)  # type: ignore[attr-defined]


# ---------------------------------------------------------------------- well-typed random rules
MONEY = [n for n, s in REGISTRY.items() if s.type == FeatureType.MONEY]
MONEY_FIELDS = [f for f, s in REGISTRY["recurring"].item.items() if s.type == FeatureType.MONEY]
money_leaf = st.one_of(st.sampled_from(MONEY), st.integers(0, 5000).map(lambda n: f"£{n}"),
                       st.sampled_from(MONEY_FIELDS).map(lambda f: f"item.{f}"))
money_expr = st.recursive(money_leaf, lambda c: st.one_of(
    st.tuples(c, st.sampled_from(["+", "-"]), c).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
    st.tuples(c, st.floats(0, 3).map(lambda x: f"{x:.2f}")).map(lambda t: f"({t[0]} * {t[1]})"),
    st.tuples(st.sampled_from(["max", "min"]), c, c).map(lambda t: f"{t[0]}({t[1]}, {t[2]})"),
    st.tuples(c, c).map(lambda t: f"({t[0]} / max({t[1]}, £1) * £1)"),
    c.map(lambda a: f"abs({a})"),
), max_leaves=8)
bool_leaf = st.one_of(
    st.tuples(money_expr, st.sampled_from(["<", "<=", ">", ">=", "==", "!="]), money_expr).map(" ".join),
    st.sampled_from(MONEY + ["income_next_date", "item.next_expected"]).map(lambda n: f"known({n})"),
    st.integers(0, 5).map(lambda n: f"count(recurring, it.active and it.last_amount > £{n}) >= 1"),
    st.sampled_from(["item.active", "new_income_source", "last_txn_is_income",
                     "income_cadence in ('monthly', 'weekly')", "days_between(income_last_date, today) <= 3",
                     "today - income_last_date > 3d", "any(duplicate_charges, it.count >= 2)",
                     "sum(categories, it.spend_30d) > £100"]),
)
bool_expr = st.recursive(bool_leaf, lambda c: st.one_of(
    st.tuples(c, st.sampled_from(["and", "or"]), c).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
    c.map(lambda b: f"not ({b})"),
), max_leaves=6)


@FUZZ
@given(when=bool_expr, score=money_expr, features=_features_strategy(), for_each=st.booleans())
def test_well_typed_random_rules_evaluate_safely(when: str, score: str, for_each: bool,
                                                 features: dict[str, object]) -> None:
    text = TEMPLATE.format(for_each="for_each: recurring\n" if for_each else "", when=_quote(when),
                           score=_quote(f"clamp({score} / £1000, 0, 1)"))
    rule = _check_compile(text)
    if rule is not None:
        for explain in (False, True):
            out = rule.evaluate(features, explain=explain)  # type: ignore[attr-defined]
            assert isinstance(out, RuleOutcome) and (out.eligible or out.reasons)
            if out.eligible:
                assert out.score is not None and 0.0 <= out.score <= 1.0
