"""What evaluating a rule returns, and the compiled rule itself.

Outcomes are tuples (NamedTuple): the evaluator builds millions of them per second, and the not-eligible
ones are shared, precomputed instances, so they must be immutable.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, NamedTuple

__all__ = ["CompiledRule", "ItemResult", "Reason", "RuleOutcome", "Example"]


class ItemResult(NamedTuple):
    """One eligible item of a for_each rule (for example one recurring payment)."""

    key: str
    score: float
    message: str | None


@dataclass(frozen=True, slots=True)
class Reason:
    """Why a rule was or was not eligible; explain mode adds one per condition with the values it read."""

    text: str
    condition: str | None = None
    value: object = None
    passed: bool | None = None
    features: Mapping[str, object] = field(default_factory=dict)
    item: str | None = None

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"text": self.text}
        if self.condition is not None:
            out.update(condition=self.condition, value=_jsonable(self.value), passed=self.passed,
                       features={k: _jsonable(v) for k, v in self.features.items()})
        if self.item is not None:
            out["item"] = self.item
        return out


class RuleOutcome(NamedTuple):
    """The result of one rule for one feature vector; ``error`` is set only for unexpected runtime errors."""

    rule_id: str
    rule_version: int
    eligible: bool
    score: float | None
    items: tuple[ItemResult, ...]
    message: str | None
    reasons: tuple[Reason, ...]
    error: str | None

    def to_dict(self) -> dict[str, object]:
        return {
            "rule_id": self.rule_id,
            "rule_version": self.rule_version,
            "eligible": self.eligible,
            "score": self.score,
            "items": [i._asdict() for i in self.items],
            "message": self.message,
            "reasons": [r.to_dict() for r in self.reasons],
            "error": self.error,
        }


@dataclass(frozen=True, slots=True)
class Example:
    """A rule's own unit test: a feature set and what the rule must return for it."""

    name: str
    features: Mapping[str, object]
    expect: Mapping[str, Any]
    line: int


def _jsonable(value: object) -> object:
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


@dataclass(eq=False, slots=True)
class CompiledRule:
    """A validated rule with its generated evaluator; ``evaluate`` never raises."""

    id: str
    version: int
    title: str
    description: str
    owner: str
    kind: str
    trigger: str
    for_each: str | None
    reads: frozenset[str]
    cooldown: timedelta | None
    valid_from: date | None
    valid_until: date | None
    source: str
    filename: str
    examples: tuple[Example, ...]
    code: str  # the generated Python source (for debugging and `nudge rules show`)
    evaluate: Callable[..., RuleOutcome]
    """``evaluate(features, explain=False) -> RuleOutcome``: the generated function itself (one call frame on
    the hot path). It never raises: a runtime problem gives not-eligible plus a reason."""
    plan: Any = None
    """The rule's code fragments (a ``batch.RulePlan``) from which several rules are evaluated in one shared
    function (``core.rules.evaluate_all``); None for a rule built some other way (it is then evaluated alone)."""
    reason_texts: Callable[..., list[str]] | None = None
    """``reason_texts(features, outcome, limit)``: the first texts of ``evaluate(features, explain=True)``'s
    reasons, given this rule's outcome for ``features``; None for a rule built some other way."""

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.id, "version": self.version, "title": self.title, "kind": self.kind,
            "trigger": self.trigger, "for_each": self.for_each, "reads": sorted(self.reads),
            "cooldown_s": self.cooldown.total_seconds() if self.cooldown else None,
            "valid_from": _jsonable(self.valid_from), "valid_until": _jsonable(self.valid_until),
        }
