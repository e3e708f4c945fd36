"""Rule evaluation and compile speed: prints figures, never a timed test.

    .venv/bin/python -m bench.bench_rules [--customers 2000] [--repeat 9]

Feature vectors are synthetic but shaped like production ones: every registry feature present (~60,
with realistic None for customers without detected income) plus collections of recurring payments,
categories, merchants, duplicate charges and awaited refunds. Runs in one process and times with the
process's CPU time (``time.process_time``), so figures are per core even when other work shares the machine
(a loaded machine still slows each instruction down: the load average is printed first). The catalogue sweep
is also run through each rule's reference function (the direct translation the fast path falls back to).

The headline row is the catalogue-level path production scoring uses (``core.rules.evaluate_all``: every rule in
one generated function, see core/rules/batch.py); rule by rule (``CompiledRule.evaluate``) and the reference
functions run interleaved with it in the same process, so their ratios hold however fast the machine is at the
moment (the machine reference, ``sum(range(1000))`` in µs, is printed next to the figures: 8-15 µs on a quiet
day). Its outcomes are compared with rule-by-rule outcomes for every customer. ``rescore`` rows show what
scoring adds on top of evaluation (fingerprints, alert tracking).
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import statistics
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from core.features.registry import REGISTRY
from core.rules import CompiledRule, compile_rule, evaluate_all, load_catalogue
from core.rules.batch import batch_evaluator

RULES_DIR = Path(__file__).resolve().parents[1] / "rules"
CATEGORIES = ["groceries", "eating_out", "transport", "shopping", "entertainment", "utilities", "travel",
              "health", "cash", "general"]
SUBSCRIPTIONS = [("netflix", "streaming", 10.99), ("disney plus", "streaming", 7.99), ("spotify", "music", 11.99),
                 ("puregym", "gym", 24.99), ("octopus energy", "energy", 120.0), ("bt", "broadband", 45.0),
                 ("vodafone", "mobile", 25.0), ("aviva", "insurance", 480.0), ("council", "council_tax", 150.0),
                 ("landlord", "rent", 950.0), ("icloud", "cloud_storage", 2.99), ("times", "news", 26.0)]


def feature_vector(rng: random.Random, today: date) -> dict[str, object]:
    """One synthetic customer's feature vector, covering every registry feature."""
    has_income = rng.random() < 0.85
    income = rng.choice([1400.0, 2100.0, 2900.0, 4200.0]) if has_income else None
    balance = rng.gauss(1500, 1200)
    spend_30d = abs(rng.gauss(1600, 700))
    recurring = []
    for merchant, category, amount in rng.sample(SUBSCRIPTIONS, rng.randint(3, 10)):
        cadence = "annual" if category == "insurance" else "monthly"
        prev = amount
        last = amount * (1.2 if rng.random() < 0.01 else 1.0)
        days_until = rng.randint(-5, 30 if cadence == "monthly" else 365)
        first_seen = today - timedelta(days=rng.randint(60, 1500))
        recurring.append({
            "merchant": merchant, "category": category, "cadence": cadence, "typical_amount": amount,
            "last_amount": last, "previous_amount": prev, "price_change_pct": last / prev - 1,
            "first_seen": first_seen, "last_seen": today - timedelta(days=rng.randint(0, 30)),
            "next_expected": today + timedelta(days=days_until), "days_until_next": days_until,
            "days_since_last": rng.randint(0, 40), "count": rng.randint(2, 40), "active": rng.random() < 0.93,
            "trial_converted": rng.random() < 0.01, "usage_30d": rng.choice([0, 0, 1, 3, 8]),
        })
    categories = [{"category": c, "spend_7d": s / 4, "spend_30d": s, "spend_prev_30d": s * rng.uniform(0.7, 1.3),
                   "spend_90d": s * 3, "avg_monthly_prev_90d": s * rng.uniform(0.8, 1.25)}
                  for c in CATEGORIES for s in [abs(rng.gauss(150, 100))]]
    merchants = [{"merchant": f"m{i}", "category": rng.choice(CATEGORIES), "spend_30d": rng.uniform(5, 300),
                  "count_30d": rng.randint(1, 20), "spend_90d": rng.uniform(10, 900)} for i in range(10)]
    vec: dict[str, object] = {
        "today": today, "days_of_history": rng.randint(10, 2000),
        "balance_current": balance, "balance_available": balance + 500, "overdraft_limit": 500.0,
        "overdraft_days_30d": rng.choice([0, 0, 0, 2, 12]),
        "income_amount": income, "income_cadence": "monthly" if has_income else "none",
        "income_next_date": today + timedelta(days=rng.randint(1, 30)) if has_income else None,
        "income_last_date": today - timedelta(days=rng.randint(0, 30)) if has_income else None,
        "income_last_amount": income * rng.choice([1.0, 1.0, 0.8]) if income else None,
        "income_previous_amount": income, "income_days_late": rng.choice([0, 0, 0, 0, 3]),
        "days_to_next_income": rng.randint(1, 30) if has_income else None,
        "income_sources_count": rng.randint(0, 3), "new_income_source": rng.random() < 0.03,
        "spend_7d": spend_30d / 4, "spend_30d": spend_30d, "spend_90d": spend_30d * 3,
        "spend_prev_30d": spend_30d * rng.uniform(0.7, 1.3), "spend_prev_90d": spend_30d * 3,
        "spend_month_to_date": spend_30d * 0.5, "spend_last_month_to_date": spend_30d * rng.uniform(0.3, 0.6),
        "income_30d": income or 0.0, "largest_debit_30d": rng.uniform(50, 900),
        "largest_credit_30d": income or 0.0, "cash_withdrawals_30d_count": rng.randint(0, 6),
        "cash_withdrawals_30d_amount": rng.uniform(0, 300), "cash_fees_30d": rng.choice([0.0, 0.0, 2.5]),
        "fx_fees_30d": rng.choice([0.0, 0.0, 0.0, 7.5]), "overdraft_fees_30d": rng.choice([0.0, 0.0, 15.0]),
        "overdraft_fees_90d": rng.choice([0.0, 0.0, 45.0]),
        "bills_due_before_payday": rng.uniform(0, 1200), "projected_balance_at_payday": rng.gauss(300, 800),
        "round_up_potential_30d": rng.uniform(2, 30), "monthly_surplus": rng.gauss(200, 400),
        "last_txn_amount": rng.uniform(1, 600), "last_txn_direction": rng.choice(["Debit"] * 9 + ["Credit"]),
        "last_txn_merchant": rng.choice(["tesco", "amazon", "tfl"]), "last_txn_category": rng.choice(CATEGORIES),
        "last_txn_is_income": rng.random() < 0.03, "last_txn_date": today,
        "categories": categories, "merchants": merchants, "recurring": recurring,
        "duplicate_charges": [{"merchant": "trainline", "amount": 45.0, "count": 2, "date": today}]
        if rng.random() < 0.02 else [],
        "refunds_awaited": [{"merchant": "asos", "amount": 60.0, "days_waiting": rng.randint(1, 30)}]
        if rng.random() < 0.05 else [],
    }
    assert set(vec) == set(REGISTRY), set(REGISTRY) ^ set(vec)
    return vec


def _best(fn: Callable[[], object], repeat: int) -> float:
    return _best_cpu_wall(fn, repeat)[0]


def _best_cpu_wall(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Best CPU time (this process) and best wall time of ``repeat`` runs: CPU is the per-core figure, wall
    shows what a loaded machine took from us."""
    cpu, wall = [], []
    for _ in range(repeat):
        gc.collect()
        start, start_wall = time.process_time(), time.perf_counter()
        fn()
        cpu.append(time.process_time() - start)
        wall.append(time.perf_counter() - start_wall)
    return min(cpu), min(wall)


def _interleaved(fns: list[Callable[[], object]], repeat: int) -> list[tuple[float, float]]:
    """Best (CPU, wall) of each function, the runs interleaved (A B C A B C ...): a machine whose speed drifts
    during the run slows every contender alike, so their ratios hold even when the absolute figures move."""
    cpu = [[] for _ in fns]  # type: list[list[float]]
    wall = [[] for _ in fns]  # type: list[list[float]]
    for _ in range(repeat):
        for i, fn in enumerate(fns):
            gc.collect()
            start, start_wall = time.process_time(), time.perf_counter()
            fn()
            cpu[i].append(time.process_time() - start)
            wall[i].append(time.perf_counter() - start_wall)
    return [(min(c), min(w)) for c, w in zip(cpu, wall, strict=True)]


def machine_reference() -> float:
    """µs for ``sum(range(1000))``: how fast this machine runs Python right now (8-15 µs on a quiet day)."""
    import timeit

    return min(timeit.repeat("sum(range(1000))", number=2000, repeat=7)) / 2000 * 1e6


def _reference(rule: CompiledRule) -> Callable[[dict[str, object]], object]:
    """The rule's reference function (the direct translation the fast path falls back to), for comparison."""
    ref: Callable[[dict[str, object]], object] = rule.evaluate.__globals__["_reference"]
    return ref


def _array_namespace() -> dict[str, object]:
    import functools

    import numpy as np

    def known(a: Any) -> Any:
        return ~np.isnan(a) if a.dtype.kind == "f" else np.array([x is not None for x in a])

    return {
        "_min": lambda *a: functools.reduce(np.minimum, a), "_max": lambda *a: functools.reduce(np.maximum, a),
        "_abs": np.abs, "_round": np.round, "_floor": np.floor, "_ceil": np.ceil, "_clamp": np.clip,
        "_days_between": lambda a, b: b - a, "_pct_change": lambda o, n: (n - o) / o, "_where": np.where,
        "_isin": lambda a, s: np.isin(a, list(s)), "_known": known,
    }


def _columns(vectors: list[dict[str, object]], names: set[str]) -> dict[str, Any]:
    """Feature vectors → one array per feature (NaN for None; dates as day ordinals)."""
    import numpy as np

    cols: dict[str, Any] = {}
    for name in names:
        kind = REGISTRY[name].type.value
        vals = [v.get(name) for v in vectors]
        if kind in ("money", "ratio", "days", "count"):
            cols[name] = np.array([np.nan if x is None else float(x) for x in vals])  # type: ignore[arg-type]
        elif kind == "date":
            cols[name] = np.array([np.nan if x is None else float(x.toordinal()) for x in vals])  # type: ignore[attr-defined]
        elif kind == "bool":
            cols[name] = np.array([bool(x) for x in vals])
        else:
            cols[name] = np.array(vals, dtype=object)
    return cols


def vector_sweep(vectors: list[dict[str, object]], rules: list[CompiledRule], repeat: int) -> None:
    """The numpy batch path for plain rules, side by side with the scalar evaluator on the same rules."""
    try:
        import numpy as np
    except ImportError:
        print("vectorised sweep: numpy not installed (pip install numpy), skipped")
        return
    from core.rules.vector import NotVectorisable, compile_vector

    ns = _array_namespace()
    vrules = []
    for rule in rules:
        try:
            vrules.append((rule, compile_vector(rule, ns)))
        except NotVectorisable:
            continue
    names = set().union(*(set(v.reads) for _, v in vrules))
    build = _best(lambda: _columns(vectors, names), repeat)
    cols = _columns(vectors, names)

    def run_vector() -> None:
        with np.errstate(all="ignore"):
            for _, v in vrules:
                mask, score = v.fn(cols)
                np.clip(np.broadcast_to(score, mask.shape)[mask], 0.0, 1.0)

    def run_scalar() -> None:
        for vec in vectors:
            for rule, _ in vrules:
                rule.evaluate(vec)

    tv, ts = _best(run_vector, repeat), _best(run_scalar, repeat)
    mismatches = 0
    with np.errstate(all="ignore"):
        for rule, v in vrules:
            mask, _ = v.fn(cols)
            scalar = np.array([rule.evaluate(vec).eligible for vec in vectors])
            mismatches += int((np.broadcast_to(mask, scalar.shape) != scalar).sum())
    n = len(vectors) * len(vrules)
    print(f"vectorised sweep (numpy, {len(vrules)} plain rules of {len(rules)}, {len(vectors)} customers): "
          f"{n / tv / 1e6:.1f} M evaluations/s eligibility+score ({n / (tv + build) / 1e6:.1f} M/s including "
          f"building {len(names)} columns); scalar on the same rules {n / ts / 1e6:.2f} M/s; "
          f"eligibility disagreements {mismatches} of {n}")


def warm_rows(vectors: list[dict[str, object]], rules: list[CompiledRule], repeat: int) -> None:
    """The same comparison over 200 customers, whose feature vectors stay in the CPU caches between runs.

    In production a customer's vector is built (features_at) just before its rules are scored, so it is in
    cache; sweeping 2,000 prebuilt vectors (~100 MB of dicts) waits on memory for every customer, a cost that is
    the same for every evaluator and that hides their differences."""
    refs = [_reference(rule) for rule in rules]

    def together() -> None:
        for vec in vectors:
            evaluate_all(rules, vec)

    def one_by_one() -> None:
        for vec in vectors:
            for rule in rules:
                rule.evaluate(vec)

    def reference() -> None:
        for vec in vectors:
            for ref in refs:
                ref(vec)

    (t, _), (t_one, _), (t_ref, _) = _interleaved([together, one_by_one, reference], repeat * 3)
    n = len(vectors) * len(rules)
    print(f"  {len(vectors)} customers, vectors in cache: catalogue-level {n / t / 1e6:.2f} M/s, rule by rule "
          f"{n / t_one / 1e6:.2f} M/s (x{t_one / t:.2f}), reference functions {n / t_ref / 1e6:.2f} M/s "
          f"(x{t_ref / t:.2f}); machine reference {machine_reference():.1f} µs")


def rescore_rows(vectors: list[dict[str, object]], rules: list[CompiledRule], repeat: int) -> None:
    """What scoring costs on top of evaluation: core.scoring.rescore with score books already up to date (the
    steady state of a nightly sweep: nothing changed, nothing emitted)."""
    from datetime import UTC, datetime

    from core.scoring import Origin, ScoreBook, rescore

    now = datetime(2026, 3, 15, 12, tzinfo=UTC)
    origin = Origin("sweep", "bench")
    books = [ScoreBook() for _ in vectors]
    for book, vec in zip(books, vectors, strict=True):
        rescore(book, rules, vec, customer_id="c", now=now, origin=origin, alerts_enabled=False)

    def steady() -> None:
        for book, vec in zip(books, vectors, strict=True):
            rescore(book, rules, vec, customer_id="c", now=now, origin=origin, alerts_enabled=False)

    def evaluate_only() -> None:
        for vec in vectors:
            evaluate_all(rules, vec)

    (t, _), (t_eval, _) = _interleaved([steady, evaluate_only], repeat)
    n = len(vectors) * len(rules)
    print(f"rescore, score books up to date (nothing emitted): {n / t / 1e6:.2f} M evaluations/s per core, "
          f"{t / len(vectors) * 1e6:.1f} µs per customer, of which evaluation {t_eval / len(vectors) * 1e6:.1f} µs")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=9, help="runs per figure; the best (least disturbed) counts")
    args = parser.parse_args(argv)

    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores; machine reference "
          f"sum(range(1000)) {machine_reference():.1f} µs; all figures are CPU time of this process "
          f"(time.process_time) unless marked wall")
    files = sorted(RULES_DIR.glob("*.yaml"))
    texts = [(f.read_text(), str(f)) for f in files]
    compile_times = [_best(lambda: [compile_rule(t, n) for t, n in texts], 1) for _ in range(args.repeat)]
    load_time = _best(lambda: load_catalogue(RULES_DIR), args.repeat)
    catalogue = load_catalogue(RULES_DIR)
    rules: list[CompiledRule] = list(catalogue.values())
    print(f"catalogue: {len(rules)} rules; compile all: best {min(compile_times) * 1000:.1f} ms, "
          f"median {statistics.median(compile_times) * 1000:.1f} ms; load_catalogue (incl. file reads, index): "
          f"{load_time * 1000:.1f} ms")

    rng = random.Random(7)
    vectors = [feature_vector(rng, date(2026, 3, 15)) for _ in range(args.customers)]
    print(f"feature vectors: {len(vectors)} customers x {len(vectors[0])} features "
          f"(recurring items avg {statistics.mean(len(v['recurring']) for v in vectors):.1f})")  # type: ignore[arg-type]

    start = time.process_time()
    batch_evaluator(rules)
    print(f"catalogue-level function for all {len(rules)} rules (generated on first use): "
          f"{(time.process_time() - start) * 1000:.0f} ms")

    def sweep() -> None:
        for vec in vectors:
            evaluate_all(rules, vec)

    def sweep_rule_by_rule() -> None:
        for vec in vectors:
            for rule in rules:
                rule.evaluate(vec)

    references = [_reference(rule) for rule in rules]

    def sweep_reference() -> None:
        for vec in vectors:
            for ref in references:
                ref(vec)

    n = len(vectors) * len(rules)
    before = machine_reference()
    (elapsed, wall), (one_elapsed, _), (ref_elapsed, _) = _interleaved(
        [sweep, sweep_rule_by_rule, sweep_reference], args.repeat)
    after = machine_reference()
    outcomes = [rule.evaluate(v) for v in vectors for rule in rules]
    together = [o for v in vectors for o in evaluate_all(rules, v)]
    differ = sum(a != b for a, b in zip(together, outcomes, strict=True))
    hit = sum(o.eligible for o in outcomes) / len(outcomes)
    errors = sum(o.error is not None for o in outcomes)
    print(f"all catalogue rules x all customers (catalogue-level, core.rules.evaluate_all): {n / elapsed / 1e6:.2f} M "
          f"evaluations/s per core (CPU {elapsed / n * 1e9:.0f} ns each, wall {wall / n * 1e9:.0f} ns; eligible "
          f"{hit:.1%}, runtime errors {errors}; outcomes differing from rule by rule: {differ} of {n})")
    print(f"  same run: rule by rule (CompiledRule.evaluate) {n / one_elapsed / 1e6:.2f} M/s, reference functions "
          f"{n / ref_elapsed / 1e6:.2f} M/s; catalogue-level x{one_elapsed / elapsed:.2f} rule by rule, "
          f"x{ref_elapsed / elapsed:.2f} reference; machine reference {before:.1f} -> {after:.1f} µs")

    warm_rows(vectors[:200], rules, args.repeat)

    plain = [r for r in rules if r.for_each is None]
    each = [r for r in rules if r.for_each is not None]
    for label, group in (("plain rules", plain), ("for_each rules", each)):
        def run(group: list[CompiledRule] = group) -> None:
            for vec in vectors:
                for rule in group:
                    rule.evaluate(vec)
        t = _best(run, args.repeat)
        print(f"  {label:15s} ({len(group):2d}): {len(vectors) * len(group) / t / 1e6:.2f} M evaluations/s")

    # the incremental path: a card payment changes these features; only realtime rules reading them run
    changed = {"last_txn_amount", "last_txn_direction", "last_txn_merchant", "last_txn_category", "last_txn_date",
               "last_txn_is_income", "balance_available", "balance_current", "spend_7d", "spend_30d",
               "spend_month_to_date", "merchants", "categories", "round_up_potential_30d", "largest_debit_30d"}
    realtime = catalogue.rules_reading(changed, trigger="realtime")

    def incremental() -> None:
        for vec in vectors:
            evaluate_all(catalogue.rules_reading(changed, trigger="realtime"), vec)

    def incremental_rule_by_rule() -> None:
        for vec in vectors:
            for rule in catalogue.rules_reading(changed, trigger="realtime"):
                rule.evaluate(vec)

    (t, t_wall), (t_one, _) = _interleaved([incremental, incremental_rule_by_rule], args.repeat)
    differ = sum(evaluate_all(realtime, v) != [r.evaluate(v) for r in realtime] for v in vectors)
    print(f"incremental path (card payment, {len(changed)} features changed -> {len(realtime)} realtime rules "
          f"incl. the index lookup): {len(vectors) * len(realtime) / t / 1e6:.2f} M evaluations/s per core, "
          f"CPU {t / len(vectors) * 1e6:.1f} µs per transaction (wall {t_wall / len(vectors) * 1e6:.1f} µs); "
          f"same run rule by rule {len(vectors) * len(realtime) / t_one / 1e6:.2f} M/s (x{t_one / t:.2f}); "
          f"customers whose outcomes differ: {differ}; machine reference {machine_reference():.1f} µs")
    rescore_rows(vectors, rules, args.repeat)

    per_rule = []
    for rule in rules:
        def one(rule: CompiledRule = rule) -> None:
            for v in vectors:
                rule.evaluate(v)

        t = _best(one, 3)
        per_rule.append((len(vectors) / t, rule.id))
    per_rule.sort()
    print("  slowest rules: " + ", ".join(f"{rid} {r / 1e6:.2f}M/s" for r, rid in per_rule[:4]))
    print("  fastest rules: " + ", ".join(f"{rid} {r / 1e6:.2f}M/s" for r, rid in per_rule[-3:]))

    vector_sweep(vectors, rules, args.repeat)

    # the yardstick: a rule over 4 features in a 300-feature context, versus hand-written Python
    reps = 200_000
    four = compile_rule(
        "id: four_features\nversion: 1\ntitle: t\nkind: alert\ntrigger: both\n"
        "when: balance_available < £200 and spend_30d > spend_prev_30d * 1.2 and overdraft_fees_30d > 0\n"
        "score: clamp(spend_30d / max(spend_prev_30d, £1) - 1, 0, 1)\nmessage: \"x\"\n", "four.yaml")
    context = dict(vectors[0])
    context.update({f"extra_{i}": float(i) for i in range(300 - len(context))})
    for label, ctx in (("not eligible", {**context, "balance_available": 5000.0}),
                       ("eligible", {**context, "balance_available": 10.0, "spend_30d": 900.0,
                                     "spend_prev_30d": 500.0, "overdraft_fees_30d": 5.0})):

        def compiled(ctx: dict[str, object] = ctx) -> None:
            ev = four.evaluate
            for _ in range(reps):
                ev(ctx)

        def handwritten(ctx: dict[str, object] = ctx) -> None:
            for _ in range(reps):
                b, s, p, f = ctx["balance_available"], ctx["spend_30d"], ctx["spend_prev_30d"], \
                    ctx["overdraft_fees_30d"]
                if b < 200 and s > p * 1.2 and f > 0:  # type: ignore[operator]
                    min(max(s / max(p, 1.0) - 1, 0.0), 1.0)  # type: ignore[call-overload]

        tc, th = _best(compiled, 3), _best(handwritten, 3)
        print(f"4-feature rule in a 300-feature context ({label}): compiled {reps / tc / 1e6:.2f} M/s, "
              f"hand-written Python {reps / th / 1e6:.2f} M/s (ratio {th / tc:.2f})")


if __name__ == "__main__":
    main()
