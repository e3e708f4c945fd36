"""Speed work must not change what rules say: outcomes against the frozen ``data/rules_golden.json.gz``.

The file (written by ``data/make_rules_golden.py``) carries its own copy of the catalogue's rule sources, so
editing a rule under ``rules/`` does not touch this test; it pins the evaluator: eligibility, scores (exact),
items, messages, reasons and errors, plain and with explain, over clean and damaged feature vectors.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from core.rules import compile_rule
from tests.unit.data.make_rules_golden import EXPLAIN_EVERY, decode, outcome_text

GOLDEN = Path(__file__).resolve().parent / "data" / "rules_golden.json.gz"


@pytest.fixture(scope="module")
def golden() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(gzip.decompress(GOLDEN.read_bytes()))
    data["vectors"] = [decode(v) for v in data["vectors"]]
    return data


def test_golden_covers_the_catalogue_and_its_failure_modes(golden: dict[str, Any]) -> None:
    assert len(golden["sources"]) >= 30 and len(golden["vectors"]) >= 100
    plain = [json.loads(t) for texts in golden["outcomes"].values() for t in texts]
    assert any(o["eligible"] for o in plain) and any(o["items"] for o in plain)
    assert any(o["error"] for o in plain), "no unexpected runtime error is pinned"
    reasons = {r["text"].split(" ")[0] for o in plain for r in o["reasons"]}
    assert {"missing", "feature", "condition", "no"} <= reasons, reasons


def test_outcomes_are_identical_to_the_golden_file(golden: dict[str, Any]) -> None:
    vectors = golden["vectors"]
    differences: list[str] = []
    for rule_id, source in sorted(golden["sources"].items()):
        rule = compile_rule(source, f"{rule_id}.yaml")
        want = golden["outcomes"][rule_id]
        got = [outcome_text(rule.evaluate(v)) for v in vectors]
        got += [outcome_text(rule.evaluate(v, explain=True)) for v in vectors[::EXPLAIN_EVERY]]
        differences += [f"{rule_id} #{i}: {g} != {w}" for i, (g, w) in enumerate(zip(got, want, strict=True))
                        if g != w]
        examples = [ex.features for ex in rule.examples]
        got_ex = [[outcome_text(rule.evaluate(f)), outcome_text(rule.evaluate(f, explain=True))] for f in examples]
        if got_ex != golden["example_outcomes"][rule_id]:
            differences.append(f"{rule_id}: example outcomes differ")
    assert not differences, f"{len(differences)} outcomes differ, first: {differences[:3]}"


def test_reason_texts_are_the_first_texts_of_the_full_explanation(golden: dict[str, Any]) -> None:
    """A changed score keeps only its first reason texts (core.scoring.rescore asks ``reason_texts`` for
    them): they must be exactly those of ``evaluate(explain=True)``, over clean and damaged vectors."""
    differences: list[str] = []
    checked = 0
    for rule_id, source in sorted(golden["sources"].items()):
        rule = compile_rule(source, f"{rule_id}.yaml")
        assert rule.reason_texts is not None
        for i, features in enumerate([*golden["vectors"], *(ex.features for ex in rule.examples)]):
            full = [r.text for r in rule.evaluate(features, explain=True).reasons]
            for limit in (1, 3, 10, 1000):
                got = rule.reason_texts(features, rule.evaluate(features), limit)
                checked += 1
                if got != full[:limit]:
                    differences.append(f"{rule_id} #{i} limit {limit}: {got} != {full[:limit]}")
    assert checked > 10_000 and not differences, f"{len(differences)} differ, first: {differences[:3]}"
