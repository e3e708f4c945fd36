"""Every schema against its previous released version: structural rules plus fastavro's real resolution."""

from __future__ import annotations

import copy
import io
from typing import Any

import fastavro
import pytest

from schemas.codec import RELEASED_DIR, SCHEMA_DIR, Codec, load_schema_files
from schemas.compat import compatibility_problems, sample_records

CURRENT = {s["name"]: s for s in load_schema_files(SCHEMA_DIR)}
RELEASED = {s["name"]: s for s in load_schema_files(RELEASED_DIR)}
EXPECTED = {"Transaction", "Balance", "CustomerLifecycle", "RuleChange", "SweepRequest", "Score", "Alert"}


def test_every_topic_schema_exists_and_has_a_released_version() -> None:
    assert set(CURRENT) == EXPECTED
    assert set(RELEASED) == EXPECTED


def _docs_missing(schema: Any, path: str) -> list[str]:
    out: list[str] = []
    if isinstance(schema, list):
        for s in schema:
            out += _docs_missing(s, path)
    elif isinstance(schema, dict):
        if schema.get("type") == "record":
            for f in schema["fields"]:
                if not f.get("doc"):
                    out.append(f"{path}.{f['name']}")
                out += _docs_missing(f["type"], f"{path}.{f['name']}")
        elif schema.get("type") == "array":
            out += _docs_missing(schema["items"], path)
    return out


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_schema_has_namespace_and_docs_on_every_field(name: str) -> None:
    schema = CURRENT[name]
    assert schema["namespace"] == "io.nudgestream.v1"
    assert schema.get("doc")
    assert _docs_missing(schema, name) == []


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_current_schema_is_backward_compatible_with_released(name: str) -> None:
    assert compatibility_problems(RELEASED[name], CURRENT[name]) == []


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_released_data_resolves_into_current_schema(name: str) -> None:
    writer = fastavro.parse_schema(copy.deepcopy(RELEASED[name]), named_schemas={})
    reader = fastavro.parse_schema(copy.deepcopy(CURRENT[name]), named_schemas={})
    samples = sample_records(RELEASED[name])
    assert samples
    for record in samples:
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, writer, record)
        buf.seek(0)
        read = fastavro.schemaless_reader(buf, writer, reader)
        assert isinstance(read, dict)
        assert set(read) >= {f["name"] for f in CURRENT[name]["fields"]}


def _v2(extra_field: dict[str, Any]) -> dict[str, Any]:
    schema = copy.deepcopy(CURRENT["Transaction"])
    schema["fields"].append(extra_field)
    return schema


def test_checker_refuses_new_field_without_default() -> None:
    bad = _v2({"name": "category", "type": "string", "doc": "x"})
    assert compatibility_problems(RELEASED["Transaction"], bad) == ["Transaction.category: new field without a default"]
    good = _v2({"name": "category", "type": ["null", "string"], "default": None, "doc": "x"})
    assert compatibility_problems(RELEASED["Transaction"], good) == []


def test_checker_refuses_narrowing_and_kind_changes() -> None:
    old: dict[str, Any] = {"type": "record", "name": "R", "fields": [{"name": "n", "type": "long"}, {"name": "s", "type": "string"}]}
    narrowed = copy.deepcopy(old)
    narrowed["fields"][0]["type"] = "int"
    assert compatibility_problems(old, narrowed) == ["R.n: type changed from long to int (only widening is allowed)"]
    widened = copy.deepcopy(old)
    widened["fields"][0]["type"] = "double"
    assert compatibility_problems(old, widened) == []
    changed = copy.deepcopy(old)
    changed["fields"][1]["type"] = {"type": "array", "items": "string"}
    assert compatibility_problems(old, changed) == ["R.s: type changed from string to array (only widening is allowed)"]


def test_checker_refuses_removed_enum_symbol_unless_defaulted() -> None:
    schema = copy.deepcopy(CURRENT["SweepRequest"])
    reason = next(f for f in schema["fields"] if f["name"] == "reason")
    reason["type"]["symbols"] = ["nightly", "manual"]
    problems = compatibility_problems(RELEASED["SweepRequest"], schema)
    assert problems == ["SweepRequest.reason: enum symbols removed without a default: rule_change"]
    reason["type"]["default"] = "manual"
    assert compatibility_problems(RELEASED["SweepRequest"], schema) == []


def test_checker_refuses_dropping_a_union_branch_the_writer_used() -> None:
    schema = copy.deepcopy(CURRENT["Transaction"])
    ref = next(f for f in schema["fields"] if f["name"] == "TransactionReference")
    ref["type"] = "string"
    del ref["default"]
    problems = compatibility_problems(RELEASED["Transaction"], schema)
    assert problems == ["Transaction.TransactionReference: type changed from null to string (only widening is allowed)"]


def test_checker_refuses_record_rename_without_alias() -> None:
    schema = copy.deepcopy(CURRENT["Transaction"])
    schema["name"] = "Txn"
    assert compatibility_problems(RELEASED["Transaction"], schema) == [
        "Txn: named type renamed from Transaction to Txn without an alias"
    ]
    schema["aliases"] = ["Transaction"]
    assert compatibility_problems(RELEASED["Transaction"], schema) == []


def test_sample_records_cover_every_enum_symbol() -> None:
    samples = sample_records(CURRENT["Transaction"])
    assert {r["Status"] for r in samples} == {"Booked", "Pending", "Rejected"}
    assert {r["CreditDebitIndicator"] for r in samples} == {None, "Credit", "Debit"}
    codec = Codec([CURRENT["Transaction"]])
    for r in samples:
        assert codec.decode(codec.encode("Transaction", r)) == r
