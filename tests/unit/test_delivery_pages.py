"""The page routes without Kafka: pages and static files are served with their security headers, and the
alerts stream answers a clear 503 when Kafka cannot be reached (and 401 before that without a key)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from streams.settings import load_settings
from streams.web.auth import API_KEYS, ApiKeyStore, hash_api_key
from streams.web.pages import page_routes


@pytest.fixture
async def client() -> AsyncIterator[TestClient[Any, Any]]:
    app = web.Application()
    app[API_KEYS] = ApiKeyStore.from_entries([("reader", hash_api_key("k"), ["insights:read"])])
    app.add_routes(page_routes(load_settings(kafka_bootstrap="127.0.0.1:1")))  # nothing listens there
    async with TestClient(TestServer(app, host="127.0.0.1")) as test_client:
        yield test_client


@pytest.mark.parametrize(("path", "marker"), [("/alerts", 'id="feed"'), ("/rules/editor", 'id="source"')])
async def test_pages_are_served_with_a_strict_policy(client: TestClient[Any, Any], path: str, marker: str) -> None:
    response = await client.get(path)
    assert response.status == 200
    assert response.content_type == "text/html"
    assert marker in await response.text()
    policy = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "script-src 'self'" in policy
    assert response.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize(
    ("path", "content_type"),
    [("/static/app.css", "text/css"), ("/static/rules-editor.js", "text/javascript"),
     ("/static/alerts.js", "text/javascript"), ("/static/favicon.svg", "image/svg+xml")],
)
async def test_static_files(client: TestClient[Any, Any], path: str, content_type: str) -> None:
    response = await client.get(path)
    assert response.status == 200
    assert response.content_type in (content_type, "application/javascript")


async def test_pages_load_nothing_from_elsewhere(client: TestClient[Any, Any]) -> None:
    for path in ("/alerts", "/rules/editor", "/static/app.css", "/static/common.js"):
        text = await (await client.get(path)).text()
        assert "http://" not in text.replace("http://www.w3.org/2000/svg", "") and "https://" not in text, path


async def test_stream_without_kafka_is_a_clear_503(client: TestClient[Any, Any]) -> None:
    response = await client.get("/v1/alerts/stream")
    assert response.status == 401
    response = await client.get("/v1/alerts/stream", headers={"X-API-Key": "k"})
    assert response.status == 503
    assert response.headers["Retry-After"] == "5"
    assert (await response.json())["error"]["code"] == "kafka_unavailable"


async def test_unknown_static_file_is_404(client: TestClient[Any, Any]) -> None:
    assert (await client.get("/static/nope.js")).status == 404
