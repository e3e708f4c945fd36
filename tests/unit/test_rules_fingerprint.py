"""Score books store fingerprints: the faster fingerprint must give exactly the digest stored before."""

from __future__ import annotations

import hashlib
import json
import math
import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from core.rules import ItemResult, RuleOutcome
from core.scoring import _fingerprint, _fingerprint_text, _json_rounded, _rounded


def _previous(outcome: Any) -> str:
    """The fingerprint as the previous code computed it (json.dumps of the same list)."""
    items = [(str(i.key), _rounded(i.score), i.message or "") for i in outcome.items]
    raw = json.dumps([outcome.rule_version, _rounded(outcome.score), outcome.message or "", items])
    return hashlib.blake2b(raw.encode(), digest_size=8).hexdigest()


def _outcome(version: Any, score: Any, message: Any, items: list[tuple[Any, Any, Any]]) -> RuleOutcome:
    return RuleOutcome("r", version, True, score, tuple(ItemResult(*i) for i in items), message, (), None)


_TEXT = st.text() | st.sampled_from(["", "£12.50 \"quoted\" \\ back", "\x00\x1f\u2028 tab\t", "\ud800 lone", "😀"])
_SCORE = st.none() | st.floats(allow_nan=True, allow_infinity=True) | st.integers(-10**20, 10**20) | \
    st.sampled_from([0.0, -0.0, 1.0, 1e-7, -1e-7, 0.1 + 0.2, 1e16, 5e-324, 1e-4, 0.0001, 9.99999e-5, 9.999996e-5,
                     0.00009999951, 5e-7, 4.9999999e-7, 0.0000015, 0.1234565, 0.1234575, 2.675, 999999999.9999995,
                     999999999.999999, 1e9, -1e9, 123456.1234565, 0.5, 1e-5, -0.00012345649, 1 - 1e-12]) | \
    st.floats(-1e10, 1e10) | st.floats(-1e-3, 1e-3) | st.floats(0, 1)


@settings(max_examples=1500, deadline=None)
@given(st.integers(-3, 10**6) | st.booleans(), _SCORE, _TEXT | st.none(),
       st.lists(st.tuples(_TEXT | st.integers(), _SCORE, _TEXT | st.none()), max_size=4))
def test_fingerprint_is_the_previous_digest(version: Any, score: Any, message: Any,
                                            items: list[tuple[Any, Any, Any]]) -> None:
    outcome = _outcome(version, score, message, items)
    assert _fingerprint(outcome) == _previous(outcome)


def test_rounded_score_text_is_json_dumps_of_the_rounded_score() -> None:
    rng = random.Random(9)
    values = [rng.random() for _ in range(20000)] + [rng.uniform(-1e9, 1e9) for _ in range(5000)] + \
        [10 ** rng.uniform(-8, 10) * rng.choice([1, -1]) for _ in range(20000)] + \
        [round(rng.random(), 7) for _ in range(5000)] + [k / 2e6 for k in range(-3000, 3000)]
    for value in values:
        assert _json_rounded(value) == json.dumps(_rounded(value)), value


def test_fingerprint_text_is_json_dumps_text_for_realistic_outcomes() -> None:
    rng = random.Random(3)
    for _ in range(2000):
        items = [(f"merchant {i} £", rng.random(), f"Your £{rng.uniform(0, 5000):,.2f} bill") for i in range(rng.randint(0, 5))]
        outcome = _outcome(rng.randint(1, 9), rng.choice([rng.random(), 1.0, 0.0, None]), "msg £", items)
        expected = json.dumps([outcome.rule_version, _rounded(outcome.score), "msg £",
                               [(k, _rounded(s), m) for k, s, m in items]])
        assert _fingerprint_text(outcome) == expected


def test_a_stored_fingerprint_still_matches() -> None:
    """Digest written by the code before this change (commit 132ba22) for this outcome."""
    outcome = _outcome(2, 0.731234567, "Your £1,234.50 bill", [("netflix", 0.5, "£10.99"), ("bt", math.pi / 4, "")])
    assert _fingerprint(outcome) == _previous(outcome) == STORED


STORED = "097b721626d9dfc9"


def _previous_alerts(book: Any, rule: Any, outcome: Any, now_ts: float, alerts_enabled: bool) -> list[str]:
    """The alert tracking as the previous code did it (firing keys, cooldown), returning the keys alerted."""
    if outcome.eligible and outcome.score is not None:
        firing_now = {str(i.key): i for i in outcome.items} if outcome.items else {"": outcome}
    else:
        firing_now = {}
    prefix = f"{rule.id}/"
    previous = {k for k in book.firing if k.startswith(prefix)}
    current = {prefix + k for k in firing_now}
    book.firing -= previous - current
    out = []
    cooldown = rule.cooldown.total_seconds() if rule.cooldown else 0.0
    for item_key in firing_now:
        fire_key = prefix + item_key
        if fire_key in previous:
            continue
        book.firing.add(fire_key)
        last = book.last_alert.get(fire_key)
        if not alerts_enabled or (last is not None and now_ts - last < cooldown):
            continue
        book.last_alert[fire_key] = now_ts
        out.append(item_key)
    return out


def test_alert_tracking_is_what_it_was() -> None:
    from datetime import UTC, datetime, timedelta

    from core.scoring import Origin, ScoreBook, _alerts_for

    class Rule:
        version, title, kind = 1, "T", "alert"

        def __init__(self, rule_id: str, cooldown: timedelta | None) -> None:
            self.id, self.cooldown = rule_id, cooldown

    rng = random.Random(5)
    rules = [Rule("a", timedelta(hours=2)), Rule("ab", None), Rule("b", timedelta(0))]
    new, old = ScoreBook(), ScoreBook()
    for step in range(3000):
        rule = rng.choice(rules)
        keys = rng.sample(["x", "y", "z", "a/b"], rng.randint(0, 3))
        eligible = rng.random() < 0.6
        items = [(k, rng.random(), f"m {k}") for k in keys] if rng.random() < 0.7 else []
        outcome = _outcome(1, 0.5 if eligible else None, "msg", items)._replace(eligible=eligible)
        now = datetime(2026, 3, 15, tzinfo=UTC) + timedelta(minutes=17 * step)
        enabled = rng.random() < 0.8
        got = _alerts_for(new, rule, outcome, "c", now, now.timestamp(), Origin("sweep", "s"), enabled)  # type: ignore[arg-type]
        want = _previous_alerts(old, rule, outcome, now.timestamp(), enabled)
        assert [a.item_key for a in got] == want and new == old, step
