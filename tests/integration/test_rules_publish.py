"""`nudge rules publish` and `diff` against the real broker, on a private compacted topic (the shared
``rules`` topic is left alone so running workers never see test rules)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.cli import main
from streams.rules_cli import read_published
from streams.settings import Settings

RULE = """\
id: it_rule
version: {version}
title: Integration rule
kind: insight
trigger: nightly
when: balance_available < £{limit}
score: 0.5
message: "Balance £{{balance_available}}"
"""


@pytest.fixture
def topic(stack: Settings) -> Iterator[str]:
    from confluent_kafka.admin import AdminClient, NewTopic

    name = f"rules-it-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": stack.bootstrap_servers})
    admin.create_topics([NewTopic(name, 1, 1, config={"cleanup.policy": "compact"})])[name].result(30)
    try:
        yield name
    finally:
        admin.delete_topics([name])[name].result(30)


def test_publish_then_diff_then_withdraw(stack: Settings, topic: str, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "it_rule.yaml"
    path.write_text(RULE.format(version=1, limit=200))
    assert main(["rules", "diff", str(tmp_path), "--topic", topic]) == 1  # not published yet
    assert "+ it_rule v1 (new)" in capsys.readouterr().out

    assert main(["rules", "publish", str(tmp_path), "--topic", topic, "--author", "it"]) == 0
    assert main(["rules", "diff", str(tmp_path), "--topic", topic]) == 0
    published = read_published(stack, topic_name=topic)
    assert published["it_rule"].version == 1 and published["it_rule"].source == path.read_text()
    assert published["it_rule"].author == "it" and not published["it_rule"].deleted

    path.write_text(RULE.format(version=1, limit=300))  # changed without a new version: refused
    assert main(["rules", "publish", str(tmp_path), "--topic", topic]) == 1
    assert "raise version" in capsys.readouterr().out
    path.write_text(RULE.format(version=2, limit=300))
    assert main(["rules", "publish", str(tmp_path), "--topic", topic]) == 0
    assert read_published(stack, topic_name=topic)["it_rule"].version == 2

    assert main(["rules", "publish", str(tmp_path), "--topic", topic, "--delete", "it_rule"]) == 1  # still there
    path.unlink()
    assert main(["rules", "diff", str(tmp_path), "--topic", topic]) == 1
    assert "- it_rule v2 (published, not in the catalogue)" in capsys.readouterr().out
    assert main(["rules", "publish", str(tmp_path), "--topic", topic, "--delete", "it_rule"]) == 0
    assert read_published(stack, topic_name=topic)["it_rule"].deleted
