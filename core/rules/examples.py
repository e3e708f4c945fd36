"""Run a rule's own examples: each is a unit test an author writes next to the rule."""

from __future__ import annotations

from dataclasses import dataclass

from .model import CompiledRule, Example, RuleOutcome

__all__ = ["ExampleResult", "run_examples", "check_example"]

_SCORE_TOLERANCE = 1e-9


@dataclass(frozen=True, slots=True)
class ExampleResult:
    rule_id: str
    example: str
    line: int
    passed: bool
    problems: tuple[str, ...]
    outcome: RuleOutcome


def check_example(rule: CompiledRule, example: Example) -> ExampleResult:
    """Evaluate one example (with explain, so a failure shows why) and compare with its expectations."""
    outcome = rule.evaluate(example.features, explain=True)
    expect = example.expect
    problems: list[str] = []
    if outcome.eligible != expect["eligible"]:
        why = "; ".join(r.text for r in outcome.reasons if r.passed is not True)
        problems.append(f"expected eligible={expect['eligible']}, got {outcome.eligible} ({why})")
    if "score" in expect:
        want = expect["score"]
        lo, hi = (want, want) if not isinstance(want, list) else (want[0], want[1])
        got = outcome.score
        if got is None or not lo - _SCORE_TOLERANCE <= got <= hi + _SCORE_TOLERANCE:
            problems.append(f"expected score in [{lo}, {hi}], got {got}")
    if "message" in expect and outcome.message != expect["message"]:
        problems.append(f"expected message {expect['message']!r}, got {outcome.message!r}")
    if "message_contains" in expect and expect["message_contains"] not in (outcome.message or ""):
        problems.append(f"expected message containing {expect['message_contains']!r}, got {outcome.message!r}")
    if "keys" in expect:
        keys = [i.key for i in outcome.items]
        if keys != expect["keys"]:
            problems.append(f"expected items {expect['keys']}, got {keys}")
    if "reason_contains" in expect:
        text = " | ".join(r.text for r in outcome.reasons)
        if expect["reason_contains"] not in text:
            problems.append(f"expected a reason containing {expect['reason_contains']!r}, got {text!r}")
    if outcome.error and expect["eligible"]:
        problems.append(f"runtime error: {outcome.error}")
    return ExampleResult(rule.id, example.name, example.line, not problems, tuple(problems), outcome)


def run_examples(rule: CompiledRule) -> list[ExampleResult]:
    return [check_example(rule, ex) for ex in rule.examples]
