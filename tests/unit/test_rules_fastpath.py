"""The fast path and the catalogue's remembered answers: same results as the slow way, whatever the input."""

from __future__ import annotations

import math
import random
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.bench_rules import feature_vector
from core.rules import Catalogue, compile_rule, load_catalogue
from core.rules import catalogue as catalogue_module
from tests.unit.data.make_rules_golden import EXTRA_RULES, ODD_VALUES, outcome_text

CATALOGUE_DIR = Path(__file__).resolve().parents[2] / "rules"

EACH = """\
id: each_items
version: 1
title: Each
kind: insight
trigger: nightly
for_each: recurring
when:
  - item.active
  - count(recurring, it.category == item.category) >= 1
score: clamp(item.typical_amount / £100, 0, 1)
values:
  same: count(recurring, it.category == item.category)
message: "{merchant} {same} £{typical_amount}"
"""


def _item(merchant: str, amount: float, **extra: object) -> dict[str, object]:
    return {"merchant": merchant, "category": "streaming", "active": True, "typical_amount": amount, **extra}


def test_fast_and_reference_functions_agree_on_items_order_and_errors() -> None:
    rule = compile_rule(EACH, "each_items.yaml")
    reference = rule.evaluate.__globals__["_reference"]
    cases: list[dict[str, object]] = [
        {"recurring": []},
        {"recurring": [_item("a", 10.0)]},
        {"recurring": [_item("a", 10.0), _item("b", 90.0), _item("c", 50.0)]},
        {"recurring": [_item("a", 10.0), _item("b", 20.0, typical_amount=None)]},  # one item fails
        {"recurring": [_item("a", 10.0), {"merchant": "x"}]},  # a field missing
        {"recurring": [_item("a", -5.0), _item("b", 1e9)]},  # clamped both ways
        {"recurring": None},
        {},
    ]
    for features in cases:
        assert rule.evaluate(features) == reference(features), features
    three = rule.evaluate(cases[2])
    assert [i.key for i in three.items] == ["b", "c", "a"] and three.message == "b 3 £90.00"
    one_bad = rule.evaluate(cases[3])
    assert one_bad.eligible and [i.key for i in one_bad.items] == ["a"]  # the good item still counts
    assert one_bad.error == "recurring item 'b': field typical_amount has no value yet"
    assert not rule.evaluate({}).eligible and rule.evaluate({}).reasons[0].text == "missing feature recurring"


def test_fast_path_keeps_a_whole_condition_together() -> None:
    """`not (a and b)` and `a or b` as whole conditions: the fast code must keep their grouping."""
    text = EACH.replace("  - item.active\n", "  - not (item.active and item.typical_amount > 50) or item.count > 3\n")
    rule = compile_rule(text, "each_items.yaml")
    reference = rule.evaluate.__globals__["_reference"]
    for active, amount, count in [(True, 60.0, 1), (True, 10.0, 1), (False, 60.0, 1), (True, 60.0, 5)]:
        features = {"recurring": [_item("a", amount, active=active, count=count)]}
        assert rule.evaluate(features) == reference(features)
        assert rule.evaluate(features).eligible == ((not (active and amount > 50)) or count > 3)


def test_remembered_index_answers_are_fresh_lists_and_follow_the_catalogue() -> None:
    catalogue = load_catalogue(CATALOGUE_DIR)
    changed = {"balance_available", "last_txn_amount", "spend_30d"}
    first = catalogue.rules_reading(changed)
    assert first and [r.id for r in first] == sorted(r.id for r in first)
    assert all(r.trigger in ("realtime", "both") and r.reads & changed for r in first)
    first.clear()  # the caller's list is its own
    again = catalogue.rules_reading(frozenset(changed))
    assert again and again == catalogue.rules_reading(changed)
    nightly = catalogue.for_trigger("nightly")
    nightly.pop()
    assert len(catalogue.for_trigger("nightly")) == len(nightly) + 1
    query = {"balance_available", "spend_30d"}
    before = catalogue.rules_reading(query)
    query |= {"recurring", "last_txn_amount"}  # the same set object asking a different question
    assert catalogue.rules_reading(query) == Catalogue(catalogue.values()).rules_reading(set(query)) != before
    assert catalogue.rules_reading(query, trigger="nightly") == \
        Catalogue(catalogue.values()).rules_reading(set(query), trigger="nightly")
    smaller = catalogue.without(again[0].id)
    assert again[0] not in smaller.rules_reading(changed) and again[0] in catalogue.rules_reading(changed)


def test_remembered_answers_stay_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(catalogue_module, "_MAX_ANSWERS", 4)
    catalogue = Catalogue(load_catalogue(CATALOGUE_DIR).values())
    names = sorted({n for r in catalogue.values() for n in r.reads})
    for i in range(len(names) - 1):
        pair = {names[i], names[i + 1]}
        assert catalogue.rules_reading(pair) == sorted(
            {r for n in pair for r in catalogue.values() if n in r.reads and r.trigger != "nightly"},
            key=lambda r: r.id)
    assert len(catalogue._answers) <= 4


def test_money_text_is_the_reference_text_around_the_grouping_boundary() -> None:
    rule = compile_rule(
        "id: money\nversion: 1\ntitle: t\nkind: insight\ntrigger: both\nwhen: known(balance_available)\n"
        "score: 0.5\nmessage: \"£{balance_available}\"\n", "money.yaml")
    reference = rule.evaluate.__globals__["_reference"]
    rng = random.Random(3)
    values: list[object] = [0.0, -0.0, 0.004, -0.004, 0.005, -0.005, 999.99, 999.994999, 999.995, 999.996,
                            1000.0, -999.99, -999.995, -1000.0, 1e15, -1e300, math.nan, math.inf, -math.inf,
                            5, 999, 1000, -1000, True, Decimal("999.995"), Decimal("12.345")]
    for edge in (999.99, 999.995, 1000.0):
        for sign in (1.0, -1.0):
            x = sign * edge
            for _ in range(5):
                values += [x := math.nextafter(x, math.inf)]
            x = sign * edge
            for _ in range(5):
                values += [x := math.nextafter(x, -math.inf)]
    values += [rng.uniform(-2000, 2000) for _ in range(3000)] + [rng.uniform(-1, 1) for _ in range(500)]
    for value in values:
        features = {"balance_available": value}
        assert rule.evaluate(features) == reference(features), value
    assert rule.evaluate({"balance_available": 999.996}).message == "£1,000.00"
    assert rule.evaluate({"balance_available": -0.001}).message == "£-0.00"
    assert "_float_format(" in rule.code  # the fast path formats floats with float.__format__ directly

    class Pounds(float):  # not exactly a float: goes through format(), whose text the subclass decides
        def __format__(self, spec: str) -> str:
            return f"<{float(self):{spec}}>"

    for value in (Pounds(12.5), Pounds(1234.5), Pounds(-0.004)):
        features = {"balance_available": value}
        assert rule.evaluate(features) == reference(features), value
    assert rule.evaluate({"balance_available": Pounds(1234.5)}).message == "£<1,234.50>"


_RULES = [compile_rule(p.read_text(encoding="utf-8"), str(p)) for p in sorted(CATALOGUE_DIR.glob("*.yaml"))] + \
    [compile_rule(text, f"{rid}.yaml") for rid, text in EXTRA_RULES.items()]
_BASE = feature_vector(random.Random(5), date(2026, 3, 15))
_SCALARS = sorted(k for k, v in _BASE.items() if not isinstance(v, list))
_COLLECTIONS = sorted(k for k, v in _BASE.items() if isinstance(v, list))
_ODD = st.sampled_from(ODD_VALUES) | st.floats(allow_nan=True, allow_infinity=True) | st.integers(-10**20, 10**20)


@st.composite
def _damaged_features(draw: st.DrawFn) -> dict[str, object]:
    features: dict[str, object] = {k: ([dict(i) for i in v] if isinstance(v, list) else v) for k, v in _BASE.items()}
    for name in draw(st.lists(st.sampled_from(_SCALARS), max_size=4)):
        features[name] = draw(_ODD)
    for name in draw(st.lists(st.sampled_from(_COLLECTIONS), max_size=3)):
        items = features[name]
        item = items[draw(st.integers(0, len(items) - 1))] if isinstance(items, list) and items else None
        if isinstance(item, dict) and item and draw(st.booleans()):
            field = draw(st.sampled_from(sorted(item)))
            if draw(st.booleans()):
                del item[field]
            else:
                item[field] = draw(_ODD)
        else:
            features[name] = draw(st.sampled_from([[], None, 7, [None], [{}]]))
    for name in draw(st.lists(st.sampled_from(_SCALARS + _COLLECTIONS), max_size=2)):
        features.pop(name, None)
    return features


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_damaged_features())
def test_fast_path_equals_the_reference_function_on_damaged_features(features: dict[str, object]) -> None:
    for rule in _RULES:
        reference = rule.evaluate.__globals__["_reference"]
        assert outcome_text(rule.evaluate(features)) == outcome_text(reference(features)), rule.id
