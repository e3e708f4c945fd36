"""Turn rule outcomes into what goes downstream: changed scores, tombstones and alerts.

One customer's :class:`ScoreBook` remembers what was last emitted to ``scores`` for each rule (a
fingerprint, not the whole score) and which alert keys are firing, so that:

- only scores that changed are emitted (re-running anything emits nothing new: idempotent);
- a rule that no longer applies emits a tombstone, once;
- an alert goes out only when a (rule, item) newly fires and its cooldown has passed, so the same price
  rise never alerts twice, and a replay of the same transactions alerts nobody.

Used by the transactions agent, the sweep agent and on-demand scoring; pure (no Faust, no Kafka).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

from core.rules.batch import evaluate_all

__all__ = [
    "AlertOut",
    "alert_id",
    "Origin",
    "RuleLike",
    "ScoreBook",
    "ScoreUpdate",
    "rescore",
    "score_key",
    "score_value",
]

Trigger = Literal["realtime", "nightly"]
REASONS_KEPT = 10  # reason texts a score value keeps


class ItemLike(Protocol):
    key: str
    score: float | None
    message: str | None


class OutcomeLike(Protocol):
    rule_id: str
    rule_version: int
    eligible: bool
    score: float | None
    message: str | None
    items: list[Any]
    reasons: Any
    error: str | None


class RuleLike(Protocol):
    id: str
    version: int
    title: str
    kind: str
    cooldown: timedelta | None

    def evaluate(self, features: Mapping[str, object], explain: bool = False) -> Any: ...


@dataclass(frozen=True, slots=True)
class Origin:
    """What caused an evaluation: a transaction, or a sweep (nightly, manual or rule change)."""

    kind: Literal["transaction", "sweep"]
    id: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class ScoreUpdate:
    """One record for the compacted ``scores`` topic; ``value`` None is a tombstone."""

    key: str
    value: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class AlertOut:
    alert_id: str
    customer_id: str
    rule_id: str
    rule_version: int
    item_key: str
    title: str
    message: str
    score: float
    created_at: datetime
    origin: Origin


@dataclass
class ScoreBook:
    """What one customer has downstream: score fingerprints per rule, firing alert keys, last alert times."""

    scores: dict[str, str] = field(default_factory=dict)
    firing: set[str] = field(default_factory=set)
    last_alert: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"s": self.scores, "f": sorted(self.firing), "a": self.last_alert}

    def copy(self) -> ScoreBook:
        """A snapshot to compare with after scoring (the values are immutable: shallow copies suffice)."""
        return ScoreBook(dict(self.scores), set(self.firing), dict(self.last_alert))

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ScoreBook:
        return cls(
            scores=dict(data.get("s", {})), firing=set(data.get("f", [])), last_alert=dict(data.get("a", {}))
        )


def score_key(customer_id: str, rule_id: str) -> str:
    return f"{customer_id}#{rule_id}"


def _rounded(score: float | None) -> float | None:
    return None if score is None else round(float(score), 6)


def score_value(
    customer_id: str, outcome: OutcomeLike, evaluated_at: datetime, origin: Origin
) -> dict[str, Any]:
    """The JSON value written to ``scores`` (and by the sink, to DynamoDB)."""
    value: dict[str, Any] = {
        "customer_id": customer_id,
        "rule_id": outcome.rule_id,
        "rule_version": outcome.rule_version,
        "score": _rounded(outcome.score),
        "message": outcome.message or "",
        "reasons": _reasons_text(outcome.reasons),
        "evaluated_at": evaluated_at.isoformat(),
    }
    if outcome.items:
        value["items"] = [
            {"key": str(i.key), "score": _rounded(i.score), "message": i.message or ""} for i in outcome.items
        ]
    if origin.kind == "sweep":
        value["sweep_id"] = origin.id
    else:
        value["transaction_id"] = origin.id
    return value


def _reasons_text(reasons: Any) -> list[str]:
    """Reasons as short sentences (the evaluator's explain output, or plain strings)."""
    if not reasons:
        return []
    if isinstance(reasons, str):
        return [reasons]
    return [str(getattr(r, "text", r)) for r in reasons][:REASONS_KEPT]


def _fingerprint(outcome: OutcomeLike) -> str:
    """Identity of a score for change detection: excludes evaluation time and origin on purpose.

    The digest of ``json.dumps([version, score, message, [[key, score, message], ...]])`` (rounded scores):
    score books store it, so it must never change. The JSON text is assembled here from the same pieces
    json.dumps uses (its C string escaper, float and int reprs, its separators): the same text, without
    building an encoder per call; anything of another type goes through json.dumps itself.
    """
    return hashlib.blake2b(_fingerprint_text(outcome).encode(), digest_size=8).hexdigest()


def _fingerprint_text(outcome: OutcomeLike) -> str:
    version, message = outcome.rule_version, outcome.message or ""
    if type(version) is int and type(message) is str:
        texts = []
        for i in outcome.items:
            item_message = i.message or ""
            if type(item_message) is not str:
                break
            texts.append(f"[{_JSON_STR(str(i.key))}, {_json_rounded(i.score)}, {_JSON_STR(item_message)}]")
        else:
            return f"[{version!r}, {_json_rounded(outcome.score)}, {_JSON_STR(message)}, [{', '.join(texts)}]]"
    items = [(str(i.key), _rounded(i.score), i.message or "") for i in outcome.items]
    return json.dumps([version, _rounded(outcome.score), message, items])


def _json_rounded(score: float | None) -> str:
    """``json.dumps(_rounded(score))``: the repr of ``round(score, 6)``.

    Between 1e-4 and 1e9 (and at zero) that is the fixed-point text with 6 decimals, trailing zeros dropped:
    both round the exact binary value half-even to 6 decimals, and a decimal of at most 15 significant digits
    is the shortest text of the double nearest to it, which is what repr writes. One conversion instead of
    two; outside that range (where repr switches to exponents or the digits run out) the two-step way.
    """
    if score is None:
        return "null"
    value = float(score)
    if 1e-4 <= abs(value) < 1e9 or value == 0.0:
        text = f"{value:.6f}".rstrip("0")
        return text + "0" if text.endswith(".") else text
    return _json_number(round(value, 6))


_JSON_STR = json.encoder.encode_basestring_ascii  # what json.dumps escapes strings with (ensure_ascii)


def _json_number(value: float | None) -> str:
    """A rounded score as json.dumps writes it (``float.__repr__``; NaN and infinities by name)."""
    if value is None:
        return "null"
    if value != value:
        return "NaN"
    if value in (math.inf, -math.inf):
        return "Infinity" if value > 0 else "-Infinity"
    return float.__repr__(value)


def alert_id(customer_id: str, rule_id: str, item_key: str | None, trigger: str) -> str:
    """Deterministic alert id: the same customer, rule, item and trigger (``transaction:<id>``,
    ``sweep:<id>``) give the same id however many times the pipeline re-runs, so the app can drop
    duplicates."""
    raw = "\x1f".join((customer_id, rule_id, item_key or "", trigger)).encode()
    return hashlib.sha256(raw).hexdigest()[:32]


def rescore(
    book: ScoreBook,
    rules: Iterable[RuleLike],
    features: Mapping[str, object],
    *,
    customer_id: str,
    now: datetime,
    origin: Origin,
    alerts_enabled: bool,
) -> tuple[list[ScoreUpdate], list[AlertOut], int]:
    """Evaluate ``rules`` for one customer, update ``book`` and return (score updates, alerts, evaluations).

    A rule that is eligible with a score is emitted when its fingerprint changed; a rule that is no longer
    eligible is tombstoned if something was emitted for it before.
    """
    updates: list[ScoreUpdate] = []
    alerts: list[AlertOut] = []
    now_ts = now.timestamp()
    rules = list(rules)
    # all of them in one generated function (core/rules/batch.py): the same outcomes as rule.evaluate, each
    outcomes: list[Any] = evaluate_all(rules, features)
    evaluations = len(outcomes)
    for rule, outcome in zip(rules, outcomes, strict=True):
        if outcome.eligible and outcome.score is not None:
            fp = _fingerprint(outcome)
            if book.scores.get(rule.id) != fp:
                book.scores[rule.id] = fp
                # Changed scores are few next to evaluations: only they pay for the explanation, and only
                # for the reason texts a score keeps.
                texts = getattr(rule, "reason_texts", None)
                explained = (
                    outcome._replace(reasons=tuple(texts(features, outcome, REASONS_KEPT)))
                    if texts is not None
                    else rule.evaluate(features, explain=True)
                )
                updates.append(ScoreUpdate(score_key(customer_id, rule.id),
                                           score_value(customer_id, explained, now, origin)))
        elif rule.id in book.scores:
            del book.scores[rule.id]
            updates.append(ScoreUpdate(score_key(customer_id, rule.id), None))
        if rule.kind == "alert":
            alerts.extend(_alerts_for(book, rule, outcome, customer_id, now, now_ts, origin, alerts_enabled))
    return updates, alerts, evaluations


def _alerts_for(
    book: ScoreBook,
    rule: RuleLike,
    outcome: OutcomeLike,
    customer_id: str,
    now: datetime,
    now_ts: float,
    origin: Origin,
    alerts_enabled: bool,
) -> list[AlertOut]:
    """Track which (rule, item) keys fire; alert on the ones that newly fire, cooldown permitting."""
    if outcome.eligible and outcome.score is not None:
        firing_now = {str(i.key): i for i in outcome.items} if outcome.items else {"": outcome}
    elif not book.firing:
        return []  # nothing fires now and nothing fired before: nothing to track (the common case)
    else:
        firing_now = {}
    prefix = f"{rule.id}/"
    previous = {k for k in book.firing if k.startswith(prefix)} if book.firing else set()
    current = {prefix + k for k in firing_now}
    if previous:
        book.firing -= previous - current
    if current <= previous:
        return []  # nothing newly fires (what fires now was already firing, or nothing fires)
    out: list[AlertOut] = []
    cooldown = rule.cooldown.total_seconds() if rule.cooldown else 0.0
    for item_key, item in firing_now.items():
        fire_key = prefix + item_key
        if fire_key in previous:
            continue
        book.firing.add(fire_key)
        last = book.last_alert.get(fire_key)
        if not alerts_enabled or (last is not None and now_ts - last < cooldown):
            continue
        book.last_alert[fire_key] = now_ts
        out.append(
            AlertOut(
                alert_id=alert_id(customer_id, rule.id, item_key, f"{origin.kind}:{origin.id}"),
                customer_id=customer_id,
                rule_id=rule.id,
                rule_version=rule.version,
                item_key=item_key,
                title=rule.title,
                message=item.message or outcome.message or rule.title,
                score=float(item.score or 0.0),
                created_at=now,
                origin=origin,
            )
        )
    return out
