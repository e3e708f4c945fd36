"""Write ``rules_golden.json.gz``: the evaluator's outcomes, frozen, for ``test_rules_golden.py``.

    .venv/bin/python -m tests.unit.data.make_rules_golden [--vectors 100] [--out PATH]

The file holds the catalogue's rule sources, feature vectors (the benchmark's synthetic customers, the same
customers damaged in the ways real data goes wrong: missing features, None, wrong types, NaN, zero divisors,
odd items) and every rule's outcome for each of them, plain and with explain, as canonical JSON text. Run it
only to record behaviour that is meant to change; speed work must leave the file as it is.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import random
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from bench.bench_rules import RULES_DIR, feature_vector
from core.features.registry import REGISTRY, FeatureType
from core.rules import CompiledRule, RuleOutcome, compile_rule

OUT = Path(__file__).resolve().parent / "rules_golden.json.gz"
TODAY = date(2026, 3, 15)
ODD_VALUES: list[object] = [None, 0, 0.0, -0.0, -1.0, 1e6, 12_345.678, math.nan, math.inf, -math.inf, "x", "",
                            True, False, [], {}, 3, 999.995, -999.995, date(2026, 3, 1)]


# Constructs the catalogue does not use (yet): top-level and/or/not, if-else, every function and aggregate,
# aggregates behind a condition or shared between conditions, score and values, each placeholder format.
EXTRA_RULES = {
    "golden_plain_mix": """\
id: golden_plain_mix
version: 1
title: Mix
kind: alert
trigger: both
when:
  - known(income_next_date) or balance_available < £100
  - not (spend_30d < £10 and spend_7d < £5)
  - last_txn_category in ("groceries", "shopping", "travel") or last_txn_amount >= £50
score: clamp(abs(spend_30d - spend_prev_30d) / max(spend_prev_30d, £1), 0, 1) if spend_prev_30d > 0 else 0.5
values:
  change: pct_change(max(spend_prev_30d, £1), spend_30d)
  rounded: round(spend_30d, 1)
  floored: floor(balance_available)
  ceiled: ceil(balance_current)
  days: days_between(last_txn_date, today)
  ratio: spend_7d / spend_30d if spend_30d > 0 else 0
message: "{change:pct} {rounded} {floored:int} {ceiled} {days} {last_txn_merchant} {income_next_date} \\
  {last_txn_is_income} {ratio:number} {overdraft_days_30d} {income_days_late:number}"
""",
    "golden_aggregates": """\
id: golden_aggregates
version: 2
title: Aggregates
kind: insight
trigger: nightly
when:
  - any(recurring, it.active and it.typical_amount > £20) or count(recurring) > 8
  - balance_available > 0 and sum(recurring, it.typical_amount, it.active) / balance_available < 5
score: clamp(max(recurring, it.typical_amount) / £1000, 0, 1) if count(recurring) > 0 else 0
values:
  cheapest: min(recurring, it.typical_amount, it.active)
  actives: count(recurring, it.active)
  total: sum(recurring, it.typical_amount, it.active)
  everything: all(recurring, it.active)
  top_category: max(categories, it.spend_30d)
message: "{cheapest} {actives} {total} {everything} {top_category}"
""",
    "golden_each_mix": """\
id: golden_each_mix
version: 1
title: Each mix
kind: alert
trigger: both
for_each: recurring
when:
  - item.active or item.count > 10
  - not item.trial_converted and (item.category in ("streaming", "music") or item.typical_amount >= £100)
  - count(recurring, it.active) >= 2
  - sum(recurring, it.typical_amount, it.category == item.category) >= item.typical_amount
score: clamp(item.typical_amount / £200, 0.1, 0.9) if item.cadence == "monthly" else 0.5
values:
  same: count(recurring, it.category == item.category)
  next: item.next_expected
  late: days_between(item.last_seen, today)
  others: sum(recurring, it.typical_amount, it.category != item.category)
message: "{merchant} {same} {next} {late} {typical_amount} {price_change_pct:pct} {others} {usage_30d}"
""",
    "golden_categories_or": """\
id: golden_categories_or
version: 1
title: Categories
kind: insight
trigger: nightly
for_each: categories
when:
  - item.spend_30d > item.spend_prev_30d * 1.1 or item.spend_7d > £60
  - item.spend_prev_30d > 0 and item.spend_30d / item.spend_prev_30d < 3
score: clamp(item.spend_30d / item.spend_prev_30d - 1, 0, 1) if item.spend_prev_30d > 0 else 0
message: "{category} {spend_30d} {spend_prev_30d:number}"
""",
}


def encode(value: object) -> object:
    """JSON form of a feature value keeping its type: dates tagged, floats exact (NaN/inf as JSON extensions)."""
    if isinstance(value, date):
        return {"$date": value.isoformat()}
    if isinstance(value, dict):
        return {k: encode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [encode(v) for v in value]
    return value


def decode(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"$date"}:
            return date.fromisoformat(value["$date"])
        return {k: decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode(v) for v in value]
    return value


def outcome_text(outcome: RuleOutcome) -> str:
    """Canonical text of an outcome: every field, floats by repr, so 'identical' means identical."""
    return json.dumps(outcome.to_dict(), sort_keys=True, default=repr, allow_nan=True)


def damaged(rng: random.Random, vec: dict[str, object]) -> dict[str, object]:
    """The vector with one to three things wrong, the way features of a new or odd customer can be."""
    out: dict[str, object] = {k: ([dict(i) if isinstance(i, dict) else i for i in v] if isinstance(v, list) else v)
                              for k, v in vec.items()}
    scalars = [n for n, s in REGISTRY.items() if s.type != FeatureType.COLLECTION]
    colls = [n for n, s in REGISTRY.items() if s.type == FeatureType.COLLECTION]
    for _ in range(rng.randint(1, 3)):
        what = rng.randrange(9)
        if what == 0:
            out.pop(rng.choice(scalars + colls), None)
        elif what in (1, 2):
            out[rng.choice(scalars)] = rng.choice(ODD_VALUES)
        elif what == 3:
            out[rng.choice(colls)] = rng.choice([[], None, 5, "x", [5], [None]])
        elif what in (4, 5, 6):
            items = out.get(rng.choice(colls))
            if isinstance(items, list) and items and isinstance(items[0], dict):
                item = rng.choice(items)
                key = rng.choice(sorted(item))
                if what == 4:
                    del item[key]
                else:
                    item[key] = rng.choice(ODD_VALUES)
        elif what == 7:
            out["today"] = TODAY + timedelta(days=rng.choice([-60, -15, 0, 20, 46, 47, 100]))
        else:
            for name in ("spend_prev_30d", "spend_last_month_to_date", "income_amount", "income_30d"):
                out[name] = 0.0
    return out


EXPLAIN_EVERY = 4  # explain outcomes are long: every 4th vector is enough to pin them down


def record(rules: list[CompiledRule], vectors: list[dict[str, object]]) -> dict[str, list[str]]:
    """rule id → outcome texts: plain for every vector, then explain for every EXPLAIN_EVERY-th."""
    return {r.id: [outcome_text(r.evaluate(v)) for v in vectors]
            + [outcome_text(r.evaluate(v, explain=True)) for v in vectors[::EXPLAIN_EVERY]] for r in rules}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--vectors", type=int, default=100, help="clean vectors (as many damaged ones are added)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    sources = {f.stem: f.read_text(encoding="utf-8") for f in sorted(RULES_DIR.glob("*.yaml"))} | EXTRA_RULES
    rules = [compile_rule(text, f"{rid}.yaml") for rid, text in sources.items()]
    rng = random.Random(7)
    clean = [feature_vector(rng, TODAY) for _ in range(args.vectors)]
    bad_rng = random.Random(11)
    vectors = clean + [damaged(bad_rng, v) for v in clean]
    examples = {r.id: [dict(ex.features) for ex in r.examples] for r in rules}
    data = {
        "sources": sources,
        "vectors": [encode(v) for v in vectors],
        "outcomes": record(rules, vectors),
        "example_outcomes": {r.id: [[outcome_text(r.evaluate(f)), outcome_text(r.evaluate(f, explain=True))]
                                    for f in examples[r.id]] for r in rules},
    }
    raw = json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=True).encode()
    args.out.write_bytes(gzip.compress(raw, 9, mtime=0))
    print(f"{args.out}: {len(rules)} rules x {len(vectors)} vectors, {len(raw) / 1e6:.1f} MB raw, "
          f"{args.out.stat().st_size / 1e3:.0f} kB gzipped")


if __name__ == "__main__":
    main()
