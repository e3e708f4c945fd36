"""``nudge rules validate|test|explain|diff|publish|backtest``: the rule author's tools.

validate and test need only ``core``; diff and publish read/write the compacted ``rules`` topic with
confluent-kafka (imported inside the handlers); backtest runs the simulator and writes an HTML report.
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.rules import CompiledRule
from core.rules.catalogue import compile_files
from core.rules.errors import ValidationIssue
from streams.kafka_config import confluent_security
from streams.settings import PROJECT_ROOT, Settings, load_settings

__all__ = ["register", "PublishPlan", "Published", "plan_publish", "read_published"]

DEFAULT_DIR = PROJECT_ROOT / "rules"
RULES_TOPIC = "rules"


def register(subparsers: Any) -> None:
    rules = subparsers.add_parser("rules", help="validate, test, diff, publish and backtest rules")
    sub = rules.add_subparsers(dest="rules_command", required=True, metavar="ACTION")

    p = sub.add_parser("validate", help="check rule files; every error in one run, non-zero exit on any")
    p.add_argument("paths", nargs="*", help=f"files or directories (default {DEFAULT_DIR})")
    p.add_argument("--json", action="store_true", help="print the errors as JSON")
    p.set_defaults(handler=cmd_validate)

    p = sub.add_parser("test", help="run each rule's own examples")
    p.add_argument("paths", nargs="*")
    p.add_argument("-v", "--verbose", action="store_true", help="show every example, not only failures")
    p.set_defaults(handler=cmd_test)

    p = sub.add_parser("explain", help="evaluate a rule on a feature set (JSON or YAML file) and say why")
    p.add_argument("path")
    p.add_argument("features", help="file with a mapping of feature name to value")
    p.set_defaults(handler=cmd_explain)

    p = sub.add_parser("diff", help="compare the catalogue with what the rules topic holds")
    p.add_argument("paths", nargs="*")
    p.add_argument("--topic", default=RULES_TOPIC, help=argparse.SUPPRESS)
    p.set_defaults(handler=cmd_diff)

    p = sub.add_parser("publish", help="publish new and changed rules to the rules topic (refuses invalid rules)")
    p.add_argument("paths", nargs="*")
    p.add_argument("--author", default="nudge-cli", help="who is publishing (recorded with each version)")
    p.add_argument("--dry-run", action="store_true", help="show what would be published, publish nothing")
    p.add_argument("--delete", action="append", default=[], metavar="RULE_ID", help="withdraw a published rule")
    p.add_argument("--prune", action="store_true", help="withdraw published rules that are not in the catalogue")
    p.add_argument("--topic", default=RULES_TOPIC, help=argparse.SUPPRESS)
    p.set_defaults(handler=cmd_publish)

    p = sub.add_parser("backtest", help="run a rule over simulated customers; write an HTML report")
    p.add_argument("path")
    p.add_argument("--customers", type=int, default=500)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--days", type=int, default=180, help="days of simulated history per customer")
    p.add_argument("--out", type=Path, default=None, help="report path (default .cache/backtest/RULE.html)")
    p.add_argument("--png", action="store_true", help="also render the report to PNG with headless chromium")
    p.set_defaults(handler=cmd_backtest)


# ---------------------------------------------------------------------- validate / test / explain
def _paths(args: argparse.Namespace) -> list[str]:
    return list(args.paths) or [str(DEFAULT_DIR)]


def _print_issues(issues: Iterable[ValidationIssue]) -> int:
    count = 0
    for issue in issues:
        print(str(issue), file=sys.stderr)
        count += 1
    return count


def cmd_validate(args: argparse.Namespace) -> int:
    rules, issues = compile_files(_paths(args))
    if args.json:
        print(json.dumps({"rules": [r.id for r in rules], "errors": [i.to_dict() for i in issues]}, indent=2))
    else:
        _print_issues(issues)
        files = len({i.file for i in issues})
        print(f"{len(rules)} rule(s) valid, {len(issues)} error(s) in {files} file(s)")
    return 1 if issues else 0


def cmd_test(args: argparse.Namespace) -> int:
    from core.rules.examples import run_examples

    rules, issues = compile_files(_paths(args))
    _print_issues(issues)
    passed = failed = 0
    for rule in rules:
        if not rule.examples:
            print(f"WARN  {rule.id}: no examples ({rule.filename})")
        for result in run_examples(rule):
            if result.passed:
                passed += 1
                if args.verbose:
                    print(f"ok    {rule.id} / {result.example}")
            else:
                failed += 1
                print(f"FAIL  {rule.id} / {result.example} ({rule.filename}:{result.line})")
                for problem in result.problems:
                    print(f"        {problem}")
    print(f"{passed} example(s) passed, {failed} failed, {len(issues)} validation error(s)")
    return 1 if failed or issues else 0


def _load_features(path: Path, rule_reads: Iterable[str]) -> dict[str, object]:
    import yaml

    from core.features.registry import REGISTRY, FeatureType
    from core.rules.examples_schema import coerce_value

    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a mapping of feature name to value")
    out: dict[str, object] = {}
    for name, value in raw.items():
        spec = REGISTRY.get(name)
        if spec is None or spec.type == FeatureType.COLLECTION:
            out[name] = value
            continue
        ok, converted = coerce_value(spec.type, value)
        out[name] = converted if ok else value
    return out


def cmd_explain(args: argparse.Namespace) -> int:
    rules, issues = compile_files([args.path])
    if issues:
        _print_issues(issues)
        return 1
    rule = rules[0]
    outcome = rule.evaluate(_load_features(Path(args.features), rule.reads), explain=True)
    print(json.dumps(outcome.to_dict(), indent=2, default=str))
    return 0


# ---------------------------------------------------------------------- the rules topic
@dataclass(frozen=True, slots=True)
class Published:
    """The latest record of one rule on the compacted topic."""

    rule_id: str
    version: int
    source: str
    deleted: bool
    published_at: datetime | None = None
    author: str = ""


@dataclass
class PublishPlan:
    new: list[CompiledRule]
    changed: list[CompiledRule]
    unchanged: list[CompiledRule]
    removed: list[Published]  # published and live, absent from the catalogue
    refused: list[str]  # human-readable reasons

    @property
    def to_publish(self) -> list[CompiledRule]:
        return [*self.new, *self.changed]


def plan_publish(rules: Iterable[CompiledRule], published: Mapping[str, Published]) -> PublishPlan:
    """Compare the catalogue with the topic: a changed source must come with a higher version."""
    plan = PublishPlan([], [], [], [], [])
    ids = set()
    for rule in sorted(rules, key=lambda r: r.id):
        ids.add(rule.id)
        current = published.get(rule.id)
        if current is None or current.deleted:
            if current is not None and rule.version <= current.version:
                plan.refused.append(f"{rule.id}: version {rule.version} must be above the withdrawn "
                                    f"version {current.version}")
            else:
                plan.new.append(rule)
        elif current.source == rule.source:
            plan.unchanged.append(rule)
        elif rule.version <= current.version:
            plan.refused.append(f"{rule.id}: changed but version {rule.version} is not above the published "
                                f"version {current.version}; raise version")
        else:
            plan.changed.append(rule)
    plan.removed = [p for rid, p in sorted(published.items()) if rid not in ids and not p.deleted]
    return plan


def read_published(settings: Settings, timeout_s: float = 15.0, topic_name: str = RULES_TOPIC
                   ) -> dict[str, Published]:
    """Read the whole compacted ``rules`` topic up to its current end; the latest record per key wins."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

    from schemas.codec import default_codec

    consumer = Consumer({"bootstrap.servers": settings.bootstrap_servers, "group.id": f"nudge-rules-{uuid.uuid4()}",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest",
                         **confluent_security(settings)})
    try:
        meta = consumer.list_topics(topic_name, timeout=timeout_s)
        topic = meta.topics.get(topic_name)
        if topic is None or topic.error is not None:
            raise KafkaException(f"topic {topic_name!r} not found (is the stack up? `nudge stack up`)")
        ends: dict[int, int] = {}
        for p in topic.partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic_name, p), timeout=timeout_s)
            if high > low:
                ends[p] = high
        consumer.assign([TopicPartition(topic_name, p, OFFSET_BEGINNING) for p in ends])
        latest: dict[str, Published] = {}
        codec = default_codec()
        deadline = datetime.now(UTC).timestamp() + timeout_s
        while ends and datetime.now(UTC).timestamp() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                raise KafkaException(msg.error())
            key = (msg.key() or b"").decode()
            if msg.value() is None:
                latest[key] = Published(key, 0, "", True)
            else:
                rec = codec.decode(msg.value(), expect="RuleChange")
                latest[rec["rule_id"]] = Published(rec["rule_id"], rec["version"], rec["source"], rec["deleted"],
                                                   rec.get("published_at"), rec.get("author", ""))
            partition, offset = int(msg.partition() or 0), int(msg.offset() or 0)
            if offset + 1 >= ends.get(partition, 0):
                ends.pop(partition, None)
        if ends:
            raise KafkaException(f"timed out reading {topic_name!r}")
        return latest
    finally:
        consumer.close()


def _print_plan(plan: PublishPlan) -> None:
    for rule in plan.new:
        print(f"+ {rule.id} v{rule.version} (new)")
    for rule in plan.changed:
        print(f"~ {rule.id} v{rule.version} (changed)")
    for pub in plan.removed:
        print(f"- {pub.rule_id} v{pub.version} (published, not in the catalogue)")
    for reason in plan.refused:
        print(f"! {reason}")
    print(f"{len(plan.new)} new, {len(plan.changed)} changed, {len(plan.unchanged)} unchanged, "
          f"{len(plan.removed)} only published, {len(plan.refused)} refused")


def cmd_diff(args: argparse.Namespace) -> int:
    rules, issues = compile_files(_paths(args))
    if _print_issues(issues):
        print("(invalid files are left out of the diff)")
    try:
        published = read_published(load_settings(), topic_name=args.topic)
    except Exception as exc:  # noqa: BLE001 - report any broker problem plainly
        print(f"cannot read the rules topic: {exc}", file=sys.stderr)
        return 2
    plan = plan_publish(rules, published)
    _print_plan(plan)
    return 1 if plan.to_publish or plan.removed or plan.refused else 0


def cmd_publish(args: argparse.Namespace) -> int:
    from core.rules.examples import run_examples

    rules, issues = compile_files(_paths(args))
    failing = [f"{r.id} / {x.example}: {'; '.join(x.problems)}" for r in rules for x in run_examples(r)
               if not x.passed]
    if issues or failing:
        _print_issues(issues)
        for line in failing:
            print(f"example failed: {line}", file=sys.stderr)
        print("refusing to publish: fix the errors above (nothing was published)", file=sys.stderr)
        return 1
    settings = load_settings()
    try:
        published = read_published(settings, topic_name=args.topic)
    except Exception as exc:  # noqa: BLE001
        print(f"cannot read the rules topic: {exc}", file=sys.stderr)
        return 2
    plan = plan_publish(rules, published)
    _print_plan(plan)
    if plan.refused:
        print("refusing to publish (nothing was published)", file=sys.stderr)
        return 1
    still_there = sorted(set(args.delete) & {r.id for r in rules})
    if still_there:
        print(f"cannot delete rules still in the catalogue (remove their files first): {', '.join(still_there)}",
              file=sys.stderr)
        return 1
    withdraw = [p for p in plan.removed if args.prune]
    withdraw += [published[rid] for rid in args.delete if rid in published and not published[rid].deleted]
    unknown = [rid for rid in args.delete if rid not in published or published[rid].deleted]
    if unknown:
        print(f"not published (cannot delete): {', '.join(unknown)}", file=sys.stderr)
        return 1
    if args.dry_run:
        print("dry run: nothing published")
        return 0
    records = [_record(r.id, r.version, r.source, False, args.author) for r in plan.to_publish]
    records += [_record(p.rule_id, p.version, p.source, True, args.author) for p in withdraw]
    sent = _produce(settings, records, args.topic)
    print(f"published {sent} record(s) to {args.topic!r}")
    return 0


def _record(rule_id: str, version: int, source: str, deleted: bool, author: str) -> dict[str, Any]:
    return {"rule_id": rule_id, "version": version, "source": source, "deleted": deleted,
            "published_at": datetime.now(UTC), "author": author}


def _produce(settings: Settings, records: list[dict[str, Any]], topic_name: str = RULES_TOPIC) -> int:
    from schemas.codec import default_codec
    from streams.producer import make_producer

    codec = default_codec()
    producer = make_producer(settings, client_id="nudge-rules-publish")
    errors: list[str] = []

    def delivered(err: Any, msg: Any) -> None:
        if err is not None:
            errors.append(f"{msg.key()!r}: {err}")

    for rec in records:
        producer.produce(topic_name, key=rec["rule_id"].encode(), value=codec.encode("RuleChange", rec),
                         on_delivery=delivered)
    remaining = producer.flush(30)
    if errors or remaining:
        raise RuntimeError(f"{len(errors) + remaining} record(s) not acknowledged: {errors}")
    return len(records)


# ---------------------------------------------------------------------- backtest
def cmd_backtest(args: argparse.Namespace) -> int:
    from bench.backtest_rules import backtest, render_html, render_png
    from core.rules import Catalogue

    rules, issues = compile_files([args.path])
    if issues or not rules:
        _print_issues(issues)
        return 1
    rule = rules[0]
    catalogue_rules, catalogue_issues = compile_files([DEFAULT_DIR])
    if catalogue_issues:
        print(f"note: {len(catalogue_issues)} catalogue file(s) invalid, left out of the overlap", file=sys.stderr)
    step = max(1, args.customers // 10)

    def progress(done: int) -> None:
        if done % step == 0 or done == args.customers:
            print(f"  {done}/{args.customers} customers", file=sys.stderr)

    result = backtest(rule, Catalogue(catalogue_rules), args.customers, args.seed, args.days, progress=progress)
    out: Path = args.out or load_settings().cache_dir / "backtest" / f"{rule.id}.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_html(result, args.seed, args.days), encoding="utf-8")
    print(f"{rule.id}: {result.customers_hit}/{result.customers} customers hit "
          f"({result.customers_hit / max(result.customers, 1):.1%}), "
          f"{result.eligible_evaluations}/{result.evaluations} evaluations eligible; report: {out}")
    if args.png:
        png = render_png(out, out.with_suffix(".png"))
        print(f"picture: {png}")
    return 0
