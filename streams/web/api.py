"""The HTTP API of nudgestream: scores, insights, rules, sweeps, erasure, health and metrics.

:func:`create_api` builds the one aiohttp application a worker serves. This module does HTTP only: access
control (``streams/web/auth.py``: API keys, scopes, customer restrictions), per-key rate limits
(``streams/web/limits.py``), input checks and error shapes; data comes from an
:class:`~streams.web.api_backend.ApiBackend`.

Every error is JSON ``{"error": {"code", "message", "field"?}}`` (``field`` names the part of the request
at fault): 400 malformed body or parameter, 401 no/unknown key, 403 scope or customer not allowed, 404
unknown customer/rule/sweep or route, 405 method, 413 body too large, 415 media type, 422 invalid value or
rule, 429 rate limited (``Retry-After``), 503 a store did not answer (``Retry-After``). ``/healthz``,
``/readyz``, ``/metrics`` and ``/openapi.json`` need no key (bind the port to loopback or a private
network).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest

from core.rules import CompiledRule, RuleValidationError, compile_rule
from streams.web.api_backend import ApiBackend, ApiError, Check
from streams.web.auth import API_KEYS, AccessDenied, ApiKey, ApiKeyStore, authenticate, check_access
from streams.web.limits import RateLimit, RateLimiter

__all__ = ["BACKEND", "ROUTES", "Route", "create_api"]

log = logging.getLogger(__name__)

BACKEND = web.AppKey("api_backend", ApiBackend)
LIMITER = web.AppKey("api_rate_limiter", RateLimiter)
EXTRA_OPENAPI = web.AppKey("api_extra_openapi", dict)

CUSTOMER_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")
RULE_ID_RE = re.compile(r"[a-z][a-z0-9_]{2,63}")
SWEEP_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:#-]{0,127}")
MAX_RULE_SOURCE = 64 * 1024
MAX_BACKTEST_CUSTOMERS = 1000
MAX_PAGE = 100
READINESS_TIMEOUT_S = 5.0

REQUESTS = Counter("nudge_api_requests_total", "HTTP API requests, per route and status.",
                   ["method", "route", "status"])
LATENCY = Histogram("nudge_api_request_seconds", "HTTP API request latency, per route.", ["method", "route"],
                    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class Route:
    """One endpoint: ``scope`` None means public; ``customer_param`` names the path parameter holding
    the customer id the key must be allowed for; ``all_customers`` refuses keys restricted to customers."""

    method: str
    path: str
    handler: Handler
    scope: str | None
    customer_param: str | None = None
    all_customers: bool = False


# -- helpers ----------------------------------------------------------------------------------------------

def _fail(status: int, code: str, message: str, field: str | None = None, **extra: Any) -> ApiError:
    return ApiError(status, code, message, field=field, extra=extra)


def _error_response(status: int, code: str, message: str, field: str | None = None,
                    extra: Mapping[str, Any] | None = None, headers: Mapping[str, str] | None = None
                    ) -> web.Response:
    error: dict[str, Any] = {"code": code, "message": message}
    if field is not None:
        error["field"] = field
    return web.json_response({"error": error, **(extra or {})}, status=status, headers=headers)


async def _json_object(request: web.Request, *, optional: bool = False) -> dict[str, Any]:
    """The body as a JSON object (400/413/415 otherwise); ``{}`` for an empty optional body."""
    raw = await request.read()
    if not raw.strip() and optional:
        return {}
    if request.content_type != "application/json":
        raise _fail(415, "unsupported_media_type", "send Content-Type: application/json", "Content-Type")
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _fail(400, "malformed_json", f"body is not valid JSON: {exc}", "$") from exc
    if not isinstance(body, dict):
        raise _fail(400, "bad_shape", "body must be a JSON object", "$")
    return body


def _string_field(body: Mapping[str, Any], name: str, pattern: re.Pattern[str], what: str) -> str:
    value = body.get(name)
    if value is None:
        raise _fail(422, "missing_field", f"{name} is required", name)
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise _fail(422, "invalid_field", f"{name} must be {what}", name)
    return value


def _int_field(body: Mapping[str, Any], name: str, default: int, low: int, high: int) -> int:
    value = body.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _fail(422, "invalid_field", f"{name} must be a whole number from {low} to {high}", name)
    return value


def _path_id(request: web.Request, name: str, pattern: re.Pattern[str], what: str) -> str:
    value = request.match_info[name]
    if not pattern.fullmatch(value):
        raise _fail(400, f"invalid_{name}", f"{name} must be {what}", name)
    return value


CUSTOMER_WHAT = "1-64 characters: letters, digits, '_', '.', ':' or '-', starting with a letter or digit"
RULE_WHAT = "3-64 characters of lower-case letters, digits and _, starting with a letter"


def _int_query(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _fail(400, "invalid_parameter", f"{name} must be a whole number", name) from None
    if not low <= value <= high:
        raise _fail(400, "invalid_parameter", f"{name} must be between {low} and {high}", name)
    return value


def _bool_query(request: web.Request, name: str) -> bool:
    raw = request.query.get(name, "false").lower()
    if raw in ("true", "1", "yes"):
        return True
    if raw in ("false", "0", "no"):
        return False
    raise _fail(400, "invalid_parameter", f"{name} must be true or false", name)


async def _rule_source(request: web.Request, body: Mapping[str, Any] | None = None) -> str:
    """The YAML text of a rule: the raw body (text/yaml, text/plain) or ``source`` of a JSON body."""
    if body is None and request.content_type != "application/json":
        raw = await request.read()
        try:
            source = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise _fail(400, "malformed_body", "the rule source must be UTF-8 text", "$") from None
        field = "$"
    else:
        if body is None:
            body = await _json_object(request)
        source = body.get("source")  # type: ignore[assignment]
        field = "source"
        if source is None:
            raise _fail(422, "missing_field", "source (the rule's YAML text) is required", field)
        if not isinstance(source, str):
            raise _fail(422, "invalid_field", "source must be a string holding the rule's YAML", field)
    if not source.strip():
        raise _fail(422, "missing_field", "the rule source is empty", field)
    if len(source.encode()) > MAX_RULE_SOURCE:
        raise _fail(413, "too_large", f"a rule source is at most {MAX_RULE_SOURCE} bytes", field)
    return source


def _issues(exc: RuleValidationError) -> list[dict[str, Any]]:
    return [{"line": e.line, "column": e.column, "message": e.message, "code": e.code} for e in exc.errors]


def _check_sync(source: str, run_examples: bool) -> tuple[CompiledRule | None, list[dict[str, Any]]]:
    from core.rules.examples import run_examples as examples_of

    try:
        rule = compile_rule(source, "<request>")
    except RuleValidationError as exc:
        return None, _issues(exc)
    if not run_examples:
        return rule, []
    failing = [{"line": r.line, "column": 1, "code": "example-failed",
                "message": f"example '{r.example}' fails: {'; '.join(r.problems)}"}
               for r in examples_of(rule) if not r.passed]
    return rule, failing


async def _check(source: str, *, run_examples: bool = True) -> tuple[CompiledRule | None, list[dict[str, Any]]]:
    """Compile (and run the rule's own examples) off the event loop: the rule, and every problem found.
    A rule whose examples fail is not publishable, so validation reports them as errors too."""
    return await asyncio.to_thread(_check_sync, source, run_examples)


def _backend(request: web.Request) -> ApiBackend:
    return request.app[BACKEND]


def _key(request: web.Request) -> ApiKey:
    return authenticate(request)


def _check_customer(request: web.Request, customer_id: str) -> None:
    if not _key(request).may_access(customer_id):
        raise AccessDenied(403, "forbidden_customer", "this API key may not act for this customer")


# -- handlers ---------------------------------------------------------------------------------------------

async def post_score(request: web.Request) -> web.Response:
    body = await _json_object(request)
    customer_id = _string_field(body, "customer_id", CUSTOMER_ID_RE, CUSTOMER_WHAT)
    rule_id = _string_field(body, "rule_id", RULE_ID_RE, RULE_WHAT)
    _check_customer(request, customer_id)
    outcome = await _backend(request).score(customer_id, rule_id)
    return web.json_response({
        "customer_id": customer_id,
        "rule_id": rule_id,
        "rule_version": outcome.get("rule_version"),
        "eligible": bool(outcome.get("eligible")),
        "score": outcome.get("score"),
        "message": outcome.get("message"),
        "items": list(outcome.get("items") or []),
        "reasons": list(outcome.get("reasons") or []),
    })


async def get_insights(request: web.Request) -> web.Response:
    customer_id = _path_id(request, "customer_id", CUSTOMER_ID_RE, CUSTOMER_WHAT)
    limit = _int_query(request, "limit", 20, 1, MAX_PAGE)
    cursor = request.query.get("cursor") or None
    include_ineligible = _bool_query(request, "include_ineligible")
    page = await _backend(request).insights(customer_id, limit=limit, cursor=cursor,
                                            include_ineligible=include_ineligible)
    return web.json_response({"customer_id": customer_id, "insights": list(page.items),
                              "next_cursor": page.next_cursor, **page.extra})


async def delete_customer(request: web.Request) -> web.Response:
    customer_id = _path_id(request, "customer_id", CUSTOMER_ID_RE, CUSTOMER_WHAT)
    result = await _backend(request).erase_customer(customer_id, requested_by=_key(request).name)
    return web.json_response(result, status=202)


async def post_validate(request: web.Request) -> web.Response:
    source = await _rule_source(request)
    rule, issues = await _check(source)
    body: dict[str, Any] = {"valid": not issues, "errors": issues}
    if rule is not None:
        body["rule"] = rule.describe()
    return web.json_response(body)


async def post_rule(request: web.Request) -> web.Response:
    source = await _rule_source(request)
    rule, issues = await _check(source)
    if rule is None or issues:
        raise _fail(422, "invalid_rule", f"the rule has {len(issues)} error(s); nothing was published",
                    "source", errors=issues)
    result = await _backend(request).publish_rule(rule, _key(request).name)
    return web.json_response(result, status=200 if result.get("unchanged") else 201)


async def get_rules(request: web.Request) -> web.Response:
    rules = await _backend(request).list_rules(include_deleted=_bool_query(request, "include_deleted"))
    return web.json_response({"rules": rules})


async def get_rule(request: web.Request) -> web.Response:
    rule_id = _path_id(request, "rule_id", RULE_ID_RE, RULE_WHAT)
    return web.json_response(await _backend(request).get_rule(rule_id))


async def delete_rule(request: web.Request) -> web.Response:
    rule_id = _path_id(request, "rule_id", RULE_ID_RE, RULE_WHAT)
    return web.json_response(await _backend(request).delete_rule(rule_id, _key(request).name))


async def post_backtest(request: web.Request) -> web.Response:
    body = await _json_object(request)
    source = await _rule_source(request, body)
    customers = _int_field(body, "customers", 100, 1, MAX_BACKTEST_CUSTOMERS)
    days = _int_field(body, "days", 180, 30, 400)
    seed = _int_field(body, "seed", 42, 0, 2**31 - 1)
    rule, issues = await _check(source, run_examples=False)
    if rule is None:
        raise _fail(422, "invalid_rule", f"the rule has {len(issues)} error(s)", "source", errors=issues)
    return web.json_response(await _backend(request).backtest(rule, customers, days=days, seed=seed))


async def post_sweep(request: web.Request) -> web.Response:
    body = await _json_object(request, optional=True)
    rules = body.get("rules")
    if rules is None:
        rules = []
    if not isinstance(rules, list):
        raise _fail(422, "invalid_field", "rules must be a list of rule ids (empty or absent: all rules)", "rules")
    for i, rid in enumerate(rules):
        if not isinstance(rid, str) or not RULE_ID_RE.fullmatch(rid):
            raise _fail(422, "invalid_field", f"must be a rule id: {RULE_WHAT}", f"rules[{i}]")
    dry_run = body.get("dry_run", False)
    if not isinstance(dry_run, bool):
        raise _fail(422, "invalid_field", "dry_run must be true or false", "dry_run")
    result = await _backend(request).start_sweep(list(dict.fromkeys(rules)), dry_run=dry_run,
                                                 requested_by=_key(request).name)
    return web.json_response(result, status=202)


async def get_sweeps(request: web.Request) -> web.Response:
    return web.json_response({"sweeps": await _backend(request).list_sweeps()})


async def get_sweep(request: web.Request) -> web.Response:
    sweep_id = _path_id(request, "sweep_id", SWEEP_ID_RE, "a sweep id as returned by POST /v1/sweeps")
    return web.json_response(await _backend(request).get_sweep(sweep_id))


async def get_healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def get_readyz(request: web.Request) -> web.Response:
    try:
        checks: Mapping[str, Check] = await asyncio.wait_for(_backend(request).readiness(), READINESS_TIMEOUT_S)
    except Exception as exc:  # noqa: BLE001 - a failing probe is an answer, not a crash
        checks = {"readiness": Check(False, f"readiness probe failed: {type(exc).__name__}: {exc}")}
    ready = all(c.ok for c in checks.values()) and bool(checks)
    body = {"ready": ready, "checks": {name: {"ok": c.ok, "detail": c.detail} for name, c in checks.items()},
            "failing": sorted(name for name, c in checks.items() if not c.ok)}
    return web.json_response(body, status=200 if ready else 503)


async def get_metrics(request: web.Request) -> web.Response:
    return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})


async def get_openapi(request: web.Request) -> web.Response:
    from streams.web.openapi import openapi_document

    served = {(r.method, r.resource.canonical) for r in request.app.router.routes() if r.resource is not None}
    return web.json_response(openapi_document(served, request.app[EXTRA_OPENAPI]))


ROUTES: tuple[Route, ...] = (
    Route("POST", "/v1/score", post_score, "score"),
    Route("GET", "/v1/customers/{customer_id}/insights", get_insights, "insights:read", "customer_id"),
    Route("DELETE", "/v1/customers/{customer_id}", delete_customer, "customers:erase", "customer_id"),
    Route("POST", "/v1/rules:validate", post_validate, "rules:write"),
    Route("POST", "/v1/rules:backtest", post_backtest, "rules:write"),
    Route("POST", "/v1/rules", post_rule, "rules:write"),
    Route("GET", "/v1/rules", get_rules, "rules:write"),
    Route("GET", "/v1/rules/{rule_id}", get_rule, "rules:write"),
    Route("DELETE", "/v1/rules/{rule_id}", delete_rule, "rules:write"),
    Route("POST", "/v1/sweeps", post_sweep, "sweeps:run", all_customers=True),
    Route("GET", "/v1/sweeps", get_sweeps, "sweeps:run"),
    Route("GET", "/v1/sweeps/{sweep_id}", get_sweep, "sweeps:run"),
    Route("GET", "/healthz", get_healthz, None),
    Route("GET", "/readyz", get_readyz, None),
    Route("GET", "/metrics", get_metrics, None),
    Route("GET", "/openapi.json", get_openapi, None),
)


# -- guard and middleware ---------------------------------------------------------------------------------

def _guarded(route: Route) -> Handler:
    """Authenticate, check scope and customer, then run the handler."""
    if route.scope is None:
        return route.handler
    scope = route.scope

    async def guarded(request: web.Request) -> web.StreamResponse:
        key = authenticate(request)
        customer = None
        if route.customer_param is not None:
            customer = _path_id(request, route.customer_param, CUSTOMER_ID_RE, CUSTOMER_WHAT)
        check_access(request, scope, customer)
        if route.all_customers and key.customers is not None:
            raise AccessDenied(403, "forbidden_customer",
                               "this API key is restricted to some customers; this endpoint acts for all")
        return await route.handler(request)

    return guarded


@web.middleware
async def _rate_limit(request: web.Request, handler: Handler) -> web.StreamResponse:
    """One token bucket per known key, for every route of the app (the mounted ingestion endpoint too);
    requests without a valid key go on to their handler, which refuses them."""
    try:
        key = authenticate(request)
    except AccessDenied:
        return await handler(request)
    wait = request.app[LIMITER].acquire(key.name)
    if wait > 0:
        raise ApiError(429, "rate_limited", f"too many requests for this API key; retry in {wait:.1f}s",
                       headers={"Retry-After": RateLimiter.retry_after(wait)})
    return await handler(request)


def _route_label(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every failure into the JSON error shape; count and time every request."""
    started = time.perf_counter()
    label = _route_label(request)
    try:
        response = await handler(request)
    except ApiError as exc:
        response = _error_response(exc.status, exc.code, exc.message, exc.field, exc.extra, exc.headers)
    except AccessDenied as exc:
        response = _error_response(exc.status, exc.code, exc.message, headers=exc.headers)
    except web.HTTPRequestEntityTooLarge:
        response = _error_response(413, "too_large",
                                   f"request body larger than {request.app._client_max_size} bytes", "$")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status, f"http_{exc.status}")
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        response = _error_response(exc.status, code, exc.reason, extra=None, headers=headers)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("unhandled error on %s %s", request.method, label)
        response = _error_response(500, "internal", "internal error; it has been logged")
    if not response.prepared and request.path.startswith("/v1/"):
        # answers may hold customer data: never cached by a proxy or browser, never type-sniffed
        response.headers.setdefault("Cache-Control", "no-store")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
    REQUESTS.labels(request.method, label, str(response.status)).inc()
    LATENCY.labels(request.method, label).observe(time.perf_counter() - started)
    return response


def create_api(
    backend: ApiBackend,
    auth: ApiKeyStore,
    *,
    extra_routes: Iterable[web.AbstractRouteDef] = (),
    client_max_size: int = 1024 * 1024,
    rate_limit: RateLimit | None = None,
    extra_openapi: dict[str, Any] | None = None,
) -> web.Application:
    """The worker's web application.

    :param backend: where data comes from (see :class:`~streams.web.api_backend.ApiBackend`).
    :param auth: the configured API keys (:meth:`ApiKeyStore.from_env`).
    :param extra_routes: more routes (the pages, the ingestion endpoint's) served by the same app.
    :param client_max_size: largest request body in bytes (413 above).
    :param rate_limit: per-key token bucket; default 20 requests/s with bursts of 40.
    :param extra_openapi: OpenAPI path items documenting ``extra_routes`` that belong in the API document.
    The ingestion endpoint, mounted later with ``add_ingest_routes``/``add_kafka_ingest``, is documented
    automatically.
    """
    app = web.Application(client_max_size=client_max_size, middlewares=[_errors, _rate_limit])
    app[BACKEND] = backend
    app[API_KEYS] = auth
    app[LIMITER] = RateLimiter(rate_limit or RateLimit())
    app[EXTRA_OPENAPI] = dict(extra_openapi or {})
    close = getattr(backend, "close", None)
    if close is not None:  # long-lived store clients end with the app

        async def close_backend(_app: web.Application) -> None:
            await close()

        app.on_cleanup.append(close_backend)
    for route in ROUTES:
        app.router.add_route(route.method, route.path, _guarded(route))
    app.router.add_routes(list(extra_routes))
    return app
