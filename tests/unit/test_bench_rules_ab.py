"""bench_rules_ab's parts that are not timing: the other commit's core/rules as a package of its own, and the
comparison of outcomes across the two packages."""

from __future__ import annotations

import random
import subprocess
from datetime import date
from pathlib import Path

import pytest

import core.rules as work
from bench.bench_rules import RULES_DIR, feature_vector
from bench.bench_rules_ab import REPO, _outcome_key, rules_package_at


def _has_history() -> bool:
    return subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True).returncode == 0


@pytest.mark.skipif(not _has_history(), reason="needs the git repository")
def test_rules_at_a_commit_load_as_their_own_package_and_outcomes_compare_across_packages(tmp_path: Path) -> None:
    other = rules_package_at("HEAD", tmp_path)
    assert other.__name__.startswith("rules_at_") and other.__file__ is not None
    assert Path(other.__file__).parent == tmp_path / other.__name__  # not the work tree's core/rules
    theirs = list(other.load_catalogue(RULES_DIR).values())
    ours = list(work.load_catalogue(RULES_DIR).values())
    assert type(theirs[0]) is not type(ours[0])  # classes of another module: outcomes only compare as values
    rng = random.Random(3)
    for _ in range(20):
        vector = feature_vector(rng, date(2026, 3, 15))
        a, b = other.evaluate_all(theirs, vector), work.evaluate_all(ours, vector)
        assert [_outcome_key(x) for x in a] == [_outcome_key(y) for y in b]
    outcome = ours[0].evaluate({})  # not eligible, with a reason
    assert _outcome_key(outcome) == _outcome_key(theirs[0].evaluate({}))
    for changed in (outcome._replace(message="x"), outcome._replace(error="boom"), outcome._replace(score=0.5),
                    outcome._replace(reasons=())):
        assert _outcome_key(changed) != _outcome_key(outcome)
