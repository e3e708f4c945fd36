"""The HTTP API against the in-memory backend: every endpoint, its 401/403 paths and cross-customer access."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from api_fake_backend import FakeBackend, rule_source

from streams.web.api import create_api
from streams.web.api_backend import Check
from streams.web.auth import ApiKeyStore, hash_api_key
from streams.web.limits import RateLimit

KEYS = {
    "admin": "k-admin-0123456789",
    "reader": "k-reader-0123456789",
    "app_c1": "k-app-c1-0123456789",  # restricted to customer c1
    "scorer": "k-scorer-0123456789",
    "author": "k-author-0123456789",
    "operator": "k-operator-0123456789",
    "eraser": "k-eraser-0123456789",
    "ingest": "k-ingest-0123456789",
}
SCOPES: dict[str, tuple[list[str], list[str] | None]] = {
    "admin": (["admin"], None),
    "reader": (["insights:read"], None),
    "app_c1": (["insights:read", "score", "customers:erase", "sweeps:run"], ["c1"]),
    "scorer": (["score"], None),
    "author": (["rules:write"], None),
    "operator": (["sweeps:run"], None),
    "eraser": (["customers:erase"], None),
    "ingest": (["transactions:write"], None),
}


def auth(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[name]}"}


def store() -> ApiKeyStore:
    return ApiKeyStore.parse(json.dumps({
        hash_api_key(KEYS[n]): {"name": n, "scopes": s, "customers": c} for n, (s, c) in SCOPES.items()
    }))


@pytest.fixture
def backend() -> FakeBackend:
    fake = FakeBackend()
    fake.features = {"c1": {"balance_current": 40.0}, "c2": {"balance_current": 500.0}}
    fake.stored = {
        "c1": [
            {"customer_id": "c1", "rule_id": f"rule_{i:02d}", "eligible": i % 4 != 0, "score": (i * 7 % 10) / 10,
             "message": f"m{i}", "reasons": [], "items": [], "rule_version": 1}
            for i in range(12)
        ],
        "c2": [{"customer_id": "c2", "rule_id": "rule_00", "eligible": True, "score": 0.9, "message": "secret"}],
    }
    return fake


async def make_client(backend: FakeBackend, **kwargs: Any) -> TestClient[Any, Any]:
    app = create_api(backend, store(), **kwargs)
    client: TestClient[Any, Any] = TestClient(TestServer(app))
    await client.start_server()
    return client


@pytest.fixture
async def client(backend: FakeBackend) -> AsyncIterator[TestClient[Any, Any]]:
    c = await make_client(backend, client_max_size=80_000, rate_limit=RateLimit(rate=1000, burst=1000))
    yield c
    await c.close()


async def error_of(resp: Any, status: int) -> dict[str, Any]:
    assert resp.status == status, await resp.text()
    assert resp.content_type == "application/json"
    body = await resp.json()
    assert set(body["error"]) >= {"code", "message"}
    error: dict[str, Any] = body["error"]
    return error


# -- access control on every endpoint -----------------------------------------------------------------

PROTECTED = [
    ("POST", "/v1/score", {"customer_id": "c1", "rule_id": "low_balance"}, "scorer", "reader"),
    ("GET", "/v1/customers/c1/insights", None, "reader", "scorer"),
    ("DELETE", "/v1/customers/c1", None, "eraser", "reader"),
    ("POST", "/v1/rules:validate", {"source": rule_source()}, "author", "reader"),
    ("POST", "/v1/rules:backtest", {"source": rule_source(), "customers": 10}, "author", "operator"),
    ("POST", "/v1/rules", {"source": rule_source()}, "author", "operator"),
    ("GET", "/v1/rules", None, "author", "reader"),
    ("GET", "/v1/rules/low_balance", None, "author", "reader"),
    ("DELETE", "/v1/rules/low_balance", None, "author", "eraser"),
    ("POST", "/v1/sweeps", {}, "operator", "author"),
    ("GET", "/v1/sweeps", None, "operator", "reader"),
    ("GET", "/v1/sweeps/unknown-sweep", None, "operator", "reader"),
]


@pytest.mark.parametrize(("method", "path", "body", "allowed", "denied"), PROTECTED,
                         ids=[f"{m} {p}" for m, p, *_ in PROTECTED])
async def test_every_endpoint_checks_key_and_scope(client: TestClient[Any, Any], backend: FakeBackend,
                                                   method: str, path: str, body: Any, allowed: str,
                                                   denied: str) -> None:
    kwargs: dict[str, Any] = {"json": body} if body is not None else {}
    if path == "/v1/rules/low_balance" or path.startswith("/v1/score"):
        await client.post("/v1/rules", json={"source": rule_source()}, headers=auth("admin"))

    resp = await client.request(method, path, **kwargs)
    err = await error_of(resp, 401)
    assert err["code"] == "unauthorized" and "WWW-Authenticate" in resp.headers
    err = await error_of(await client.request(method, path, headers={"X-API-Key": "not-a-key"}, **kwargs), 401)
    assert err["message"] == "unknown API key"
    err = await error_of(await client.request(method, path, headers=auth(denied), **kwargs), 403)
    assert err["code"] == "forbidden" and "lacks the scope" in err["message"]
    err = await error_of(await client.request(method, path, headers=auth("ingest"), **kwargs), 403)

    resp = await client.request(method, path, headers=auth(allowed), **kwargs)
    assert resp.status < 500 and resp.status not in (401, 403), await resp.text()
    if path == "/v1/rules/low_balance" and method == "DELETE":
        await client.post("/v1/rules", json={"source": rule_source()}, headers=auth("admin"))
    resp = await client.request(method, path, headers={"X-API-Key": KEYS["admin"]}, **kwargs)
    assert resp.status not in (401, 403), "admin implies every scope"


async def test_public_endpoints_need_no_key(client: TestClient[Any, Any]) -> None:
    assert (await client.get("/healthz")).status == 200
    assert (await client.get("/readyz")).status == 200
    assert (await client.get("/metrics")).status == 200
    assert (await client.get("/openapi.json")).status == 200


# -- cross-customer access ------------------------------------------------------------------------------

async def test_restricted_key_reads_only_its_customer(client: TestClient[Any, Any], backend: FakeBackend) -> None:
    resp = await client.get("/v1/customers/c1/insights", headers=auth("app_c1"))
    assert resp.status == 200
    err = await error_of(await client.get("/v1/customers/c2/insights", headers=auth("app_c1")), 403)
    assert err["code"] == "forbidden_customer"
    assert ("insights", "c2") not in backend.calls


async def test_restricted_key_cannot_score_or_erase_another_customer(client: TestClient[Any, Any],
                                                                     backend: FakeBackend) -> None:
    await client.post("/v1/rules", json={"source": rule_source()}, headers=auth("admin"))
    resp = await client.post("/v1/score", json={"customer_id": "c1", "rule_id": "low_balance"}, headers=auth("app_c1"))
    assert resp.status == 200
    resp = await client.post("/v1/score", json={"customer_id": "c2", "rule_id": "low_balance"}, headers=auth("app_c1"))
    assert (await error_of(resp, 403))["code"] == "forbidden_customer"
    assert ("score", ("c2", "low_balance")) not in backend.calls
    assert (await error_of(await client.delete("/v1/customers/c2", headers=auth("app_c1")), 403))
    assert backend.erased == []
    resp = await client.delete("/v1/customers/c1", headers=auth("app_c1"))
    assert resp.status == 202 and backend.erased == ["c1"]


async def test_restricted_key_cannot_start_a_sweep_of_everyone(client: TestClient[Any, Any]) -> None:
    err = await error_of(await client.post("/v1/sweeps", json={}, headers=auth("app_c1")), 403)
    assert err["code"] == "forbidden_customer"


# -- score ----------------------------------------------------------------------------------------------

async def test_score_computes_now_with_reasons(client: TestClient[Any, Any]) -> None:
    await client.post("/v1/rules", json={"source": rule_source()}, headers=auth("admin"))
    resp = await client.post("/v1/score", json={"customer_id": "c1", "rule_id": "low_balance"}, headers=auth("scorer"))
    body = await resp.json()
    assert resp.status == 200
    assert body["customer_id"] == "c1" and body["rule_id"] == "low_balance" and body["rule_version"] == 1
    assert body["eligible"] is True and body["score"] == pytest.approx(0.6)
    assert body["message"] == "Your balance is £40.00." and body["items"] == []
    assert body["reasons"][0]["features"] == {"balance_current": 40.0}
    body = await (await client.post("/v1/score", json={"customer_id": "c2", "rule_id": "low_balance"},
                                    headers=auth("scorer"))).json()
    assert body["eligible"] is False and body["score"] is None


@pytest.mark.parametrize(
    ("body", "status", "code", "field"),
    [({"customer_id": "nobody", "rule_id": "low_balance"}, 404, "customer_not_found", "customer_id"),
     ({"customer_id": "c1", "rule_id": "no_such_rule"}, 404, "rule_not_found", "rule_id"),
     ({"rule_id": "low_balance"}, 422, "missing_field", "customer_id"),
     ({"customer_id": "c1"}, 422, "missing_field", "rule_id"),
     ({"customer_id": 7, "rule_id": "low_balance"}, 422, "invalid_field", "customer_id"),
     ({"customer_id": "c1", "rule_id": "Bad Rule"}, 422, "invalid_field", "rule_id"),
     ([1, 2], 400, "bad_shape", "$")],
)
async def test_score_errors_name_the_field(client: TestClient[Any, Any], body: Any, status: int, code: str,
                                           field: str) -> None:
    await client.post("/v1/rules", json={"source": rule_source()}, headers=auth("admin"))
    err = await error_of(await client.post("/v1/score", json=body, headers=auth("scorer")), status)
    assert err["code"] == code and err["field"] == field


async def test_malformed_json_and_media_type(client: TestClient[Any, Any]) -> None:
    err = await error_of(await client.post("/v1/score", data=b"{nope", headers={
        **auth("scorer"), "Content-Type": "application/json"}), 400)
    assert err["code"] == "malformed_json"
    err = await error_of(await client.post("/v1/score", data=b"x=1", headers={
        **auth("scorer"), "Content-Type": "application/x-www-form-urlencoded"}), 415)
    assert err["field"] == "Content-Type"


# -- insights -------------------------------------------------------------------------------------------

async def test_insights_ranked_and_paged(client: TestClient[Any, Any], backend: FakeBackend) -> None:
    seen: list[dict[str, Any]] = []
    cursor = None
    pages = 0
    while True:
        query = {"limit": "4"} | ({"cursor": cursor} if cursor else {})
        resp = await client.get("/v1/customers/c1/insights", params=query, headers=auth("reader"))
        body = await resp.json()
        assert resp.status == 200 and body["customer_id"] == "c1" and len(body["insights"]) <= 4
        assert resp.headers["Cache-Control"] == "no-store"
        seen.extend(body["insights"])
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    expected = sorted((i for i in backend.stored["c1"] if i["eligible"]), key=lambda i: (-i["score"], i["rule_id"]))
    assert [i["rule_id"] for i in seen] == [i["rule_id"] for i in expected]
    assert pages == 3 and all(i["eligible"] for i in seen)
    everything = await (await client.get("/v1/customers/c1/insights?include_ineligible=true&limit=100",
                                         headers=auth("reader"))).json()
    assert len(everything["insights"]) == 12 and everything["insights"][-1]["eligible"] is False


@pytest.mark.parametrize(
    ("query", "field"),
    [("limit=0", "limit"), ("limit=101", "limit"), ("limit=ten", "limit"), ("limit=", "limit"),
     ("include_ineligible=", "include_ineligible"), ("cursor=%%%", "cursor"),
     ("cursor=bm90LWpzb24", "cursor"), ("include_ineligible=maybe", "include_ineligible")],
)
async def test_insights_bad_parameters(client: TestClient[Any, Any], query: str, field: str) -> None:
    err = await error_of(await client.get(f"/v1/customers/c1/insights?{query}", headers=auth("reader")), 400)
    assert err["field"] == field


async def test_unknown_customer_has_no_insights_and_bad_ids_are_400(client: TestClient[Any, Any]) -> None:
    body = await (await client.get("/v1/customers/nobody/insights", headers=auth("reader"))).json()
    assert body["insights"] == [] and body["next_cursor"] is None
    err = await error_of(await client.get("/v1/customers/-bad/insights", headers=auth("reader")), 400)
    assert err["field"] == "customer_id"


# -- rules ----------------------------------------------------------------------------------------------

async def test_validate_reports_line_and_column(client: TestClient[Any, Any]) -> None:
    bad = rule_source().replace("balance_current < £100", "balanse < £100")
    body = await (await client.post("/v1/rules:validate", json={"source": bad}, headers=auth("author"))).json()
    assert body["valid"] is False
    first = body["errors"][0]
    assert (first["line"], first["column"], first["code"]) == (7, 5, "unknown-feature")
    assert "balanse" in first["message"]
    resp = await client.post("/v1/rules:validate", data=rule_source().encode(),
                             headers={**auth("author"), "Content-Type": "application/yaml"})
    body = await resp.json()
    assert body == {"valid": True, "errors": [], "rule": body["rule"]} and body["rule"]["id"] == "low_balance"


async def test_publish_versions_list_history_delete(client: TestClient[Any, Any], backend: FakeBackend) -> None:
    resp = await client.post("/v1/rules", json={"source": rule_source()}, headers=auth("author"))
    assert resp.status == 201 and (await resp.json())["version"] == 1
    resp = await client.post("/v1/rules", data=rule_source(threshold=50).encode(),
                             headers={**auth("author"), "Content-Type": "text/plain"})
    assert (await resp.json())["version"] == 2
    assert "version: 2" in backend.versions["low_balance"][-1]["source"]
    rules = (await (await client.get("/v1/rules", headers=auth("author"))).json())["rules"]
    assert [(r["rule_id"], r["version"]) for r in rules] == [("low_balance", 2)]
    detail = await (await client.get("/v1/rules/low_balance", headers=auth("author"))).json()
    assert [h["version"] for h in detail["history"]] == [1, 2] and "£50" in detail["source"]
    resp = await client.delete("/v1/rules/low_balance", headers=auth("author"))
    assert resp.status == 200 and (await resp.json())["deleted"] is True
    assert (await (await client.get("/v1/rules", headers=auth("author"))).json())["rules"] == []
    listed = await (await client.get("/v1/rules?include_deleted=true", headers=auth("author"))).json()
    assert listed["rules"][0]["deleted"] is True
    err = await error_of(await client.delete("/v1/rules/low_balance", headers=auth("author")), 404)
    assert err["code"] == "rule_not_found"
    err = await error_of(await client.get("/v1/rules/never_was", headers=auth("author")), 404)
    assert err["field"] == "rule_id"
    err = await error_of(await client.get("/v1/rules/NOT-AN-ID", headers=auth("author")), 400)
    assert err["field"] == "rule_id"


async def test_republishing_the_same_rule_changes_nothing(client: TestClient[Any, Any],
                                                          backend: FakeBackend) -> None:
    assert (await client.post("/v1/rules", json={"source": rule_source()}, headers=auth("author"))).status == 201
    resp = await client.post("/v1/rules", json={"source": rule_source()}, headers=auth("author"))
    assert resp.status == 200 and (await resp.json()) == {"rule_id": "low_balance", "version": 1, "unchanged": True}
    assert len(backend.versions["low_balance"]) == 1


def with_example(expect: str) -> str:
    return rule_source() + (
        "examples:\n"
        "  - name: forty pounds\n"
        "    features: {balance_current: 40.0}\n"
        f"    expect: {expect}\n"
    )


async def test_failing_examples_make_a_rule_invalid(client: TestClient[Any, Any], backend: FakeBackend) -> None:
    good = await (await client.post("/v1/rules:validate", json={"source": with_example("{eligible: true}")},
                                    headers=auth("author"))).json()
    assert good["valid"] is True
    bad_source = with_example("{eligible: false}")
    bad = await (await client.post("/v1/rules:validate", json={"source": bad_source}, headers=auth("author"))).json()
    assert bad["valid"] is False and bad["rule"]["id"] == "low_balance"
    assert bad["errors"][0]["code"] == "example-failed" and bad["errors"][0]["line"] == 11
    assert "forty pounds" in bad["errors"][0]["message"]
    resp = await client.post("/v1/rules", json={"source": bad_source}, headers=auth("author"))
    assert resp.status == 422 and (await resp.json())["errors"][0]["code"] == "example-failed"
    assert backend.versions == {}
    resp = await client.post("/v1/rules:backtest", json={"source": bad_source, "customers": 2}, headers=auth("author"))
    assert resp.status == 200  # a backtest explores a draft; its examples need not pass yet


async def test_publish_refuses_invalid_rule_with_errors(client: TestClient[Any, Any], backend: FakeBackend) -> None:
    bad = rule_source().replace("kind: alert", "kind: shout")
    resp = await client.post("/v1/rules", json={"source": bad}, headers=auth("author"))
    body = await resp.json()
    assert resp.status == 422 and body["error"]["code"] == "invalid_rule" and body["error"]["field"] == "source"
    assert body["errors"][0]["line"] == 4 and body["errors"][0]["code"] == "bad-value"
    assert backend.versions == {}


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [({}, 422, "source"), ({"source": 3}, 422, "source"), ({"source": "   "}, 422, "source"),
     ({"source": "x" * 70_000}, 413, "source")],
)
async def test_rule_source_errors(client: TestClient[Any, Any], body: Any, status: int, field: str) -> None:
    for path in ("/v1/rules:validate", "/v1/rules"):
        err = await error_of(await client.post(path, json=body, headers=auth("author")), status)
        assert err["field"] == field


async def test_backtest(client: TestClient[Any, Any], backend: FakeBackend) -> None:
    resp = await client.post("/v1/rules:backtest", json={"source": rule_source(), "customers": 10},
                             headers=auth("author"))
    body = await resp.json()
    assert resp.status == 200
    assert body["customers"] == 10 and body["fired"] == 5 and body["hit_rate"] == 0.5
    assert sum(b["count"] for b in body["histogram"]) == 5
    assert ("backtest", ("low_balance", 10, 180, 42)) in backend.calls  # defaults: 180 days, seed 42
    await client.post("/v1/rules:backtest", json={"source": rule_source(), "customers": 3, "days": 60, "seed": 7},
                      headers=auth("author"))
    assert ("backtest", ("low_balance", 3, 60, 7)) in backend.calls
    for name, value in (("customers", 0), ("customers", 1001), ("customers", "ten"), ("customers", True),
                        ("days", 10), ("seed", -1)):
        err = await error_of(await client.post("/v1/rules:backtest", json={"source": rule_source(),
                                               name: value}, headers=auth("author")), 422)
        assert err["field"] == name
    resp = await client.post("/v1/rules:backtest", json={"source": "id: x"}, headers=auth("author"))
    assert (await error_of(resp, 422))["code"] == "invalid_rule"


# -- sweeps, erasure ------------------------------------------------------------------------------------

async def test_sweeps_start_list_progress(client: TestClient[Any, Any]) -> None:
    await client.post("/v1/rules", json={"source": rule_source()}, headers=auth("admin"))
    resp = await client.post("/v1/sweeps", json={"rules": ["low_balance"], "dry_run": True}, headers=auth("operator"))
    started = await resp.json()
    assert resp.status == 202 and started["total"] == 2 and started["dry_run"] is True
    listed = await (await client.get("/v1/sweeps", headers=auth("operator"))).json()
    assert [s["sweep_id"] for s in listed["sweeps"]] == [started["sweep_id"]]
    one = await (await client.get(f"/v1/sweeps/{started['sweep_id']}", headers=auth("operator"))).json()
    assert one["total"] == 2
    resp = await client.post("/v1/sweeps", headers=auth("operator"))  # no body: every rule
    assert resp.status == 202
    err = await error_of(await client.post("/v1/sweeps", json={"rules": ["nope_rule"]}, headers=auth("operator")), 422)
    assert err["field"] == "rules[0]"
    for body, field in (({"rules": "low_balance"}, "rules"), ({"rules": [3]}, "rules[0]"),
                        ({"dry_run": "yes"}, "dry_run")):
        err = await error_of(await client.post("/v1/sweeps", json=body, headers=auth("operator")), 422)
        assert err["field"] == field
    assert (await error_of(await client.get("/v1/sweeps/nope", headers=auth("operator")), 404))["code"] == "sweep_not_found"


async def test_erase_answers_what_will_be_removed(client: TestClient[Any, Any], backend: FakeBackend) -> None:
    resp = await client.delete("/v1/customers/c2", headers=auth("eraser"))
    body = await resp.json()
    assert resp.status == 202 and body["rules"] == ["rule_00"] and body["items"] == [
        {"customer_id": "c2", "rule_id": "rule_00"}]
    assert backend.erased == ["c2"]


# -- limits, health, errors -----------------------------------------------------------------------------

async def test_request_too_large_is_413_json(client: TestClient[Any, Any]) -> None:
    payload = json.dumps({"customer_id": "c1", "rule_id": "low_balance", "pad": "x" * 100_000})
    err = await error_of(await client.post("/v1/score", data=payload, headers={
        **auth("scorer"), "Content-Type": "application/json"}), 413)
    assert err["code"] == "too_large"


async def test_rate_limit_per_key_with_retry_after(backend: FakeBackend) -> None:
    client = await make_client(backend, rate_limit=RateLimit(rate=0.5, burst=3))
    try:
        statuses = [(await client.get("/v1/rules", headers=auth("author"))).status for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        resp = await client.get("/v1/rules", headers=auth("author"))
        err = await error_of(resp, 429)
        assert err["code"] == "rate_limited" and int(resp.headers["Retry-After"]) >= 1
        assert (await client.get("/v1/sweeps", headers=auth("operator"))).status == 200  # another key's bucket
    finally:
        await client.close()


async def test_readiness_reports_failing_checks(client: TestClient[Any, Any], backend: FakeBackend) -> None:
    body = await (await client.get("/readyz")).json()
    assert body["ready"] is True and body["failing"] == []
    backend.ready["tables"] = Check(False, "recovery in progress")
    resp = await client.get("/readyz")
    body = await resp.json()
    assert resp.status == 503 and body["failing"] == ["tables"]
    assert body["checks"]["tables"] == {"ok": False, "detail": "recovery in progress"}


async def test_readiness_probe_failure_is_503(client: TestClient[Any, Any], backend: FakeBackend,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    async def broken() -> dict[str, Check]:
        raise ConnectionError("broker gone")

    monkeypatch.setattr(backend, "readiness", broken)
    resp = await client.get("/readyz")
    assert resp.status == 503 and "broker gone" in (await resp.json())["checks"]["readiness"]["detail"]


async def test_metrics_expose_pipeline_and_api_counters(client: TestClient[Any, Any]) -> None:
    import streams.metrics  # noqa: F401 - registers the pipeline's metrics

    await client.get("/v1/rules", headers=auth("author"))
    resp = await client.get("/metrics")
    text = await resp.text()
    assert resp.headers["Content-Type"].startswith("text/plain")
    assert "nudge_api_requests_total" in text and 'route="/v1/rules"' in text
    assert "nudge_customer_scoring_seconds" in text


async def test_unknown_route_and_method_are_json(client: TestClient[Any, Any]) -> None:
    assert (await error_of(await client.get("/v1/nothing"), 404))["code"] == "not_found"
    resp = await client.put("/v1/rules", headers=auth("author"))
    assert (await error_of(resp, 405))["code"] == "method_not_allowed" and "GET" in resp.headers["Allow"]


async def test_backend_bug_is_a_logged_json_500(client: TestClient[Any, Any], backend: FakeBackend,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    async def bug(**_: Any) -> list[dict[str, Any]]:
        raise KeyError("oops")

    monkeypatch.setattr(backend, "list_rules", bug)
    err = await error_of(await client.get("/v1/rules", headers=auth("author")), 500)
    assert err["code"] == "internal" and "oops" not in err["message"]


async def test_extra_routes_are_served(backend: FakeBackend) -> None:
    async def page(request: web.Request) -> web.Response:
        return web.Response(text="hello")

    client = await make_client(backend, extra_routes=[web.get("/page", page)])
    try:
        assert await (await client.get("/page")).text() == "hello"
    finally:
        await client.close()
