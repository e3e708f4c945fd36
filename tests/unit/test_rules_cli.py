"""`nudge rules ...` without a broker: validate, test, explain, the publish plan, publish's refusals and
records (with a fake producer), and a small backtest report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import streams.rules_cli as rules_cli
from core.rules import compile_rule
from schemas.codec import default_codec
from streams.cli import main

CATALOGUE = Path(__file__).resolve().parents[2] / "rules"

RULE = """\
id: cli_rule
version: {version}
title: CLI rule
kind: insight
trigger: nightly
when: balance_available < £{limit}
score: 0.5
message: "Balance £{{balance_available}}"
examples:
  - name: low
    features: {{balance_available: 10.0}}
    expect: {{eligible: {expected}}}
"""


def write_rule(directory: Path, version: int = 1, limit: int = 200, expected: str = "true") -> Path:
    path = directory / "cli_rule.yaml"
    path.write_text(RULE.format(version=version, limit=limit, expected=expected))
    return path


def test_validate_catalogue_ok(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "validate", str(CATALOGUE)]) == 0
    assert "0 error(s)" in capsys.readouterr().out


def test_validate_reports_every_error_with_position(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a.yaml").write_text(RULE.format(version=1, limit=200, expected="true").replace(
        "balance_available <", "balance_availabel <").replace("id: cli_rule", "id: a_rule"))
    (tmp_path / "b.yaml").write_text("id: b_rule\nversion: [\n")
    assert main(["rules", "validate", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert f"{tmp_path / 'a.yaml'}:6:7: unknown feature 'balance_availabel'" in captured.err
    assert f"{tmp_path / 'b.yaml'}:3:1: YAML syntax error" in captured.err
    assert "2 error(s) in 2 file(s)" in captured.out
    assert main(["rules", "validate", "--json", str(tmp_path)]) == 1
    payload = json.loads(capsys.readouterr().out)
    assert {e["code"] for e in payload["errors"]} == {"unknown-feature", "yaml-syntax"}


def test_test_command_runs_examples(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_rule(tmp_path)
    assert main(["rules", "test", str(tmp_path)]) == 0
    write_rule(tmp_path, expected="false")
    assert main(["rules", "test", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "FAIL  cli_rule / low" in out and "expected eligible=False, got True" in out


def test_explain_prints_the_reasons(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    features = tmp_path / "f.yaml"
    features.write_text("balance_available: 500\n")
    assert main(["rules", "explain", str(write_rule(tmp_path)), str(features)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["eligible"] is False and out["reasons"][0]["features"] == {"balance_available": 500.0}


def compiled(version: int = 1, limit: int = 200) -> Any:
    return compile_rule(RULE.format(version=version, limit=limit, expected="true"), "cli_rule.yaml")


def test_plan_publish_compares_source_and_version() -> None:
    rule = compiled()
    pub = rules_cli.Published("cli_rule", 1, rule.source, False)
    assert [r.id for r in rules_cli.plan_publish([rule], {}).new] == ["cli_rule"]
    assert rules_cli.plan_publish([rule], {"cli_rule": pub}).unchanged == [rule]
    changed_same_version = compiled(limit=300)
    plan = rules_cli.plan_publish([changed_same_version], {"cli_rule": pub})
    assert plan.refused and "raise version" in plan.refused[0] and not plan.to_publish
    bumped = compiled(version=2, limit=300)
    assert rules_cli.plan_publish([bumped], {"cli_rule": pub}).changed == [bumped]
    other = rules_cli.Published("gone_rule", 3, "x", False)
    assert rules_cli.plan_publish([rule], {"gone_rule": other}).removed == [other]
    withdrawn = rules_cli.Published("cli_rule", 1, rule.source, True)
    assert rules_cli.plan_publish([rule], {"cli_rule": withdrawn}).refused  # must come back with a new version
    assert rules_cli.plan_publish([bumped], {"cli_rule": withdrawn}).new == [bumped]


class FakeProducer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes]] = []

    def produce(self, topic: str, key: bytes, value: bytes, on_delivery: Any) -> None:
        self.sent.append((topic, key, value))
        on_delivery(None, None)

    def flush(self, timeout: float) -> int:
        return 0


def test_publish_refuses_invalid_rules_before_touching_kafka(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    def no_kafka(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("must not read the topic")

    monkeypatch.setattr(rules_cli, "read_published", no_kafka)
    (tmp_path / "cli_rule.yaml").write_text(RULE.format(version=1, limit=200, expected="true").replace(
        "score: 0.5", "score: 1.5"))
    assert main(["rules", "publish", str(tmp_path)]) == 1
    assert "refusing to publish" in capsys.readouterr().err
    write_rule(tmp_path, expected="false")  # valid but its own example fails
    assert main(["rules", "publish", str(tmp_path)]) == 1
    assert "example failed: cli_rule / low" in capsys.readouterr().err


def test_publish_sends_versioned_rule_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    producer = FakeProducer()
    monkeypatch.setattr("streams.producer.make_producer", lambda settings, **kw: producer)
    published = {"old_rule": rules_cli.Published("old_rule", 4, "id: old_rule", False)}
    monkeypatch.setattr(rules_cli, "read_published", lambda settings, topic_name="rules": published)
    path = write_rule(tmp_path)
    assert main(["rules", "publish", str(tmp_path), "--author", "ana", "--dry-run"]) == 0
    assert producer.sent == []
    assert main(["rules", "publish", str(tmp_path), "--author", "ana", "--delete", "old_rule"]) == 0
    records = {key.decode(): default_codec().decode(value, expect="RuleChange") for _, key, value in producer.sent}
    assert {t for t, _, _ in producer.sent} == {"rules"}
    assert records["cli_rule"]["source"] == path.read_text() and records["cli_rule"]["version"] == 1
    assert records["cli_rule"]["author"] == "ana" and records["cli_rule"]["deleted"] is False
    assert records["old_rule"]["deleted"] is True and records["old_rule"]["version"] == 4
    assert main(["rules", "publish", str(tmp_path), "--delete", "never_published"]) == 1


def test_backtest_writes_an_html_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "report.html"
    rule = CATALOGUE / "low_balance.yaml"
    assert main(["rules", "backtest", str(rule), "--customers", "2", "--days", "60", "--out", str(out)]) == 0
    text = out.read_text()
    assert "<svg" in text and "histogram of scores" in text and "Backtest: Balance running low" in text
    assert "customers hit" in capsys.readouterr().out
