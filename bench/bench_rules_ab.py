"""Catalogue-level rule evaluation as it is at another commit vs the work tree, in ONE process: figures, ratio.

    .venv/bin/python -m bench.bench_rules_ab [--against HEAD~1] [--customers 2000] [--repeat 9]

The machine is shared and its speed changes several-fold over a day, so a figure from an earlier run is no
baseline for a change. This copies ``core/rules`` as it is at ``--against`` (``git archive``) into a package
of its own in a temporary directory, loads the catalogue (``rules/*.yaml`` of the work tree) with both, checks
that both give the same outcomes for every customer, then times ``evaluate_all`` of each over the same
feature vectors (``bench_rules.feature_vector``), interleaved (A B A B ...), in CPU time of this process, and
prints the two figures and their ratio next to the load average and the machine reference. Only
``core/rules`` is taken from the other commit: everything it imports from outside itself (``core.features``)
is the work tree's.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import io
import os
import random
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from types import ModuleType
from typing import Any

from bench.bench_rules import RULES_DIR, feature_vector, machine_reference

REPO = Path(__file__).resolve().parents[1]


def rules_package_at(rev: str, into: Path) -> ModuleType:
    """``core/rules`` at ``rev``, importable as a package of its own (its imports within itself are relative)."""
    sha = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", rev], check=True, capture_output=True,
                         text=True).stdout.strip()
    archive = subprocess.run(["git", "-C", str(REPO), "archive", sha, "core/rules"], check=True,
                             capture_output=True).stdout
    name = f"rules_at_{sha}"
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        if hasattr(tarfile, "data_filter"):  # Python 3.11.4+
            tar.extractall(into / "tree", filter="data")
        else:
            tar.extractall(into / "tree")  # noqa: S202 - our own repository's archive
    (into / "tree" / "core" / "rules").rename(into / name)
    sys.path.insert(0, str(into))
    return importlib.import_module(name)


def _outcome_key(outcome: Any) -> tuple[object, ...]:
    """An outcome as plain values: the two packages' RuleOutcome and Reason classes are not each other's."""
    reasons = tuple((r.text, r.condition, r.value, r.passed, dict(r.features), r.item) for r in outcome.reasons)
    items = tuple(tuple(item) for item in outcome.items)
    return (*outcome[:4], items, outcome.message, reasons, outcome.error)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--against", default="HEAD~1", help="the commit whose core/rules is compared (A)")
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=9, help="runs of each; the best (least disturbed) counts")
    args = parser.parse_args(argv)

    import core.rules as work

    with tempfile.TemporaryDirectory(prefix="bench-rules-ab-") as tmp:  # kept while it runs (lazy imports)
        other = rules_package_at(args.against, Path(tmp))
        compare(other, work, args.against, args.customers, args.repeat)


def compare(other: ModuleType, work: ModuleType, against: str, customers: int, repeat: int) -> None:
    contenders: dict[str, tuple[list[Any], Callable[[Any, Any], list[Any]]]] = {}
    sha = other.__name__.removeprefix("rules_at_")
    for label, package in ((against if against.startswith(sha) else f"{against} ({sha})", other), ("work tree", work)):
        rules = list(package.load_catalogue(RULES_DIR).values())
        contenders[label] = (rules, importlib.import_module(package.__name__ + ".batch").evaluate_all)
    rng = random.Random(7)
    vectors = [feature_vector(rng, date(2026, 3, 15)) for _ in range(customers)]
    (a_rules, a_eval), (b_rules, b_eval) = contenders.values()
    if [r.id for r in a_rules] != [r.id for r in b_rules]:
        raise SystemExit("the two catalogues differ (rule ids): nothing to compare")
    differ = sum(_outcome_key(x) != _outcome_key(y) for v in vectors
                 for x, y in zip(a_eval(a_rules, v), b_eval(b_rules, v), strict=True))

    def sweep(rules: list[Any], evaluate_all: Callable[[Any, Any], list[Any]]) -> Callable[[], None]:
        def run() -> None:
            for vec in vectors:
                evaluate_all(rules, vec)
        return run

    runs = [sweep(rules, ev) for rules, ev in contenders.values()]
    load = os.getloadavg()
    before = machine_reference()
    cpu: list[list[float]] = [[] for _ in runs]
    for _ in range(repeat):
        for i, run in enumerate(runs):
            gc.collect()
            start = time.process_time()
            run()
            cpu[i].append(time.process_time() - start)
    after = machine_reference()
    n = len(vectors) * len(a_rules)
    best = [min(c) for c in cpu]
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores; machine reference "
          f"sum(range(1000)) {before:.1f} -> {after:.1f} µs; CPU time of this process, best of {repeat}, "
          f"interleaved")
    print(f"{len(a_rules)} rules x {len(vectors)} customers through evaluate_all; outcomes differing: {differ} of {n}")
    for label, t in zip(contenders, best, strict=True):
        print(f"  {label:24s} {n / t / 1e6:6.2f} M evaluations/s per core ({t / n * 1e9:.0f} ns each)")
    print(f"  work tree / {against}: x{best[0] / best[1]:.2f}")

if __name__ == "__main__":
    main()
