"""Compile a rule file into a :class:`CompiledRule`: validate everything, then generate one Python function.

The generated function loads each feature it needs once (lazily, just before the first condition that
reads it), returns a precomputed not-eligible outcome at the first failing condition, and builds the
eligible outcome directly. Its source is assembled from fragments this package emits; the author's text
only ever enters as entries of the constants table ``_K``.
"""

from __future__ import annotations

import difflib
import string
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from operator import itemgetter
from typing import Any

import yaml

from core.features.registry import REGISTRY, FeatureSpec, FeatureType

from .batch import RulePlan
from .errors import RuleValidationError, ValidationIssue
from .examples_schema import parse_examples
from .expressions import NUMERIC, ExprCompiler, Limits, Scope, Typed
from .fastpath import FAST_NAMES, FastGen
from .model import CompiledRule, ItemResult, Reason, RuleOutcome
from .rulefile import RuleDoc, parse_duration, read_rule_doc
from .runtime import RUNTIME

__all__ = ["compile_rule", "DEFAULT_LIMITS"]

DEFAULT_LIMITS = Limits()
_FORMAT_SPECS = {"": None, "money": "money", "pct": "pct", "int": "int", "date": "date", "number": "number"}
_MAX_EXPLAIN_ITEMS = 50


@dataclass
class _Part:
    """One compiled expression of the rule with the features it reads."""

    text: str
    typed: Typed
    used: frozenset[str]
    fields: frozenset[str]


class _ItemError(Exception):
    """An item of a for_each rule failed; carries the item so the reason can name it."""

    def __init__(self, item: object, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.item = item
        self.cause = cause


def compile_rule(source: str, filename: str = "<rule>", registry: Mapping[str, FeatureSpec] = REGISTRY,
                 limits: Limits = DEFAULT_LIMITS) -> CompiledRule:
    """Validate and compile one rule file's text; raise :class:`RuleValidationError` listing every problem."""
    doc = read_rule_doc(source, filename)
    if not doc.data:
        raise RuleValidationError(doc.issues)
    cc = ExprCompiler(registry, doc.issues, limits)
    d, n = doc.data, doc.nodes
    coll = _check_for_each(doc, registry)
    facts: frozenset[str] = frozenset()
    conjuncts: list[_Part] = []
    when = d.get("when")
    when_items = when if isinstance(when, list) else [when]
    when_nodes = n["when"].value if isinstance(n.get("when"), yaml.SequenceNode) else [n.get("when")]
    for text, node in zip(when_items, when_nodes, strict=False):
        if not isinstance(text, str) or node is None:
            continue
        part = _compile(cc, doc, node, Scope(item_coll=coll, facts=facts))
        if part is None:
            continue
        if part.typed.kind != "bool":
            doc.issue(node, f"each `when` condition must be true/false, `{text.strip()}` is {part.typed.kind}",
                      "type-mismatch")
        conjuncts.append(part)
        facts = facts | part.typed.facts
    body = Scope(item_coll=coll, facts=facts)
    score = _compile_score(cc, doc, body) if "score" in n else None
    values: dict[str, _Part] = {}
    for key_node, value_node in (n["values"].value if isinstance(n.get("values"), yaml.MappingNode) else []):
        part = _compile(cc, doc, value_node, body)
        if part is not None:
            values[str(key_node.value)] = part
    message = _compile_message(cc, doc, registry, coll, values) if isinstance(d.get("message"), str) else None
    examples = parse_examples(doc, registry)
    if doc.issues:
        raise RuleValidationError(doc.issues)
    assert score is not None and message is not None
    return _build(doc, registry, cc, coll, conjuncts, score, values, message, examples)


def _compile(cc: ExprCompiler, doc: RuleDoc, node: yaml.Node, scope: Scope) -> _Part | None:
    if not isinstance(node, yaml.ScalarNode):
        doc.issue(node, "expected an expression", "bad-value")
        return None
    typed = cc.compile(doc.expr_source(node), scope)
    if typed is None:
        return None
    if typed.kind == "collection":
        doc.issue(node, "a collection needs for_each or count/any/all/sum/min/max", "type-mismatch")
        return None
    return _Part(str(node.value).strip(), typed, frozenset(cc.used), frozenset(cc.used_fields))


def _check_for_each(doc: RuleDoc, registry: Mapping[str, FeatureSpec]) -> str | None:
    name = doc.data.get("for_each")
    if name is None:
        return None
    node = doc.nodes["for_each"]
    spec = registry.get(name) if isinstance(name, str) else None
    if spec is None:
        colls = [k for k, s in registry.items() if s.type == FeatureType.COLLECTION]
        close = difflib.get_close_matches(str(name), colls, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else f"; collections: {', '.join(colls)}"
        doc.issue(node, f"unknown collection '{name}'{hint}", "unknown-feature")
        return None
    if spec.type != FeatureType.COLLECTION:
        doc.issue(node, f"for_each needs a collection, but '{name}' is {spec.type.value}", "not-a-collection")
        return None
    return name


def _compile_score(cc: ExprCompiler, doc: RuleDoc, scope: Scope) -> _Part | None:
    node = doc.nodes["score"]
    part = _compile(cc, doc, node, scope)
    if part is None:
        return None
    t = part.typed
    if t.kind not in ("ratio", "number", "count", "days"):
        hint = " (divide money by money, e.g. `x / £500`, to get a ratio)" if t.kind == "money" else ""
        doc.issue(node, f"score must be a number from 0 to 1, but `{part.text}` is {t.kind}{hint}",
                  "type-mismatch")
    elif t.lo > 1 or t.hi < 0:
        doc.issue(node, f"score `{part.text}` is always outside 0..1", "score-range")
    elif (t.hi > 1 and t.hi != float("inf")) or (t.lo < 0 and t.lo != float("-inf")):
        bound = t.hi if t.hi > 1 else t.lo
        doc.issue(node, f"score `{part.text}` can reach {bound:g}, outside 0..1; use clamp(..., 0, 1)",
                  "score-range")
    return part


def _compile_message(cc: ExprCompiler, doc: RuleDoc, registry: Mapping[str, FeatureSpec], coll: str | None,
                     values: dict[str, _Part]) -> tuple[str, frozenset[str], frozenset[str]] | None:
    """Message template → code joining constants and formatted values; checks placeholders both ways."""
    node = doc.nodes["message"]
    template = str(doc.data["message"])
    src = doc.expr_source(node)

    def at(offset: int, message: str, code: str) -> None:
        line, col = src.position(1, offset)
        doc.issues.append(ValidationIssue(doc.file, line, col, message, code))

    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        at(0, f"message template is malformed: {exc} (write {{{{ and }}}} for literal braces)", "bad-value")
        return None
    pieces: list[str] = []
    used: set[str] = set()
    fields: set[str] = set()
    seen: set[str] = set()
    search = 0
    item_spec = registry[coll].item if coll else {}
    for literal, name, spec, conversion in parsed:
        if literal:
            pieces.append("{" + cc.const(literal) + "}")
        if name is None:
            continue
        offset = template.find("{" + name, search)
        search = max(offset, 0) + 1
        if not name.isidentifier() or conversion:
            at(offset, f"placeholder {{{name}}} must be a plain name such as {{merchant}}", "bad-value")
            continue
        if spec not in _FORMAT_SPECS:
            at(offset, f"unknown format '{spec}' in {{{name}:{spec}}}; use one of "
                       f"{', '.join(k for k in _FORMAT_SPECS if k)}", "bad-value")
            continue
        seen.add(name)
        if name in values:
            kind, code = values[name].typed.kind, f"_p_{name}"
        elif name in item_spec:
            kind, code = item_spec[name].type.value, f"_it[{name!r}]"
            fields.add(name)
        elif name in registry and registry[name].type != FeatureType.COLLECTION:
            kind, code = registry[name].type.value, cc.feature_var(name)
            used.add(name)
        else:
            names = [*values, *item_spec, *registry]
            close = difflib.get_close_matches(name, names, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else "; declare it under values:"
            at(offset, f"placeholder {{{name}}} names no value, item field or feature{hint}", "unknown-placeholder")
            continue
        if kind in ("collection", "item"):
            at(offset, f"placeholder {{{name}}} is a {kind}; show one of its fields", "type-mismatch")
            continue
        fmt = _FORMAT_SPECS[spec] or kind
        if fmt in ("money", "pct", "int", "number") and kind not in NUMERIC:
            at(offset, f"format '{spec}' needs a number, {{{name}}} is {kind}", "type-mismatch")
            continue
        # money renders inline (the hot path of most messages); the other kinds through their formatter
        pieces.append("{(" + code + "):,.2f}" if fmt == "money" else "{_fmt_" + fmt + "(" + code + ")}")
    for name in values:
        if name not in seen:
            key_node = next(k for k, _ in doc.nodes["values"].value if k.value == name)
            doc.issue(key_node, f"value '{name}' is never used in the message: remove it or add {{{name}}}",
                      "unused-placeholder")
    code = 'f"' + "".join(pieces) + '"'  # only generated fields: constants table entries and formatted values
    return code, frozenset(used), frozenset(fields)


# ---------------------------------------------------------------------- code generation
def _build(doc: RuleDoc, registry: Mapping[str, FeatureSpec], cc: ExprCompiler, coll: str | None,
           conjuncts: list[_Part], score: _Part, values: dict[str, _Part],
           message: tuple[str, frozenset[str], frozenset[str]], examples: tuple[Any, ...]) -> CompiledRule:
    d = doc.data
    rid, version = str(d["id"]), int(d["version"])
    vf = d.get("valid_from") if isinstance(d.get("valid_from"), date) else None
    vu = d.get("valid_until") if isinstance(d.get("valid_until"), date) else None
    msg_code, msg_used, _ = message
    body_used = score.used | msg_used | frozenset().union(*(p.used for p in values.values()))
    reads = set(body_used).union(*(p.used for p in conjuncts))
    if coll:
        reads.add(coll)
        cc.feature_var(coll)
    if vf or vu:
        reads.add("today")
        cc.feature_var("today")
    var = cc.feature_vars

    def load(names: set[str] | frozenset[str], loaded: set[str], indent: str) -> list[str]:
        out = [f"{indent}{var[x]} = _F[{x!r}]" for x in sorted(set(names) - loaded)]
        loaded.update(names)
        return out

    def ne(text: str) -> RuleOutcome:
        return RuleOutcome(rid, version, False, None, (), None, (Reason(text),), None)

    not_eligible = [ne(f"condition not met: {p.text}") for p in conjuncts]
    if coll:
        not_eligible = [ne(f"no {coll} item meets: " + " and ".join(p.text for p in conjuncts))]
    windows = [ne(f"rule valid from {vf}"), ne(f"rule valid until {vu}")]
    lines: list[str] = []  # the body of _evaluate, indented one level
    loaded: set[str] = set()
    if vf or vu:
        lines += load({"today"}, loaded, "    ")
        if vf:
            lines.append(f"    if {var['today']} < _VF: return _NW[0]")
        if vu:
            lines.append(f"    if {var['today']} > _VU: return _NW[1]")
    value_lines = [f"_p_{k} = {p.typed.code}" for k, p in values.items()]
    if coll is None:
        for i, p in enumerate(conjuncts):
            lines += load(p.used, loaded, "    ")
            lines.append(f"    if not {p.typed.code}: return _NE[{i}]")
        lines += load(body_used, loaded, "    ")
        lines.append(f"    _s = {score.typed.code}")
        lines.append("    if not 0.0 <= _s <= 1.0: _s = _check_score(_s)")
        lines += [f"    {v}" for v in value_lines]
        lines.append(f"    return _new(_O, (_RID, _VER, True, _s, (), {msg_code}, (), None))")
    else:
        key = registry[coll].key
        lines += load(reads, loaded, "    ")
        lines += ["    _items = []", "    _err = None", f"    for _it in {var[coll]}:", "        try:"]
        lines += [f"            if not {p.typed.code}: continue" for p in conjuncts]
        lines.append(f"            _s = {score.typed.code}")
        lines.append("            if not 0.0 <= _s <= 1.0: _s = _check_score(_s)")
        lines += [f"            {v}" for v in value_lines]
        lines.append(f"            _m = {msg_code}")
        lines += ["        except Exception as _e:", "            if _err is None: _err = _ItemError(_it, _e)",
                  "            continue", f"        _items.append(_new(_I, (_it[{key!r}], _s, _m)))",
                  "    if not _items:", "        if _err is not None: raise _err", "        return _NE[0]",
                  "    if len(_items) > 1: _items.sort(key=_by_score, reverse=True)", "    _top = _items[0]",
                  "    return _new(_O, (_RID, _VER, True, _top[1], tuple(_items), _top[2], (),"
                  " None if _err is None else _item_error_text(_err)))"]
    fast, consts = _fast_lines(registry, coll, var, conjuncts, score, values, msg_code, body_used, reads, vf, vu)
    # evaluate(features, explain=False): one frame on the hot path, the fast function (see fastpath.py); if
    # anything in it raises, the reference function below decides; explain and failures go to Python helpers
    lines = ["def _evaluate(_F, explain=False):", "    if explain: return _EXPLAIN(_F)", "    try:",
             *("        " + line for line in fast), "    except Exception:", "        return _reference(_F)",
             "def _reference(_F):", "    try:",
             *("    " + line for line in lines), "    except Exception as _e:", "        return _FAIL(_F, _e)"]
    # one function per condition, for explain mode
    for i, p in enumerate(conjuncts):
        lines.append(f"def _cond{i}(_F, _it):")
        lines += load(p.used, set(), "    ")
        lines.append(f"    return {p.typed.code}")
    code = "\n".join(lines) + "\n"
    ns: dict[str, Any] = {
        "__builtins__": {}, **RUNTIME, "Exception": Exception, "tuple": tuple, "len": len,
        "_K": tuple(cc.consts), "_O": RuleOutcome,
        "_I": ItemResult, "_new": tuple.__new__, "_NE": tuple(not_eligible), "_NW": tuple(windows),
        "_VF": vf, "_VU": vu, "_RID": rid, "_VER": version, "_ItemError": _ItemError,
        "_by_score": itemgetter(1), "_item_error_text": lambda e: _item_reason(registry, coll, e),
        **FAST_NAMES, **{f"_K{i}": cc.consts[i] for i in consts},
        **{f"_NE{i}": outcome for i, outcome in enumerate(not_eligible)}, "_NW0": windows[0], "_NW1": windows[1],
    }
    exec(compile(code, f"<rule {rid}>", "exec"), ns)  # noqa: S102 - source generated above, see module doc
    evaluate = ns["_evaluate"]
    cond_fns = [ns[f"_cond{i}"] for i in range(len(conjuncts))]
    ns["_FAIL"] = _make_failure(rid, version, registry, coll, sorted(reads))
    ns["_EXPLAIN"], reason_texts = _make_explain(evaluate, conjuncts, cond_fns, coll, registry)
    float_features, float_fields = _float_names(registry)
    plan = RulePlan(
        coll=coll, key=registry[coll].key if coll else None, conjuncts=tuple(p.typed.code for p in conjuncts),
        score=score.typed.code, values=tuple((k, p.typed.code) for k, p in values.items()), message=msg_code,
        feature_vars=dict(var), consts=tuple(cc.consts), not_eligible=tuple(not_eligible),
        windows=(windows[0], windows[1]), valid_from=vf, valid_until=vu,
        float_features=frozenset(name for name in var if name in float_features), float_fields=float_fields,
        reference=ns["_reference"])
    cooldown = parse_duration(d["cooldown"]) if d.get("cooldown") is not None else None
    return CompiledRule(
        id=rid, version=version, title=str(d["title"]), description=str(d.get("description") or ""),
        owner=str(d.get("owner") or ""), kind=str(d["kind"]), trigger=str(d["trigger"]), for_each=coll,
        reads=frozenset(reads), cooldown=cooldown, valid_from=vf, valid_until=vu, source=doc.text,
        filename=doc.file, examples=examples, code=code, evaluate=evaluate, plan=plan,
        reason_texts=reason_texts,
    )


def _fast_lines(registry: Mapping[str, FeatureSpec], coll: str | None, var: dict[str, str], conjuncts: list[_Part],
                score: _Part, values: dict[str, _Part], msg_code: str, body_used: frozenset[str], reads: set[str],
                vf: date | None, vu: date | None) -> tuple[list[str], set[int]]:
    """The fast function's body (unindented) and the constants it names: no error handling, see fastpath.py."""
    float_features, float_fields = _float_names(registry)
    gen = FastGen(in_loop=coll is not None, float_names=frozenset(v for k, v in var.items() if k in float_features),
                  float_fields=float_fields)
    lines: list[str] = []
    loaded: set[str] = set()

    def load(names: set[str] | frozenset[str], indent: str = "") -> None:
        lines.extend(f"{indent}{var[x]} = _F[{x!r}]" for x in sorted(set(names) - loaded))
        loaded.update(names)

    if vf or vu:
        load({"today"})
        if vf:
            lines.append(f"if {var['today']} < _VF: return _NW0")
        if vu:
            lines.append(f"if {var['today']} > _VU: return _NW1")
    body_codes = [score.typed.code, *(p.typed.code for p in values.values()), msg_code]
    gen.plan([*(p.typed.code for p in conjuncts), *body_codes])
    if coll is None:
        for i, p in enumerate(conjuncts):
            load(p.used)
            pre, (code,) = gen.segment([p.typed.code], "")
            lines += pre
            lines.append(f"if not {code}: return _NE{i}")
        load(body_used)
        pre, (s, *vals, msg) = gen.segment(body_codes, "")
        lines += pre
        lines.append(f"_s = {s}")
        lines.append("if not 0.0 <= _s <= 1.0: _s = _check_score(_s)")
        lines += [f"_p_{k} = {code}" for k, code in zip(values, vals, strict=True)]
        lines.append(f"return _new(_O, (_RID, _VER, True, _s, (), {msg}, (), None))")
        return lines, gen.consts
    load(reads)
    loop: list[str] = []
    for p in conjuncts:
        pre, (code,) = gen.segment([p.typed.code], "    ")
        loop += pre
        loop.append(f"    if not {code}: continue")
    pre, (s, *vals, msg) = gen.segment(body_codes, "    ")
    loop += pre
    loop.append(f"    _s = {s}")
    loop.append("    if not 0.0 <= _s <= 1.0: _s = _check_score(_s)")
    loop += [f"    _p_{k} = {code}" for k, code in zip(values, vals, strict=True)]
    # most evaluations find no item or one: no list for those (the outcome is the same as from a list of one)
    loop += [f"    _r = _new(_I, (_it[{registry[coll].key!r}], _s, {msg}))",
             "    if _first is None: _first = _r", "    elif _items is None: _items = [_first, _r]",
             "    else: _items.append(_r)"]
    lines += [line[4:] for line in gen.preloop]
    lines += ["_first = _items = None", f"for _it in {var[coll]}:", *loop,
              "if _first is None: return _NE0",
              "if _items is None: return _new(_O, (_RID, _VER, True, _first[1], (_first,), _first[2], (), None))",
              "_items.sort(key=_by_score, reverse=True)", "_top = _items[0]",
              "return _new(_O, (_RID, _VER, True, _top[1], tuple(_items), _top[2], (), None))"]
    return lines, gen.consts


def _float_names(registry: Mapping[str, FeatureSpec]) -> tuple[frozenset[str], frozenset[str]]:
    """(money/ratio features, item fields that are money/ratio in every collection): floats by contract."""
    floats = {FeatureType.MONEY, FeatureType.RATIO}
    fields: dict[str, set[FeatureType]] = {}
    for spec in registry.values():
        for name, fspec in spec.item.items():
            fields.setdefault(name, set()).add(fspec.type)
    return (frozenset(k for k, spec in registry.items() if spec.type in floats),
            frozenset(k for k, types in fields.items() if types <= floats))


def _item_reason(registry: Mapping[str, FeatureSpec], coll: str | None, err: _ItemError) -> str:
    item, cause = err.item, err.cause
    key = registry[coll].key if coll else None
    label = f"{coll} item '{item.get(key)}'" if isinstance(item, dict) and key else f"{coll} item"
    if isinstance(cause, KeyError):
        return f"{label} has no field '{cause.args[0]}'"
    if isinstance(item, dict):
        missing = [k for k, v in item.items() if v is None]
        if missing and isinstance(cause, TypeError | AttributeError):
            return f"{label}: field {missing[0]} has no value yet"
    return f"{label}: {type(cause).__name__}: {cause}"


def _make_failure(rid: str, version: int, registry: Mapping[str, FeatureSpec], coll: str | None,
                  order: list[str]) -> Callable[[Mapping[str, object], BaseException], RuleOutcome]:
    def failure(features: Mapping[str, object], exc: BaseException) -> RuleOutcome:
        error: str | None = None
        text = ""
        try:
            if isinstance(exc, _ItemError):
                text = _item_reason(registry, coll, exc)
                error = None if "has no value" in text else text
            elif isinstance(exc, KeyError) and exc.args and exc.args[0] in order:
                text = f"missing feature {exc.args[0]}"
            else:
                unknown = [name for name in order if name in features and features[name] is None]
                missing = [name for name in order if name not in features]
                if missing:
                    text = f"missing feature {missing[0]}"
                elif unknown and isinstance(exc, TypeError | AttributeError):
                    text = f"feature {unknown[0]} has no value yet"
                else:
                    text = error = f"{type(exc).__name__}: {exc}"
        except Exception as inner:  # noqa: BLE001 - a hostile mapping must not escape either
            text = error = f"{type(exc).__name__} while evaluating ({type(inner).__name__} while explaining)"
        return RuleOutcome(rid, version, False, None, (), None, (Reason(text),), error)

    return failure


def _make_explain(
    evaluate: Callable[..., RuleOutcome], conjuncts: list[_Part], cond_fns: list[Callable[..., object]],
    coll: str | None, registry: Mapping[str, FeatureSpec],
) -> tuple[Callable[[Mapping[str, object]], RuleOutcome], Callable[[Mapping[str, object], RuleOutcome, int], list[str]]]:
    """(explain, reason_texts): the full explanation, and only the first texts of the same reasons."""
    key = registry[coll].key if coll else None
    # per condition, worked out once: its function, the names it reads in order, and both verdict texts
    plans = [(part, fn, tuple(sorted(part.used)), tuple(sorted(part.fields)),
              f"{part.text}: holds", f"{part.text}: fails") for part, fn in zip(conjuncts, cond_fns, strict=True)]

    def read_values(features: Mapping[str, object], item: object, used: tuple[str, ...],
                    fields: tuple[str, ...]) -> dict[str, object]:
        out: dict[str, object] = {}
        for name in used:
            value = features.get(name, "<missing>")
            out[name] = f"<{len(value)} items>" if isinstance(value, list) else value
        if isinstance(item, dict):
            for f in fields:
                out[f"item.{f}"] = item.get(f, "<missing>")
        return out

    def verdicts(features: Mapping[str, object], item: object) -> Iterator[tuple[Any, object, bool]]:
        """(plan, value, passed) per condition, up to and including the first that fails."""
        for plan in plans:
            try:
                value: object = plan[1](features, item)
                passed = bool(value)
            except Exception as exc:  # noqa: BLE001
                value, passed = f"error: {type(exc).__name__}: {exc}", False
            yield plan, value, passed
            if not passed:
                return

    def steps(features: Mapping[str, object], item: object, label: str | None) -> list[Reason]:
        return [Reason(holds if passed else fails, part.text, value, passed,
                       read_values(features, item, used, fields), label)
                for (part, _fn, used, fields, holds, fails), value, passed in verdicts(features, item)]

    def explain(features: Mapping[str, object]) -> RuleOutcome:
        outcome = evaluate(features)
        reasons: list[Reason] = []
        try:
            if coll is None:
                reasons = steps(features, None, None)
            else:
                items = features.get(coll)
                if isinstance(items, list):
                    for item in items[:_MAX_EXPLAIN_ITEMS]:
                        label = str(item.get(key)) if isinstance(item, dict) and key else None
                        reasons += steps(features, item, label)
        except Exception as exc:  # noqa: BLE001
            reasons.append(Reason(f"explain stopped: {type(exc).__name__}"))
        return outcome._replace(reasons=tuple(reasons) + outcome.reasons)

    def step_texts(features: Mapping[str, object], item: object, out: list[str]) -> None:
        out += (plan[4] if passed else plan[5] for plan, _value, passed in verdicts(features, item))

    def reason_texts(features: Mapping[str, object], outcome: RuleOutcome, limit: int) -> list[str]:
        """The texts of ``explain(features).reasons``, first ``limit`` of them, for ``outcome`` (this rule's
        result for ``features``): without the values read, the per-condition records or a second evaluation.
        A score keeps only these (core.scoring.score_value), and explaining every changed score in full was
        a seventh of a next-night sweep's evaluation time."""
        texts: list[str] = []
        try:
            if coll is None:
                step_texts(features, None, texts)
            else:
                items = features.get(coll)
                if isinstance(items, list):
                    for item in items[:_MAX_EXPLAIN_ITEMS]:
                        if len(texts) >= limit:
                            break
                        step_texts(features, item, texts)
        except Exception as exc:  # noqa: BLE001
            texts.append(f"explain stopped: {type(exc).__name__}")
        texts += (r.text for r in outcome.reasons[: max(0, limit - len(texts))])
        return texts[:limit]

    return explain, reason_texts
