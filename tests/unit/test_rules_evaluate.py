"""Evaluation semantics: never raises, reasons, explain, for_each items, windows, the catalogue index."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest

from core.rules import Catalogue, compile_rule, load_catalogue
from core.rules.examples import run_examples

CATALOGUE_DIR = Path(__file__).resolve().parents[2] / "rules"

PLAIN = """\
id: plain_rule
version: 3
title: Plain
kind: alert
trigger: realtime
cooldown: 2d
when:
  - known(income_next_date)
  - balance_available < £200
  - spend_30d / max(spend_prev_30d, £1) > 1.1
score: clamp(1 - balance_available / £400, 0, 1)
message: "Low: £{balance_available} before {income_next_date}"
"""

EACH = """\
id: each_rule
version: 1
title: Each
kind: insight
trigger: nightly
for_each: recurring
when:
  - item.previous_amount > 0
  - item.last_amount > item.previous_amount
score: clamp(item.last_amount / item.previous_amount - 1, 0, 1)
message: "{merchant} up to £{last_amount}"
"""

GOOD = {"income_next_date": date(2026, 3, 27), "balance_available": 100.0, "spend_30d": 900.0,
        "spend_prev_30d": 600.0}


def test_plain_rule_outcome_and_metadata() -> None:
    rule = compile_rule(PLAIN, "plain.yaml")
    assert rule.reads == frozenset({"income_next_date", "balance_available", "spend_30d", "spend_prev_30d"})
    assert rule.cooldown == timedelta(days=2) and rule.version == 3 and rule.source == PLAIN
    out = rule.evaluate(GOOD)
    assert out.eligible and out.score == pytest.approx(0.75) and out.items == ()
    assert out.message == "Low: £100.00 before 27 Mar 2026" and out.error is None


def test_not_eligible_names_the_failing_condition() -> None:
    rule = compile_rule(PLAIN, "plain.yaml")
    out = rule.evaluate({**GOOD, "balance_available": 500.0})
    assert not out.eligible and out.score is None
    assert [r.text for r in out.reasons] == ["condition not met: balance_available < £200"]


@pytest.mark.parametrize(
    ("features", "reason"),
    [
        ({k: v for k, v in GOOD.items() if k != "income_next_date"}, "missing feature income_next_date"),
        ({k: v for k, v in GOOD.items() if k != "spend_30d"}, "missing feature spend_30d"),
        ({**GOOD, "balance_available": None}, "feature balance_available has no value yet"),
        ({**GOOD, "income_next_date": None}, "condition not met: known(income_next_date)"),
    ],
)
def test_runtime_problems_give_not_eligible_with_a_reason(features: dict[str, object], reason: str) -> None:
    out = compile_rule(PLAIN, "plain.yaml").evaluate(features)
    assert not out.eligible and out.reasons[0].text == reason and out.error is None


def test_unexpected_runtime_errors_are_reported_not_raised() -> None:
    out = compile_rule(PLAIN, "plain.yaml").evaluate({**GOOD, "balance_available": "lots"})
    assert not out.eligible and out.error is not None and "TypeError" in out.error


class Hostile(dict[str, object]):
    def __getitem__(self, key: object) -> object:
        raise RuntimeError("boom")


def test_evaluate_never_raises_even_on_a_hostile_mapping() -> None:
    for text in (PLAIN, EACH):
        out = compile_rule(text, "x.yaml").evaluate(Hostile())
        assert not out.eligible and out.reasons


def test_explain_lists_each_condition_with_the_values_read() -> None:
    rule = compile_rule(PLAIN, "plain.yaml")
    out = rule.evaluate({**GOOD, "spend_30d": 100.0}, explain=True)
    assert not out.eligible
    steps = [(r.condition, r.passed) for r in out.reasons if r.condition]
    assert steps == [("known(income_next_date)", True), ("balance_available < £200", True),
                     ("spend_30d / max(spend_prev_30d, £1) > 1.1", False)]
    assert out.reasons[2].features == {"spend_30d": 100.0, "spend_prev_30d": 600.0}
    assert out.reasons[-1].text == "condition not met: spend_30d / max(spend_prev_30d, £1) > 1.1"
    assert out.reasons[0].to_dict()["features"] == {"income_next_date": "2026-03-27"}


def test_for_each_items_sorted_by_score_with_keys_and_messages() -> None:
    rule = compile_rule(EACH, "each.yaml")
    assert rule.reads == frozenset({"recurring"})
    items = [
        {"merchant": "a", "previous_amount": 10.0, "last_amount": 11.0},
        {"merchant": "b", "previous_amount": 10.0, "last_amount": 15.0},
        {"merchant": "c", "previous_amount": 10.0, "last_amount": 9.0},
        {"merchant": "d", "previous_amount": None, "last_amount": 9.0},
    ]
    out = rule.evaluate({"recurring": items})
    assert out.eligible and [i.key for i in out.items] == ["b", "a"]
    assert out.score == pytest.approx(0.5) and out.message == "b up to £15.00"
    assert out.items[1].score == pytest.approx(0.1)
    assert out.error is None or "d" in out.error


def test_for_each_with_no_eligible_item_and_item_errors() -> None:
    rule = compile_rule(EACH, "each.yaml")
    out = rule.evaluate({"recurring": []})
    assert not out.eligible and out.reasons[0].text.startswith("no recurring item meets")
    out = rule.evaluate({"recurring": [{"merchant": "x", "previous_amount": None, "last_amount": 3.0}]})
    assert out.reasons[0].text == "recurring item 'x': field previous_amount has no value yet"
    out = rule.evaluate({"recurring": [{"merchant": "x", "last_amount": 3.0}]})
    assert out.reasons[0].text == "recurring item 'x' has no field 'previous_amount'"


def test_validity_window_reads_today() -> None:
    text = PLAIN.replace("cooldown: 2d\n", "cooldown: 2d\nvalid_from: 2026-03-01\nvalid_until: 2026-03-31\n")
    rule = compile_rule(text, "plain.yaml")
    assert "today" in rule.reads
    assert rule.evaluate({**GOOD, "today": date(2026, 3, 10)}).eligible
    assert rule.evaluate({**GOOD, "today": date(2026, 2, 10)}).reasons[0].text == "rule valid from 2026-03-01"
    assert rule.evaluate({**GOOD, "today": date(2026, 4, 1)}).reasons[0].text == "rule valid until 2026-03-31"


def test_generated_code_never_contains_author_text() -> None:
    sneaky = "x'); __import__('os').system('echo pwned'); ('"
    text = PLAIN.replace("  - known(income_next_date)\n", f'  - income_cadence != "{sneaky}"\n')
    rule = compile_rule(text, "plain.yaml")
    assert sneaky not in rule.code and "__import__" not in rule.code and "os" not in rule.code.split()
    assert rule.evaluate({**GOOD, "income_cadence": "monthly"}).eligible


def test_money_literals_and_durations_inside_strings_are_left_alone() -> None:
    text = PLAIN.replace("  - known(income_next_date)\n", '  - income_cadence != "£5 in 30d"\n')
    rule = compile_rule(text, "plain.yaml")
    assert not rule.evaluate({**GOOD, "income_cadence": "£5 in 30d"}).eligible


def test_catalogue_index_by_feature_and_trigger() -> None:
    plain = compile_rule(PLAIN, "plain.yaml")
    each = compile_rule(EACH, "each.yaml")
    both = compile_rule(PLAIN.replace("id: plain_rule", "id: both_rule").replace("trigger: realtime",
                                                                                  "trigger: both"), "b.yaml")
    cat = Catalogue([plain, each, both])
    assert [r.id for r in cat.rules_reading({"balance_available"})] == ["both_rule", "plain_rule"]
    assert [r.id for r in cat.rules_reading({"balance_available"}, trigger="nightly")] == ["both_rule"]
    assert [r.id for r in cat.rules_reading({"recurring", "spend_7d"}, trigger="nightly")] == ["each_rule"]
    assert cat.rules_reading({"spend_7d"}) == []
    smaller = cat.without("both_rule")
    assert set(smaller) == {"plain_rule", "each_rule"} and len(cat) == 3


def test_every_catalogue_rule_example_passes() -> None:
    catalogue = load_catalogue(CATALOGUE_DIR)
    assert len(catalogue) >= 30
    failures = []
    count = 0
    for rule in catalogue.values():
        assert len(rule.examples) >= 2, f"{rule.id} needs an eligible and a not-eligible example"
        results = run_examples(rule)
        assert any(r.outcome.eligible for r in results) and any(not r.outcome.eligible for r in results)
        count += len(results)
        failures += [f"{r.rule_id} / {r.example}: {r.problems}" for r in results if not r.passed]
    assert not failures, "\n".join(failures)
    assert count >= 60


def test_catalogue_covers_the_issue_areas() -> None:
    ids = set(load_catalogue(CATALOGUE_DIR))
    for wanted in ("subscription_price_rise", "subscription_unused", "free_trial_ending", "duplicate_subscriptions",
                   "annual_renewal_coming", "bill_higher_than_usual", "bills_before_payday_low_balance",
                   "switch_energy", "switch_broadband_mobile", "insurance_renewal_coming", "salary_arrived",
                   "salary_late", "salary_smaller", "new_income_source", "projected_overdraft", "low_balance",
                   "spending_pace", "category_spike", "overdraft_fees", "fx_fees", "cash_withdrawal_fees",
                   "round_up_potential", "surplus_to_savings", "duplicate_charge", "refund_not_received"):
        assert wanted in ids


def test_example_expectations_can_fail() -> None:
    text = PLAIN + ("examples:\n  - name: wrong\n    features: {income_next_date: 2026-03-27, balance_available: 100.0,"
                    " spend_30d: 900.0, spend_prev_30d: 600.0}\n    expect: {eligible: true, score: [0.1, 0.2],"
                    " message: nope}\n")
    (result,) = run_examples(compile_rule(text, "plain.yaml"))
    assert not result.passed and len(result.problems) == 2
