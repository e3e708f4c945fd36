"""Every validation error kind of the rule language: its code, plain-English message, line and column."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.rules import RuleValidationError, ValidationIssue, compile_rule
from core.rules.catalogue import compile_files

# Layout: `when:` is on line 6 and its expression starts at column 7; `score:` line 7 column 8;
# `message:` line 8 column 10.
BASE = """\
id: test_rule
version: 1
title: Test rule
kind: insight
trigger: nightly
when: {when}
score: {score}
message: {message}
{extra}"""


def rule_text(when: str = "balance_available < £200", score: str = "0.5",
              message: str = '"Balance £{balance_available}"', extra: str = "") -> str:
    return BASE.format(when=when, score=score, message=message, extra=extra)


def errors_of(text: str) -> list[ValidationIssue]:
    with pytest.raises(RuleValidationError) as info:
        compile_rule(text, "t.yaml")
    return info.value.errors


def only_error(text: str) -> ValidationIssue:
    errs = errors_of(text)
    assert len(errs) == 1, errs
    return errs[0]


def test_valid_rule_compiles() -> None:
    rule = compile_rule(rule_text(), "t.yaml")
    assert rule.id == "test_rule" and rule.reads == frozenset({"balance_available"})


def test_yaml_syntax_error_position() -> None:
    e = only_error("id: x\nversion: [1\n")
    assert e.code == "yaml-syntax" and e.line == 3 and "YAML syntax error" in e.message


def test_missing_and_unknown_fields() -> None:
    errs = errors_of(rule_text(extra="scroe: 1\n").replace("title: Test rule\n", ""))
    codes = {(e.code, e.line) for e in errs}
    assert ("missing-field", 1) in codes
    unknown = next(e for e in errs if e.code == "unknown-field")
    assert unknown.line == 8 and unknown.column == 1 and "did you mean 'score'?" in unknown.message


def test_duplicate_key() -> None:
    e = only_error(rule_text(extra="kind: alert\n"))
    assert e.code == "duplicate-key" and e.line == 9 and "'kind' is given twice" in e.message


@pytest.mark.parametrize(
    ("find", "replace", "line", "fragment"),
    [
        ("kind: insight", "kind: push", 4, "kind must be 'alert'"),
        ("trigger: nightly", "trigger: hourly", 5, "trigger must be 'realtime', 'nightly' or 'both'"),
        ("version: 1", "version: one", 2, "version must be a whole number"),
        ("id: test_rule", "id: Bad Id", 1, "id must be"),
    ],
)
def test_bad_values(find: str, replace: str, line: int, fragment: str) -> None:
    e = only_error(rule_text().replace(find, replace))
    assert e.code == "bad-value" and e.line == line and e.column > 1 and fragment in e.message


def test_cooldown_only_for_alerts_and_valid_dates() -> None:
    errs = errors_of(rule_text(extra="cooldown: 3d\nvalid_from: 2026-05-01\nvalid_until: 2026-04-01\n"))
    messages = {e.line: e.message for e in errs}
    assert "cooldown only applies to alerts" in messages[9]
    assert "valid_until 2026-04-01 is before valid_from 2026-05-01" in messages[11]
    e = only_error(rule_text(extra="cooldown: soon\n").replace("kind: insight", "kind: alert"))
    assert "cooldown must be a duration" in e.message


def test_syntax_error_position() -> None:
    e = only_error(rule_text(when="balance_available < < 3"))
    assert e.code == "syntax" and e.line == 6 and e.column == 7 + 20


def test_unknown_feature_did_you_mean() -> None:
    e = only_error(rule_text(when="balance_avialable < £200"))
    assert e.code == "unknown-feature" and (e.line, e.column) == (6, 7)
    assert e.message == "unknown feature 'balance_avialable'; did you mean 'balance_available'?"


def test_unknown_feature_in_a_later_position() -> None:
    e = only_error(rule_text(when="balance_available < £200 and spend_3od > 0"))
    assert (e.line, e.column) == (6, 7 + 29) and "did you mean 'spend_30d'?" in e.message


def test_unknown_item_field() -> None:
    e = only_error(rule_text(when="item.last_amont > 0", message='"x {merchant}"', extra="for_each: recurring\n"))
    assert e.code == "unknown-feature" and (e.line, e.column) == (6, 7)
    assert "'recurring' items have no field 'last_amont'; did you mean 'last_amount'?" in e.message


def test_money_compared_to_count() -> None:
    e = only_error(rule_text(when="balance_available > overdraft_days_30d"))
    assert e.code == "type-mismatch" and (e.line, e.column) == (6, 7)
    assert e.message == ("cannot compare money (`balance_available`) with count (`overdraft_days_30d`)")


def test_string_compared_to_number() -> None:
    e = only_error(rule_text(when="income_cadence > 3"))
    assert e.code == "type-mismatch" and "cannot compare string (`income_cadence`) with number (`3`)" in e.message


def test_money_plus_count_and_date_arithmetic() -> None:
    e = only_error(rule_text(when="balance_available + income_sources_count > 0"))
    assert e.code == "type-mismatch" and "mixed types: money" in e.message
    e = only_error(rule_text(when="today * 2 > today"))
    assert e.code == "type-mismatch" and "dates support date - date" in e.message


def test_condition_must_be_boolean() -> None:
    e = only_error(rule_text(when="balance_available"))
    assert e.code == "type-mismatch" and "must be true/false" in e.message and e.line == 6


def test_score_type_and_range() -> None:
    e = only_error(rule_text(score="balance_available"))
    assert e.code == "type-mismatch" and (e.line, e.column) == (7, 8) and "score must be a number" in e.message
    e = only_error(rule_text(score="1.5"))
    assert e.code == "score-range" and "always outside 0..1" in e.message and e.line == 7
    e = only_error(rule_text(score="clamp(spend_30d / £100, 0, 2)"))
    assert e.code == "score-range" and "can reach 2" in e.message
    e = only_error(rule_text(score="0.5 - 0.7"))
    assert e.code == "score-range"
    compile_rule(rule_text(score="clamp(spend_30d / £100, 0, 1)"), "t.yaml")


def test_division_by_possibly_zero() -> None:
    e = only_error(rule_text(when="spend_30d / spend_prev_30d > 1.2"))
    assert e.code == "division-by-zero" and (e.line, e.column) == (6, 7 + 12)
    assert "division by `spend_prev_30d`, which can be zero" in e.message


@pytest.mark.parametrize(
    "when",
    [
        "spend_prev_30d > 0 and spend_30d / spend_prev_30d > 1.2",
        "spend_30d / max(spend_prev_30d, £1) > 1.2",
        "(spend_30d / spend_prev_30d if spend_prev_30d != 0 else 0) > 1.2",
        "spend_30d / 3 > £10",
    ],
)
def test_guarded_division_is_accepted(when: str) -> None:
    compile_rule(rule_text(when=when), "t.yaml")


def test_division_guarded_by_an_earlier_when_condition() -> None:
    text = rule_text(when="\n  - spend_prev_30d >= £50\n  - spend_30d / spend_prev_30d > 1.2")
    compile_rule(text, "t.yaml")
    e = only_error(rule_text(when="\n  - spend_30d / spend_prev_30d > 1.2\n  - spend_prev_30d >= £50"))
    assert e.code == "division-by-zero" and (e.line, e.column) == (7, 17)


def test_pct_change_needs_a_guard() -> None:
    e = only_error(rule_text(when="pct_change(spend_prev_30d, spend_30d) > 0.2"))
    assert e.code == "division-by-zero" and "pct_change() divides by `spend_prev_30d`" in e.message


def test_unused_and_unknown_placeholders() -> None:
    errs = errors_of(rule_text(message='"Hello {balance_availabel}"', extra="values:\n  spare: spend_30d\n"))
    by_code = {e.code: e for e in errs}
    unknown = by_code["unknown-placeholder"]
    assert (unknown.line, unknown.column) == (8, 10 + 1 + 6)
    assert "did you mean 'balance_available'?" in unknown.message
    unused = by_code["unused-placeholder"]
    assert (unused.line, unused.column) == (10, 3)
    assert unused.message == "value 'spare' is never used in the message: remove it or add {spare}"


def test_for_each_over_a_non_collection() -> None:
    e = only_error(rule_text(extra="for_each: balance_available\n"))
    assert e.code == "not-a-collection" and (e.line, e.column) == (9, 11)
    assert e.message == "for_each needs a collection, but 'balance_available' is money"


def test_aggregate_over_a_non_collection() -> None:
    e = only_error(rule_text(when="count(balance_available, it > 0) > 1"))
    assert e.code == "not-a-collection" and (e.line, e.column) == (6, 13)


@pytest.mark.parametrize(
    ("when", "fragment"),
    [
        ("'(lambda: 1)() > 0'", "lambda functions not allowed"),
        ("balance_available.real > 0", "attribute access is only allowed on `item`"),
        ("'[x for x in recurring] == 0'", "comprehensions (loops) not allowed"),
        ("income_cadence[0] == 'm'", "indexing not allowed"),
        ("2 ** 10 > balance_available", "powers (**) not allowed"),
        ("income_next_date is None", "`is` not allowed; use == or known(name)"),
        ("income_next_date == None", "None is not allowed; test a value with known(name)"),
        ("f'{income_cadence}' == 'x'", "f-strings not allowed"),
    ],
)
def test_forbidden_syntax(when: str, fragment: str) -> None:
    errs = errors_of(rule_text(when=when))
    assert errs[0].code == "forbidden-syntax" and fragment in errs[0].message and errs[0].line == 6


def test_unknown_function_and_bad_arguments() -> None:
    e = only_error(rule_text(when="__import__('os') == 1"))
    assert e.code == "unknown-function" and "unknown function '__import__'" in e.message
    e = only_error(rule_text(when="mx(spend_30d, £1) > £2"))
    assert "did you mean 'max'?" in e.message
    e = only_error(rule_text(when="clamp(spend_30d, £1) > £2"))
    assert e.code == "bad-arguments" and e.message == "clamp() takes 3 arguments, got 2"


def test_too_complex_expressions_are_refused_quickly() -> None:
    e = only_error(rule_text(when=" + ".join(["spend_30d"] * 400) + " > £1"))
    assert e.code == "too-complex"
    e = only_error(rule_text(when="abs(" * 40 + "spend_30d" + ")" * 40 + " > £1"))
    assert e.code == "too-complex" and "nested too deeply" in e.message
    e = only_error(rule_text(when="(" * 300 + "spend_30d" + ")" * 300 + " > £1"))
    assert e.code == "syntax"


def test_bad_examples() -> None:
    extra = ("examples:\n  - name: typo\n    features: {balance_availble: 3}\n    expect: {eligible: maybe}\n")
    errs = errors_of(rule_text(extra=extra))
    codes = sorted(e.code for e in errs)
    assert codes == ["bad-example", "unknown-feature"]
    assert all(e.line in (11, 12) for e in errs)


def test_every_error_of_a_file_in_one_go() -> None:
    errs = errors_of(rule_text(when="balance_avialable < 3", score="2", message='"{nope}"'))
    assert {e.code for e in errs} == {"unknown-feature", "score-range", "unknown-placeholder"}


def test_block_scalar_positions() -> None:
    text = rule_text(when="|\n  balance_available < £200\n    and spend_3d > £1")
    e = only_error(text)
    assert (e.line, e.column) == (8, 9) and e.message.startswith("unknown feature 'spend_3d'")


def test_catalogue_collects_every_file_and_duplicate_ids(tmp_path: Path) -> None:
    (tmp_path / "test_rule.yaml").write_text(rule_text())
    (tmp_path / "test_rule.yml").write_text(rule_text())
    (tmp_path / "other.yaml").write_text(rule_text())
    (tmp_path / "broken.yaml").write_text(rule_text(when="nope > 1"))
    rules, issues = compile_files([tmp_path])
    assert [r.id for r in rules] == ["test_rule"]
    codes = sorted((Path(i.file).name, i.code) for i in issues)
    assert codes == [("broken.yaml", "unknown-feature"), ("other.yaml", "file-name"),
                     ("test_rule.yml", "duplicate-id")]
