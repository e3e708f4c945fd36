"""The catalogue-level path (one generated function for many rules) gives exactly what each rule gives alone."""

from __future__ import annotations

import dis
import gzip
import json
import random
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from core.rules import batch as batch_module
from core.rules import compile_rule, evaluate_all, load_catalogue
from core.rules.batch import batch_evaluator
from core.scoring import Origin, ScoreBook, rescore
from tests.unit.data.make_rules_golden import EXTRA_RULES, decode, outcome_text
from tests.unit.test_rules_fastpath import _damaged_features

GOLDEN = Path(__file__).resolve().parent / "data" / "rules_golden.json.gz"
CATALOGUE_DIR = Path(__file__).resolve().parents[2] / "rules"
_CATALOGUE = load_catalogue(CATALOGUE_DIR)
_RULES = [*_CATALOGUE.values(), *(compile_rule(text, f"{rid}.yaml") for rid, text in EXTRA_RULES.items())]


@pytest.fixture(scope="module")
def vectors() -> list[dict[str, object]]:
    data: dict[str, Any] = json.loads(gzip.decompress(GOLDEN.read_bytes()))
    out: list[dict[str, object]] = [decode(v) for v in data["vectors"]]
    return out


def _differences(rules: list[Any], features: dict[str, object]) -> list[str]:
    together = evaluate_all(rules, features)
    assert len(together) == len(rules)
    alone = [rule.evaluate(features) for rule in rules]
    return [f"{rule.id}: {outcome_text(a)} != {outcome_text(b)}" for rule, a, b in zip(rules, together, alone, strict=True)
            if a != b or outcome_text(a) != outcome_text(b)]


def test_golden_vectors_give_the_per_rule_outcomes(vectors: list[dict[str, object]]) -> None:
    """200 clean and damaged feature sets (missing features, None, wrong types, NaN, odd items), 40 rules."""
    assert len(vectors) >= 200
    differences = [d for v in vectors for d in _differences(_RULES, v)]
    assert not differences, f"{len(differences)} outcomes differ, first: {differences[:3]}"


def test_any_order_and_subset_gives_the_per_rule_outcomes(vectors: list[dict[str, object]]) -> None:
    rng = random.Random(11)
    for _ in range(30):
        rules = rng.sample(_RULES, rng.randint(1, len(_RULES)))
        if rng.random() < 0.3:
            rules.append(rules[0])  # the same rule twice is two outcomes
        for v in rng.sample(vectors, 20):
            assert not _differences(rules, v)


def test_examples_of_every_rule_give_the_per_rule_outcomes() -> None:
    for rule in _RULES:
        for example in rule.examples:
            assert not _differences(_RULES, dict(example.features)), (rule.id, example.name)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_damaged_features())
def test_damaged_features_give_the_per_rule_outcomes(features: dict[str, object]) -> None:
    assert not _differences(_RULES, features)


COUNTING = """\
id: counting
version: 1
title: Counting
kind: insight
trigger: nightly
when: count(recurring, it.active and it.typical_amount > £5) >= 1
score: clamp(sum(recurring, it.typical_amount, it.active and it.typical_amount > £5) / £100, 0, 1)
message: "{balance_available}"
"""


def test_shared_function_shares_the_loops_and_the_feature_reads() -> None:
    rules = [_CATALOGUE["subscription_unused"], compile_rule(COUNTING, "counting.yaml"), _CATALOGUE["low_balance"],
             _CATALOGUE["switch_energy"], _CATALOGUE["switch_broadband_mobile"]]
    code = batch_evaluator(rules).code
    assert code.count("for _it in _g_recurring:") == 1
    assert "for _x in" not in code  # the plain rule's count and sum ride along in the shared loop
    assert code.count("_F['today']") == 1  # both switch rules compare dates with today: read once, up front
    assert code.count("_it['active']") == 1  # read once per item for the rules that need it
    assert code.count("_it['category']") == 1
    # a plain rule reads its features in its own part, just before the test that needs them
    up_front = code.split("except Exception:")[0]
    assert "_F['recurring']" in up_front and "_F['balance_available']" not in up_front
    assert code.count("_F['balance_available']") == 2  # low_balance's test, counting's message


def test_the_function_is_remembered_per_list_and_the_memory_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    rules = list(_CATALOGUE.values())
    assert batch_evaluator(rules) is batch_evaluator(list(rules))
    assert batch_evaluator(rules[:3]) is not batch_evaluator(rules[:4])
    monkeypatch.setattr(batch_module, "_MAX_CACHED", 2)
    monkeypatch.setattr(batch_module, "_cache", {})
    for n in range(1, 6):
        batch_evaluator(rules[:n])
    assert len(batch_module._cache) <= 2



def test_the_last_list_asked_for_is_remembered_by_its_contents_not_by_the_list(
        vectors: list[dict[str, object]]) -> None:
    """The memo of the last call compares the rules given with the last ones: a list changed in place, another list
    or a tuple of other rules must not get the function of the rules asked for before."""
    rules = list(_CATALOGUE.values())
    first = batch_evaluator(rules)
    assert batch_evaluator(list(rules)) is first and batch_evaluator(tuple(rules)) is first
    rules.reverse()  # the same list object, other order
    reversed_ = batch_evaluator(rules)
    assert reversed_ is not first and reversed_.rules == tuple(rules)
    rules[0] = _CATALOGUE["low_balance"]  # the same list object, another rule in it
    changed = batch_evaluator(rules)
    assert changed.rules == tuple(rules) and changed is not reversed_
    assert batch_evaluator(tuple(rules[:5])).rules == tuple(rules[:5])
    for a, b in [(rules, rules[:7]), (rules[:7], rules), (rules, rules)]:  # alternating lists
        for v in vectors[:10]:
            assert evaluate_all(a, v) == [r.evaluate(v) for r in a]
            assert evaluate_all(b, v) == [r.evaluate(v) for r in b]
    plain = _Plain()
    assert batch_evaluator([plain]).code == "" and batch_evaluator([plain]).rules == (plain,)


@pytest.mark.skipif(sys.version_info[:2] != (3, 11), reason="CPython 3.11's specialisation of comparisons")
def test_comparisons_of_the_shared_loops_specialise(vectors: list[dict[str, object]]) -> None:
    """A comparison followed by a jump with an EXTENDED_ARG (over a long body) stays generic in CPython 3.11:
    the shared function writes such tests so that a short jump follows them (batch._ShortJumps)."""
    rules = list(_CATALOGUE.values())
    evaluator = batch_evaluator(rules)
    for v in vectors * 3:  # past the interpreter's warm-up counters
        evaluator.evaluate(v)
    generic = [i for i in dis.get_instructions(evaluator.evaluate, adaptive=True) if i.opname == "COMPARE_OP"]
    lines = evaluator.code.splitlines()
    assert not generic, [lines[i.positions.lineno - 1].strip() for i in generic if i.positions and i.positions.lineno]


class _Plain:
    """A rule from elsewhere (no generated plan): evaluated on its own."""

    id, version, title, kind, cooldown = "plain", 1, "Plain", "insight", None

    def __init__(self) -> None:
        self.calls = 0

    def evaluate(self, features: object, explain: bool = False) -> Any:
        self.calls += 1
        return _CATALOGUE["low_balance"].evaluate(features, explain)

    __hash__ = None  # type: ignore[assignment]  # not even hashable


def test_rules_from_elsewhere_are_evaluated_one_by_one() -> None:
    plain = _Plain()
    features: dict[str, object] = {"balance_available": 50.0}
    outcomes = evaluate_all([plain, _CATALOGUE["low_balance"]], features)
    assert plain.calls == 1 and outcomes[0] == outcomes[1] and outcomes[0].eligible


def test_rescore_gives_what_rule_by_rule_evaluation_gives(vectors: list[dict[str, object]]) -> None:
    """Same updates and alerts as scoring each rule alone, through changes, repeats and tombstones."""
    rules = list(_CATALOGUE.values())
    now = datetime(2026, 3, 15, 12, tzinfo=UTC)
    book_a, book_b = ScoreBook(), ScoreBook()
    for i, v in enumerate(vectors[:60] + vectors[:60]):
        origin = Origin("transaction", f"t{i}")
        got = rescore(book_a, rules, v, customer_id="c", now=now, origin=origin, alerts_enabled=True)
        want = rescore(book_b, [_Alone(r) for r in rules], v, customer_id="c", now=now, origin=origin,
                       alerts_enabled=True)
        assert got == want
    assert book_a == book_b and book_a.scores


class _Alone:
    """Wraps a compiled rule so the batch path does not take it (no plan): the rule-by-rule reference."""

    def __init__(self, rule: Any) -> None:
        self.rule = rule
        self.id, self.version, self.title, self.kind, self.cooldown = \
            rule.id, rule.version, rule.title, rule.kind, rule.cooldown

    def evaluate(self, features: object, explain: bool = False) -> Any:
        return self.rule.evaluate(features, explain)


def test_validity_windows_give_the_per_rule_outcomes(vectors: list[dict[str, object]]) -> None:
    windowed = [r for r in _RULES if r.valid_from or r.valid_until]
    assert windowed
    rules = [*windowed, *_RULES[:6]]
    for today in (date(2025, 1, 1), date(2026, 3, 15), date(2027, 1, 1), None, "2026-03-15"):
        for v in vectors[:40]:
            assert not _differences(rules, {**v, "today": today})
