"""The numpy batch form of plain rules agrees with the scalar evaluator, row by row."""

from __future__ import annotations

import random
from datetime import date
from pathlib import Path

import pytest

from core.rules import load_catalogue
from core.rules.vector import NotVectorisable, compile_vector

np = pytest.importorskip("numpy")

from bench.bench_rules import _array_namespace, _columns, feature_vector  # noqa: E402

CATALOGUE = load_catalogue(Path(__file__).resolve().parents[2] / "rules")


def test_vector_masks_and_scores_match_the_scalar_path() -> None:
    rng = random.Random(3)
    vectors = [feature_vector(rng, date(2026, 3, 15)) for _ in range(300)]
    for i in range(0, 300, 7):  # customers without detected income, with unknown values
        vectors[i].update(income_next_date=None, days_to_next_income=None, income_amount=None)
    ns = _array_namespace()
    checked = 0
    for rule in CATALOGUE.values():
        try:
            vrule = compile_vector(rule, ns)
        except NotVectorisable:
            assert rule.for_each or rule.valid_from or "sum(" in rule.source or "count(" in rule.source
            continue
        cols = _columns(vectors, set(vrule.reads))
        with np.errstate(all="ignore"):
            mask, score = vrule.fn(cols)
        mask = np.broadcast_to(mask, (len(vectors),))
        score = np.broadcast_to(np.clip(score, 0, 1), (len(vectors),))
        for row, vec in enumerate(vectors):
            out = rule.evaluate(vec)
            assert bool(mask[row]) == out.eligible, (rule.id, row)
            if out.eligible:
                assert score[row] == pytest.approx(out.score), (rule.id, row)
        checked += 1
    assert checked >= 15


def test_for_each_rules_have_no_array_form() -> None:
    with pytest.raises(NotVectorisable):
        compile_vector(CATALOGUE["subscription_price_rise"], _array_namespace())
