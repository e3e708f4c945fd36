"""The OpenAPI document is true: it lists exactly the app's routes, and schemathesis finds no 5xx.

schemathesis cannot call an aiohttp app in-process (no ASGI/WSGI), so the app with the in-memory backend
is served on a loopback port from a thread for the module. Examples per operation are bounded so the run
stays well under two minutes.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from api_fake_backend import FakeBackend, rule_source
from hypothesis import HealthCheck, settings

from streams.web.api import ROUTES, create_api
from streams.web.auth import ApiKeyStore, hash_api_key
from streams.web.ingest import IngestConfig, add_ingest_routes
from streams.web.limits import RateLimit
from streams.web.openapi import openapi_document

ADMIN_KEY = "schemathesis-admin-key-0123456789"
RESTRICTED_KEY = "schemathesis-app-key-0123456789"


INGEST = ("POST", "/v1/customers/{customer_id}/transactions")


async def fake_publish(topic: str, key: bytes, value: bytes) -> None:
    return None


@pytest.mark.parametrize("with_ingest", [False, True])
async def test_served_document_lists_exactly_the_routes(with_ingest: bool) -> None:
    app = create_api(FakeBackend(), ApiKeyStore({}))
    if with_ingest:
        add_ingest_routes(app, IngestConfig(publish=fake_publish))
    served = {(r.method, r.resource.canonical) for r in app.router.routes() if r.resource is not None}
    async with TestClient(TestServer(app)) as client:
        doc = await (await client.get("/openapi.json")).json()
    documented = {(method.upper(), path) for path, ops in doc["paths"].items() for method in ops}
    assert served == documented
    assert (INGEST in documented) is with_ingest


async def test_extra_routes_can_be_documented() -> None:
    async def stream(request: web.Request) -> web.Response:
        return web.Response(text="")

    extra = {"/v1/alerts/stream": {"get": {"summary": "alerts", "responses": {"200": {"description": "SSE"}}}}}
    app = create_api(FakeBackend(), ApiKeyStore({}), extra_routes=[web.get("/v1/alerts/stream", stream,
                                                                           allow_head=False)],
                     extra_openapi=extra)
    async with TestClient(TestServer(app)) as client:
        doc = await (await client.get("/openapi.json")).json()
    assert doc["paths"]["/v1/alerts/stream"] == extra["/v1/alerts/stream"]


def test_document_scopes_match_the_routes() -> None:
    paths = openapi_document()["paths"]
    for route in ROUTES:
        op = paths[route.path][route.method.lower()]
        assert op.get("x-required-scope") == route.scope, route.path
        assert ("security" in op) == (route.scope is not None)
        if route.scope is not None:
            assert {"401", "403", "429"} <= set(op["responses"])


def test_document_is_valid_openapi_31() -> None:
    doc = openapi_document()
    assert doc["openapi"].startswith("3.1")
    schemathesis.openapi.from_dict(doc)  # raises on an invalid document
    json.dumps(doc)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    backend = FakeBackend()
    backend.features = {"c1": {"balance_current": 40.0}}
    backend.stored = {"c1": [{"customer_id": "c1", "rule_id": "low_balance", "eligible": True, "score": 0.6}]}
    keys = ApiKeyStore.parse(json.dumps({
        hash_api_key(ADMIN_KEY): {"name": "fuzz", "scopes": ["admin"]},
        hash_api_key(RESTRICTED_KEY): {"name": "app", "scopes": ["admin"], "customers": ["c1"]},
    }))
    app = create_api(backend, keys, client_max_size=256 * 1024, rate_limit=RateLimit(rate=1e6, burst=10**6))
    add_ingest_routes(app, IngestConfig(publish=fake_publish))
    port = _free_port()
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app)
    started = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, name="api-under-test", daemon=True)
    thread.start()
    assert started.wait(10)
    loop.call_soon_threadsafe(lambda: asyncio.ensure_future(
        backend.publish_rule(__import__("core.rules").rules.compile_rule(rule_source()), "seed")))
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


schema = schemathesis.openapi.from_dict(openapi_document({INGEST}))


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors_and_answers_match_the_document(case: Any, base_url: str) -> None:
    response = case.call(base_url=base_url, headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.status_code} {response.text}"
    case.validate_response(response, excluded_checks=[
        # a generated, schema-valid customer or rule id is usually unknown: 404 is the right answer
        schemathesis.checks.positive_data_acceptance,
    ])


@schema.parametrize()
@settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
def test_restricted_key_gets_no_5xx_and_no_other_customer(case: Any, base_url: str) -> None:
    response = case.call(base_url=base_url, headers={"X-API-Key": RESTRICTED_KEY})
    assert response.status_code < 500
    customer = (case.path_parameters or {}).get("customer_id") or (
        case.body.get("customer_id") if isinstance(case.body, dict) else None)
    if isinstance(customer, str) and customer != "c1" and response.status_code < 300:
        pytest.fail(f"{case.method} {case.formatted_path} answered {response.status_code} for customer {customer!r}")
