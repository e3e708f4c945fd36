"""The OpenAPI 3.1 document of the HTTP API, served at ``/openapi.json``.

Written by hand next to the routes (``streams/web/api.py``) and kept true by tests: one compares the
app's routes and methods with ``paths``, and schemathesis sends generated requests built from this document
against the app and checks the answers match it (and are never 5xx).
"""

from __future__ import annotations

import copy
import functools
from typing import Any

__all__ = ["openapi_document"]

_CUSTOMER_ID = {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$",
                "description": "nudgestream customer id"}
_RULE_ID = {"type": "string", "pattern": r"^[a-z][a-z0-9_]{2,63}$", "description": "rule id"}
_SWEEP_ID = {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9_.:#-]{0,127}$"}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int) -> dict[str, Any]:
    return {str(s): {"$ref": f"#/components/responses/E{s}"} for s in statuses}


_AUTH = (401, 403, 429)
_SECURED: list[dict[str, list[str]]] = [{"bearer": []}, {"apiKey": []}]


def _op(summary: str, scope: str | None, responses: dict[str, Any], *, errors: tuple[int, ...] = (),
        description: str = "", **extra: Any) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "responses": responses | _errors(*errors)}
    if description:
        op["description"] = description
    if scope is not None:
        op["security"] = _SECURED
        op["x-required-scope"] = scope
        op["responses"] |= _errors(*_AUTH)
        op["description"] = (description + "\n\n" if description else "") + f"Requires scope `{scope}` (or `admin`)."
    op.update(extra)
    return op


def _path_param(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema}


def _rule_source_body(description: str) -> dict[str, Any]:
    return {
        "required": True,
        "description": description + " As JSON `{\"source\": ...}`, or the YAML text itself as the raw "
                                     "body (text/plain; application/yaml is read the same way).",
        "content": {
            "application/json": {"schema": {"type": "object", "required": ["source"],
                                            "properties": {"source": {"type": "string", "minLength": 1}}}},
            "text/plain": {"schema": {"type": "string", "minLength": 1}},
        },
    }


_SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object", "required": ["error"],
        "properties": {"error": {"type": "object", "required": ["code", "message"], "properties": {
            "code": {"type": "string"}, "message": {"type": "string"}, "field": {"type": "string"}}}},
    },
    "ValidationIssue": {
        "type": "object", "required": ["line", "column", "message", "code"],
        "properties": {"line": {"type": "integer"}, "column": {"type": "integer"},
                       "message": {"type": "string"}, "code": {"type": "string"}},
    },
    "RuleErrors": {
        "allOf": [_ref("Error"), {"type": "object", "properties": {
            "errors": {"type": "array", "items": _ref("ValidationIssue")}}}],
    },
    "ScoreRequest": {
        "type": "object", "required": ["customer_id", "rule_id"],
        "properties": {"customer_id": _CUSTOMER_ID, "rule_id": _RULE_ID},
    },
    "Item": {"type": "object", "properties": {"key": {"type": "string"}, "score": {"type": ["number", "null"]},
                                              "message": {"type": ["string", "null"]}}},
    "Score": {
        "type": "object",
        "required": ["customer_id", "rule_id", "rule_version", "eligible", "score", "message", "items", "reasons"],
        "properties": {
            "customer_id": {"type": "string"}, "rule_id": {"type": "string"},
            "rule_version": {"type": ["integer", "null"]}, "eligible": {"type": "boolean"},
            "score": {"type": ["number", "null"]}, "message": {"type": ["string", "null"]},
            "items": {"type": "array", "items": _ref("Item")},
            "reasons": {"type": "array", "items": {"type": "object"},
                        "description": "Why (not) eligible: each with `text`, and in explain form the "
                                       "condition, its value and the features read."},
        },
    },
    "Insight": {
        "type": "object", "required": ["rule_id", "eligible"],
        "properties": {
            "customer_id": {"type": "string"}, "rule_id": {"type": "string"},
            "rule_version": {"type": ["integer", "null"]}, "eligible": {"type": "boolean"},
            "score": {"type": ["number", "null"]}, "message": {"type": ["string", "null"]},
            "reasons": {"type": "array"}, "items": {"type": "array"},
            "evaluated_at": {"type": ["string", "null"], "format": "date-time"},
            "sweep_id": {"type": ["string", "null"]}, "transaction_id": {"type": ["string", "null"]},
        },
    },
    "InsightsPage": {
        "type": "object", "required": ["customer_id", "insights", "next_cursor"],
        "properties": {"customer_id": {"type": "string"}, "insights": {"type": "array", "items": _ref("Insight")},
                       "next_cursor": {"type": ["string", "null"],
                                       "description": "Pass as `cursor` for the next page; null on the last."}},
    },
    "Validation": {
        "type": "object", "required": ["valid", "errors"],
        "properties": {"valid": {"type": "boolean"}, "errors": {"type": "array", "items": _ref("ValidationIssue")},
                       "rule": {"type": "object", "description": "The compiled rule's summary when valid."}},
    },
    "RuleVersion": {
        "type": "object", "required": ["rule_id", "version", "deleted"],
        "properties": {"rule_id": {"type": "string"}, "version": {"type": "integer"},
                       "deleted": {"type": "boolean"}, "published_at": {"type": ["string", "null"]},
                       "author": {"type": ["string", "null"]}, "title": {"type": ["string", "null"]},
                       "kind": {"type": ["string", "null"]}, "trigger": {"type": ["string", "null"]}},
    },
    "RuleDetail": {
        "allOf": [_ref("RuleVersion"), {"type": "object", "required": ["history"], "properties": {
            "source": {"type": ["string", "null"]},
            "history": {"type": "array", "items": _ref("RuleVersion"),
                        "description": "Versions still on the compacted `rules` topic, oldest first. "
                                       "Compaction keeps only the latest record of a rule once its segment "
                                       "is cleaned, so older versions may be missing."},
            "history_complete": {"type": "boolean"}}}],
    },
    "Published": {
        "type": "object", "required": ["rule_id", "version"],
        "properties": {"rule_id": {"type": "string"}, "version": {"type": "integer"},
                       "previous_version": {"type": ["integer", "null"]},
                       "published_at": {"type": ["string", "null"]}, "unchanged": {"type": "boolean"}},
    },
    "BacktestRequest": {
        "type": "object", "required": ["source"],
        "properties": {"source": {"type": "string", "minLength": 1},
                       "customers": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100,
                                     "description": "Simulated customers (about 0.2 s each)."},
                       "days": {"type": "integer", "minimum": 30, "maximum": 400, "default": 180,
                                "description": "Days of simulated history per customer."},
                       "seed": {"type": "integer", "minimum": 0, "maximum": 2147483647, "default": 42}},
    },
    "Backtest": {
        "type": "object", "required": ["customers", "fired", "hit_rate", "histogram"],
        "properties": {
            "customers": {"type": "integer"},
            "fired": {"type": "integer", "description": "Customers it was eligible for at least once."},
            "hit_rate": {"type": "number"},
            "evaluations": {"type": "integer", "description": "Evaluations (each customer's last 30 day-ends)."},
            "eligible_evaluations": {"type": "integer"},
            "overlap": {"type": "array", "items": {"type": "object"},
                        "description": "Live rules most often eligible together with this one."},
            "histogram": {"type": "array", "items": {"type": "object", "required": ["low", "high", "count"],
                          "properties": {"low": {"type": "number"}, "high": {"type": "number"},
                                         "count": {"type": "integer"}}}},
        },
    },
    "SweepRequest": {
        "type": "object",
        "properties": {"rules": {"type": ["array", "null"], "items": _RULE_ID,
                                 "description": "Rule ids to evaluate; empty, null or absent: every rule."},
                       "dry_run": {"type": "boolean", "default": False}},
    },
    "Sweep": {
        "type": "object", "required": ["sweep_id"],
        "properties": {"sweep_id": {"type": "string"}, "total": {"type": ["integer", "null"]},
                       "customers": {"type": "integer"}, "evaluations": {"type": "integer"},
                       "done": {"type": "boolean"}, "eta_seconds": {"type": ["number", "null"]}},
    },
    "Erasure": {
        "type": "object", "required": ["customer_id", "event_id", "items", "rules"],
        "properties": {"customer_id": {"type": "string"}, "event_id": {"type": "string"},
                       "items": {"type": "array", "items": {"type": "object"},
                                 "description": "The DynamoDB items that will be deleted."},
                       "rules": {"type": "array", "items": {"type": "string"},
                                 "description": "Rules the customer had scores for."}},
    },
    "Readiness": {
        "type": "object", "required": ["ready", "checks", "failing"],
        "properties": {"ready": {"type": "boolean"}, "failing": {"type": "array", "items": {"type": "string"}},
                       "checks": {"type": "object", "additionalProperties": {
                           "type": "object", "properties": {"ok": {"type": "boolean"},
                                                            "detail": {"type": "string"}}}}},
    },
}

_RESPONSES: dict[str, Any] = {
    f"E{s}": _json(_ref("Error"), d) for s, d in {
        400: "Malformed request; `error.field` names the part at fault.",
        401: "Missing or unknown API key.",
        403: "The key lacks the scope, or may not act for this customer.",
        404: "Not found.",
        413: "Request body too large.",
        415: "Unsupported Content-Type.",
        422: "Invalid value; `error.field` names it.",
        429: "Rate limited; retry after the Retry-After header's seconds.",
        503: "A store did not answer; retry later.",
    }.items()
}


def _paths() -> dict[str, Any]:
    cid = _path_param("customer_id", _CUSTOMER_ID)
    rid = _path_param("rule_id", _RULE_ID)
    return {
        "/v1/score": {"post": _op(
            "Score one rule for one customer now", "score",
            {"200": _json(_ref("Score"), "The outcome from the customer's current features.")},
            errors=(400, 404, 413, 415, 422, 503),
            requestBody={"required": True, "content": {"application/json": {"schema": _ref("ScoreRequest")}}},
            description="Any worker answers: the lookup is routed to the worker owning the customer.")},
        "/v1/customers/{customer_id}/insights": {"get": _op(
            "The customer's current insights, best first", "insights:read",
            {"200": _json(_ref("InsightsPage"), "One page, ranked by score (highest first).")},
            errors=(400, 503),
            parameters=[cid,
                        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1,
                                                                     "maximum": 100, "default": 20}},
                        {"name": "cursor", "in": "query", "schema": {"type": "string"}},
                        {"name": "include_ineligible", "in": "query",
                         "schema": {"type": "boolean", "default": False}}])},
        "/v1/customers/{customer_id}": {"delete": _op(
            "Erase a customer (right to erasure)", "customers:erase",
            {"202": _json(_ref("Erasure"), "Erasure published; features, scores and DynamoDB items follow.")},
            errors=(400, 503), parameters=[cid])},
        "/v1/rules:validate": {"post": _op(
            "Validate a rule without publishing it", "rules:write",
            {"200": _json(_ref("Validation"), "Whether it is valid, with every error's line and column.")},
            errors=(400, 413, 415, 422), requestBody=_rule_source_body("The rule's YAML."))},
        "/v1/rules:backtest": {"post": _op(
            "Backtest a draft rule over simulated customers", "rules:write",
            {"200": _json(_ref("Backtest"), "How many customers it fires for and the score distribution.")},
            errors=(400, 413, 415, 422, 503),
            requestBody={"required": True, "content": {"application/json": {"schema": _ref("BacktestRequest")}}})},
        "/v1/rules": {
            "post": _op("Publish a new version of a rule", "rules:write",
                        {"201": _json(_ref("Published"), "Published as the latest version + 1."),
                         "200": _json(_ref("Published"), "Identical to the latest version: nothing published "
                                                         "(`unchanged: true`).")},
                        errors=(400, 413, 415, 422, 503), requestBody=_rule_source_body("The rule's YAML."),
                        description="The version is the latest published + 1 (the YAML's `version` is set "
                                    "to it); an invalid rule is refused with 422 and its errors."),
            "get": _op("List rules (latest versions)", "rules:write",
                       {"200": _json({"type": "object", "required": ["rules"], "properties": {
                           "rules": {"type": "array", "items": _ref("RuleVersion")}}}, "The rules.")},
                       errors=(400, 503),
                       parameters=[{"name": "include_deleted", "in": "query",
                                    "schema": {"type": "boolean", "default": False}}]),
        },
        "/v1/rules/{rule_id}": {
            "get": _op("A rule with its version history", "rules:write",
                       {"200": _json(_ref("RuleDetail"), "The latest version, its source and history.")},
                       errors=(400, 404, 503), parameters=[rid]),
            "delete": _op("Withdraw a rule", "rules:write",
                          {"200": _json(_ref("RuleVersion"), "The deletion, published as a new version.")},
                          errors=(400, 404, 503), parameters=[rid]),
        },
        "/v1/sweeps": {
            "post": _op("Start a sweep of every active customer", "sweeps:run",
                        {"202": _json(_ref("Sweep"), "Sweep requests published.")},
                        errors=(400, 413, 415, 422, 503),
                        requestBody={"required": False,
                                     "content": {"application/json": {"schema": _ref("SweepRequest")}}}),
            "get": _op("List sweeps", "sweeps:run",
                       {"200": _json({"type": "object", "required": ["sweeps"], "properties": {
                           "sweeps": {"type": "array", "items": _ref("Sweep")}}}, "Every sweep on record.")},
                       errors=(503,)),
        },
        "/v1/sweeps/{sweep_id}": {"get": _op(
            "A sweep's progress", "sweeps:run",
            {"200": _json(_ref("Sweep"), "Customers done of total, evaluations, ETA.")},
            errors=(400, 404, 503), parameters=[_path_param("sweep_id", _SWEEP_ID)])},
        "/healthz": {"get": _op("Liveness", None, {"200": _json({"type": "object"}, "The process is up.")})},
        "/readyz": {"get": _op("Readiness", None, {
            "200": _json(_ref("Readiness"), "Ready."),
            "503": _json(_ref("Readiness"), "Not ready; `failing` lists the checks that failed.")})},
        "/metrics": {"get": _op("Prometheus metrics", None, {"200": {
            "description": "Prometheus text exposition format.",
            "content": {"text/plain": {"schema": {"type": "string"}}}}})},
        "/openapi.json": {"get": _op("This document", None, {"200": _json({"type": "object"}, "OpenAPI 3.1.")})},
    }


def _optional_paths() -> dict[str, Any]:
    """Endpoints other modules mount on the same app; documented only when mounted."""
    refused = {"allOf": [_ref("Error"), {"type": "object", "properties": {
        "accepted": {"type": "integer"},
        "errors": {"type": "array", "items": {"type": "object", "required": ["index", "field", "reason"],
                                              "properties": {"index": {"type": "integer"},
                                                             "field": {"type": "string"},
                                                             "reason": {"type": "string"}}}}}}]}
    return {
        "/v1/customers/{customer_id}/transactions": {"post": {
            "summary": "Deliver open-banking transactions for a customer (streams/web/ingest.py)",
            "description": "One OB transaction object, `{\"Data\": {\"Transaction\": [...]}}` or a list. A batch "
                           "is all-or-nothing: any invalid item refuses the whole batch with 422 and per-item "
                           "errors (`index`, `field`, `reason`). Requires scope `transactions:write`.",
            "security": _SECURED,
            "x-required-scope": "transactions:write",
            "parameters": [_path_param("customer_id", _CUSTOMER_ID)],
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": {"type": ["object", "array"]}}}},
            "responses": {
                "202": _json({"type": "object", "required": ["accepted", "items"],
                              "properties": {"accepted": {"type": "integer"}, "items": {"type": "array"}}},
                             "Every transaction acknowledged by Kafka."),
                **_errors(400, 401, 403, 413, 415, 503),
                "422": _json(refused, "Invalid items; nothing was accepted. `errors` lists each one."),
                "429": {"$ref": "#/components/responses/E429"},
            },
        }},
    }


def openapi_document(served: set[tuple[str, str]] | None = None,
                     extra_paths: dict[str, Any] | None = None) -> dict[str, Any]:
    """A fresh copy of the document (callers may change it).

    :param served: ``(METHOD, path)`` of the app's routes: optional endpoints (the ingestion endpoint)
        are documented only when the app serves them.
    :param extra_paths: more path items, for endpoints mounted through ``extra_routes``.
    """
    doc = copy.deepcopy(_document())
    for path, ops in _optional_paths().items():
        mounted = {m: op for m, op in ops.items() if served is not None and (m.upper(), path) in served}
        if mounted:
            doc["paths"][path] = mounted
    doc["paths"].update(copy.deepcopy(extra_paths or {}))
    return doc


@functools.cache
def _document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "nudgestream API",
            "version": "1.0.0",
            "description": (
                "Real-time insights for open banking: scores, insights, rules, sweeps, erasure.\n\n"
                "Every error is `{\"error\": {\"code\", \"message\", \"field\"?}}`; `field` names the part "
                "of the request at fault.\n\n"
                "Access: an API key as `Authorization: Bearer <key>` or `X-API-Key: <key>`. Keys carry scopes "
                "(`insights:read`, `score`, `rules:write`, `sweeps:run`, `customers:erase`, "
                "`transactions:write`; `admin` implies all) and may be limited to some customers, in which "
                "case another customer's data answers 403. Servers keep only SHA-256 hashes of keys, in "
                "the JSON file named by `NUDGE_API_KEYS_FILE` (`{\"<sha256>\": {\"name\", \"scopes\", "
                "\"customers\"}}`, written by `nudge apikey create --name N --scopes a,b [--customers c1,c2]`) "
                "or in `NUDGE_API_KEYS`. Each key has its own rate limit (429 with Retry-After)."
            ),
        },
        "servers": [{"url": "/"}],
        "paths": _paths(),
        "components": {
            "schemas": _SCHEMAS,
            "responses": _RESPONSES,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "Authorization: Bearer <key>"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            },
        },
    }

