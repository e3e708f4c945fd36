"""The fast path and the catalogue's remembered answers: same results as the slow way, whatever the input."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.rules import Catalogue, compile_rule, load_catalogue
from core.rules import catalogue as catalogue_module

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
