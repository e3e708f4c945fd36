"""The rule catalogue: every rule by id, plus the index the incremental path uses to re-score only
the rules whose inputs changed."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from core.features.registry import REGISTRY, FeatureSpec

from .compiler import compile_rule
from .errors import RuleValidationError, ValidationIssue
from .model import CompiledRule

__all__ = ["Catalogue", "load_catalogue", "rule_files", "TRIGGERS"]

TRIGGERS = ("realtime", "nightly", "both")
_MAX_ANSWERS = 4096


class Catalogue(Mapping[str, CompiledRule]):
    """Immutable rule_id → CompiledRule; replace a rule with :meth:`with_rule` (returns a new catalogue)."""

    def __init__(self, rules: Iterable[CompiledRule] = ()) -> None:
        self._rules: dict[str, CompiledRule] = {r.id: r for r in rules}
        self._by_feature: dict[str, dict[str, list[CompiledRule]]] = {t: {} for t in ("realtime", "nightly")}
        for rule in sorted(self._rules.values(), key=lambda r: r.id):
            for trig in ("realtime", "nightly"):
                if rule.trigger in (trig, "both"):
                    for name in rule.reads:
                        self._by_feature[trig].setdefault(name, []).append(rule)
        # answers of rules_reading/for_trigger: a worker asks the same few questions (the features a card
        # payment changes, say) for every batch, and the catalogue never changes once built
        self._answers: dict[tuple[str, frozenset[str]], tuple[CompiledRule, ...]] = {}
        self._last: tuple[str, frozenset[str], tuple[CompiledRule, ...]] | None = None

    def __getitem__(self, rule_id: str) -> CompiledRule:
        return self._rules[rule_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._rules)

    def __len__(self) -> int:
        return len(self._rules)

    def rules_reading(self, changed: set[str] | frozenset[str], trigger: str = "realtime") -> list[CompiledRule]:
        """Rules (for ``trigger``: realtime or nightly; 'both'-rules count for each) reading a changed feature."""
        kind = "nightly" if trigger == "nightly" else "realtime"
        index = self._by_feature[kind]
        if len(changed) == 1:
            return list(index.get(next(iter(changed)), ()))
        last = self._last
        if last is not None and last[0] == kind and last[1] == changed:  # a worker's batches often repeat it
            return list(last[2])
        key = (kind, changed if isinstance(changed, frozenset) else frozenset(changed))
        answer = self._answers.get(key)
        if answer is None:
            seen: dict[str, CompiledRule] = {}
            for name in changed:
                for rule in index.get(name, ()):
                    seen[rule.id] = rule
            answer = self._remember(key, tuple(seen[k] for k in sorted(seen)))
        self._last = (kind, key[1], answer)
        return list(answer)

    def for_trigger(self, trigger: str) -> list[CompiledRule]:
        """All rules a realtime or nightly pass evaluates."""
        key: tuple[str, frozenset[str]] = ("for_trigger " + trigger, frozenset())
        answer = self._answers.get(key)
        if answer is None:
            answer = self._remember(key, tuple(r for _, r in sorted(self._rules.items())
                                               if r.trigger in (trigger, "both")))
        return list(answer)

    def _remember(self, key: tuple[str, frozenset[str]], answer: tuple[CompiledRule, ...]
                  ) -> tuple[CompiledRule, ...]:
        if len(self._answers) >= _MAX_ANSWERS:  # bounded whatever callers ask
            self._answers.clear()
        self._answers[key] = answer
        return answer

    def with_rule(self, rule: CompiledRule) -> Catalogue:
        return Catalogue([*(r for r in self._rules.values() if r.id != rule.id), rule])

    def without(self, rule_id: str) -> Catalogue:
        return Catalogue(r for r in self._rules.values() if r.id != rule_id)


def rule_files(paths: Iterable[str | Path]) -> list[Path]:
    """Expand directories into their *.yaml / *.yml files (sorted); files are kept as given."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(x for x in p.iterdir() if x.suffix in (".yaml", ".yml") and x.is_file())
        else:
            out.append(p)
    return out


def compile_files(paths: Iterable[str | Path], registry: Mapping[str, FeatureSpec] = REGISTRY
                  ) -> tuple[list[CompiledRule], list[ValidationIssue]]:
    """Compile every file, collecting all issues of all files (and duplicate ids) instead of stopping."""
    rules: list[CompiledRule] = []
    issues: list[ValidationIssue] = []
    first_file: dict[str, str] = {}
    for path in rule_files(paths):
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            issues.append(ValidationIssue(str(path), 0, 0, f"cannot read: {exc}", "io"))
            continue
        try:
            rule = compile_rule(text, str(path), registry)
        except RuleValidationError as exc:
            issues += exc.errors
            continue
        if rule.id in first_file:
            issues.append(ValidationIssue(str(path), 1, 1, f"rule id '{rule.id}' is already used by "
                                                           f"{first_file[rule.id]}", "duplicate-id"))
            continue
        if path.stem != rule.id:
            issues.append(ValidationIssue(str(path), 1, 1, f"file name should be {rule.id}.yaml (the rule id)",
                                          "file-name"))
            continue
        first_file[rule.id] = str(path)
        rules.append(rule)
    return rules, issues


def load_catalogue(directory: str | Path, registry: Mapping[str, FeatureSpec] = REGISTRY) -> Catalogue:
    """Compile every rule file under ``directory``; raise one RuleValidationError listing every problem."""
    rules, issues = compile_files([directory], registry)
    if issues:
        raise RuleValidationError(issues)
    return Catalogue(rules)
