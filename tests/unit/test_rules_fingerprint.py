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
from core.scoring import _fingerprint, _fingerprint_text, _rounded


def _previous(outcome: Any) -> str:
    """The fingerprint as the previous code computed it (json.dumps of the same list)."""
    items = [(str(i.key), _rounded(i.score), i.message or "") for i in outcome.items]
    raw = json.dumps([outcome.rule_version, _rounded(outcome.score), outcome.message or "", items])
    return hashlib.blake2b(raw.encode(), digest_size=8).hexdigest()


def _outcome(version: Any, score: Any, message: Any, items: list[tuple[Any, Any, Any]]) -> RuleOutcome:
    return RuleOutcome("r", version, True, score, tuple(ItemResult(*i) for i in items), message, (), None)


_TEXT = st.text() | st.sampled_from(["", "£12.50 \"quoted\" \\ back", "\x00\x1f\u2028 tab\t", "\ud800 lone", "😀"])
_SCORE = st.none() | st.floats(allow_nan=True, allow_infinity=True) | st.integers(-10**20, 10**20) | \
    st.sampled_from([0.0, -0.0, 1.0, 1e-7, 0.1 + 0.2, 1e16, 5e-324])


@settings(max_examples=400, deadline=None)
@given(st.integers(-3, 10**6) | st.booleans(), _SCORE, _TEXT | st.none(),
       st.lists(st.tuples(_TEXT | st.integers(), _SCORE, _TEXT | st.none()), max_size=4))
def test_fingerprint_is_the_previous_digest(version: Any, score: Any, message: Any,
                                            items: list[tuple[Any, Any, Any]]) -> None:
    outcome = _outcome(version, score, message, items)
    assert _fingerprint(outcome) == _previous(outcome)


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
