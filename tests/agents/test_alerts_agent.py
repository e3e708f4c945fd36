"""The delivery agents in Faust's test harness (memory store), against a real local HTTP receiver.

Kafka is replaced only for the output topics (``alerts.retry`` and ``alerts.dlq`` sends are captured);
what the agents decide for each message (deliver, schedule attempt n, re-publish, dead-letter) is checked
through those captures and the requests the receiver saw.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web

import agents.alerts as alerts_module
from core.delivery import ATTEMPT_HEADER, DUE_HEADER, ERROR_HEADER, FIRST_FAILED_HEADER, verify_signature
from schemas.codec import default_codec
from streams.app import Pipeline, create_app
from streams.settings import load_settings

SECRET = "test-secret"


def alert(alert_id: str = "al-1", customer: str = "cust-1") -> dict[str, Any]:
    return {
        "alert_id": alert_id,
        "customer_id": customer,
        "rule_id": "subscription_price_rise",
        "rule_version": 3,
        "item_key": "netflix",
        "title": "Netflix costs more",
        "message": "Netflix went from £10.99 to £12.99.",
        "score": 0.8,
        "created_at": datetime(2026, 11, 25, 8, 0, tzinfo=UTC),
        "transaction_id": "tx-1",
    }


class Receiver:
    """A webhook receiver answering with the statuses queued in ``script`` (then 200)."""

    def __init__(self) -> None:
        self.script: list[int] = []
        self.requests: list[tuple[dict[str, str], bytes]] = []

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests.append((dict(request.headers), body))
        status = self.script.pop(0) if self.script else 200
        return web.Response(status=status, text="nope" if status >= 300 else "ok")


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    rec = Receiver()
    app = web.Application()
    app.router.add_post("/hook", rec.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield rec, f"http://127.0.0.1:{port}/hook"
    await runner.cleanup()


class Captured:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def send(self, *, key: Any = None, value: Any = None, headers: Any = None, **_kw: Any) -> Any:
        self.sent.append({"key": key, "value": value, "headers": dict(headers or [])})
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


def pipeline_for(
    tmp_path: Any, url: str, delays: str = "0.01,0.02,0.03,0.04"
) -> tuple[Pipeline, Captured, Captured]:
    pipeline = create_app(
        load_settings(
            worker_data_dir=tmp_path,
            webhook_url=url,
            webhook_secret=SECRET,
            webhook_retry_delays=delays,
            webhook_timeout_s=5,
        ),
        store="memory://",
        agent_modules=("agents.alerts",),
    )
    pipeline.app.flow_control.resume()
    retry, dlq = Captured(), Captured()
    pipeline.topics["alerts.retry"].send = retry.send  # type: ignore[method-assign]
    pipeline.topics["alerts.dlq"].send = dlq.send  # type: ignore[method-assign]
    return pipeline, retry, dlq


async def wait_for(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


async def test_success_is_one_signed_request(tmp_path: Any, receiver: tuple[Receiver, str]) -> None:
    rec, url = receiver
    pipeline, retry, dlq = pipeline_for(tmp_path, url)
    value = default_codec().encode("Alert", alert())
    async with pipeline.app.agents["alerts-deliver"].test_context() as ctx:
        await ctx.put(value, key=b"cust-1")
        await wait_for(lambda: len(rec.requests) == 1)
    await pipeline.services["webhook"].on_stop()
    headers, body = rec.requests[0]
    assert headers["X-Nudge-Alert-Id"] == "al-1"
    assert headers["X-Nudge-Attempt"] == "1"
    assert verify_signature(
        SECRET, headers["X-Nudge-Timestamp"], body, headers["X-Nudge-Signature"], now=time.time()
    )
    payload = json.loads(body)
    assert payload["message"] == "Netflix went from £10.99 to £12.99."
    assert payload["created_at"] == "2026-11-25T08:00:00.000Z"
    assert retry.sent == [] and dlq.sent == []


async def test_failures_walk_attempts_then_dead_letter(tmp_path: Any, receiver: tuple[Receiver, str]) -> None:
    rec, url = receiver
    rec.script = [500, 503, 502, 500, 500]
    pipeline, retry, dlq = pipeline_for(tmp_path, url)
    value = default_codec().encode("Alert", alert())
    async with pipeline.app.agents["alerts-deliver"].test_context() as ctx:
        before = int(time.time() * 1000)
        await ctx.put(value, key=b"cust-1")
        await wait_for(lambda: len(retry.sent) == 1)
    first = retry.sent[0]
    assert first["key"] == b"cust-1" and first["value"] == value  # the original bytes, unchanged
    assert first["headers"][ATTEMPT_HEADER] == b"2"
    assert int(first["headers"][DUE_HEADER]) >= before + 10
    assert first["headers"][ERROR_HEADER].startswith(b"HTTP 500")

    async with pipeline.app.agents["alerts-retry"].test_context() as ctx:
        for expected_attempt in (3, 4, 5):
            message = retry.sent[-1]
            await ctx.put(message["value"], key=message["key"], headers=message["headers"])
            await wait_for(lambda n=expected_attempt: int(retry.sent[-1]["headers"][ATTEMPT_HEADER]) == n)
        message = retry.sent[-1]
        await ctx.put(message["value"], key=message["key"], headers=message["headers"])
        await wait_for(lambda: len(dlq.sent) == 1)
    await pipeline.services["webhook"].on_stop()

    assert [h["X-Nudge-Attempt"] for h, _ in rec.requests] == ["1", "2", "3", "4", "5"]
    assert {h["X-Nudge-Alert-Id"] for h, _ in rec.requests} == {"al-1"}
    assert len({body for _, body in rec.requests}) == 1  # duplicates are byte-identical
    letter = dlq.sent[0]
    assert letter["value"] == value and letter["key"] == b"cust-1"
    assert letter["headers"]["dlq.reason"] == b"delivery_failed"
    assert letter["headers"]["dlq.error"].startswith(
        b"webhook delivery failed after 5 attempts; last error: HTTP 500"
    )
    assert letter["headers"]["dlq.origin.topic"] == b"alerts.retry"
    assert letter["headers"]["nudge.attempts"] == b"5"
    assert letter["headers"]["nudge.first_failed_ms"] == first["headers"][FIRST_FAILED_HEADER]
    assert {m["headers"][FIRST_FAILED_HEADER] for m in retry.sent} == {first["headers"][FIRST_FAILED_HEADER]}


async def test_retry_not_due_within_window_is_republished_unchanged(
    tmp_path: Any, receiver: tuple[Receiver, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    rec, url = receiver
    monkeypatch.setattr(alerts_module, "RETRY_WAIT_WINDOW_S", 0.05)
    pipeline, retry, dlq = pipeline_for(tmp_path, url)
    value = default_codec().encode("Alert", alert())
    due = int(time.time() * 1000) + 3_600_000
    headers = {ATTEMPT_HEADER: b"3", DUE_HEADER: str(due).encode(), ERROR_HEADER: b"HTTP 500"}
    async with pipeline.app.agents["alerts-retry"].test_context() as ctx:
        await ctx.put(value, key=b"cust-1", headers=headers)
        await wait_for(lambda: len(retry.sent) == 1)
    await pipeline.services["webhook"].on_stop()
    assert retry.sent[0]["value"] == value
    assert retry.sent[0]["headers"][DUE_HEADER] == str(due).encode()
    assert retry.sent[0]["headers"][ATTEMPT_HEADER] == b"3"
    assert rec.requests == [] and dlq.sent == []


async def test_retry_due_soon_is_waited_for(tmp_path: Any, receiver: tuple[Receiver, str]) -> None:
    rec, url = receiver
    pipeline, retry, dlq = pipeline_for(tmp_path, url)
    due = int(time.time() * 1000) + 300
    headers = {ATTEMPT_HEADER: b"2", DUE_HEADER: str(due).encode()}
    async with pipeline.app.agents["alerts-retry"].test_context() as ctx:
        await ctx.put(default_codec().encode("Alert", alert()), key=b"cust-1", headers=headers)
        await wait_for(lambda: len(rec.requests) == 1)
    await pipeline.services["webhook"].on_stop()
    assert int(time.time() * 1000) >= due
    assert rec.requests[0][0]["X-Nudge-Attempt"] == "2"
    assert retry.sent == [] and dlq.sent == []


async def test_retries_due_soon_go_out_each_at_its_own_time(tmp_path: Any, receiver: tuple[Receiver, str]) -> None:
    rec, url = receiver
    pipeline, retry, dlq = pipeline_for(tmp_path, url)
    now = int(time.time() * 1000)
    dues = {"al-early": now + 200, "al-late": now + 1500}
    async with pipeline.app.agents["alerts-retry"].test_context() as ctx:
        for alert_id, due in dues.items():
            headers = {ATTEMPT_HEADER: b"2", DUE_HEADER: str(due).encode()}
            await ctx.put(default_codec().encode("Alert", alert(alert_id)), key=b"cust-1", headers=headers, wait=False)
        arrived: dict[str, int] = {}

        def both_arrived() -> bool:
            for headers, _ in rec.requests:
                arrived.setdefault(headers["X-Nudge-Alert-Id"], int(time.time() * 1000))
            return len(arrived) == 2

        await wait_for(both_arrived, timeout=5)
    await pipeline.services["webhook"].on_stop()
    assert arrived["al-early"] >= dues["al-early"] and arrived["al-late"] >= dues["al-late"]
    assert arrived["al-early"] < dues["al-late"] - 500  # the early one did not wait for the late one
    assert retry.sent == [] and dlq.sent == []


@pytest.mark.parametrize(
    ("key", "value", "headers", "reason"),
    [
        (b"cust-1", b"not avro", None, b"undecodable"),
        (b"someone-else", None, None, b"invalid_record"),
        (b"cust-1", None, {ATTEMPT_HEADER: b"x"}, b"invalid_retry_headers"),
    ],
)
async def test_bad_messages_are_dead_lettered(
    tmp_path: Any,
    receiver: tuple[Receiver, str],
    key: bytes,
    value: bytes | None,
    headers: Any,
    reason: bytes,
) -> None:
    rec, url = receiver
    pipeline, retry, dlq = pipeline_for(tmp_path, url)
    value = value or default_codec().encode("Alert", alert())
    agent = "alerts-retry" if headers else "alerts-deliver"
    async with pipeline.app.agents[agent].test_context() as ctx:
        await ctx.put(value, key=key, headers=headers)
        await wait_for(lambda: len(dlq.sent) == 1)
    await pipeline.services["webhook"].on_stop()
    assert dlq.sent[0]["headers"]["dlq.reason"] == reason
    assert dlq.sent[0]["value"] == value
    assert rec.requests == [] and retry.sent == []


async def test_unreachable_receiver_is_a_failed_attempt(tmp_path: Any) -> None:
    pipeline, retry, dlq = pipeline_for(tmp_path, "http://127.0.0.1:9/hook")  # discard port: refused
    async with pipeline.app.agents["alerts-deliver"].test_context() as ctx:
        await ctx.put(default_codec().encode("Alert", alert()), key=b"cust-1")
        await wait_for(lambda: len(retry.sent) == 1)
    await pipeline.services["webhook"].on_stop()
    assert retry.sent[0]["headers"][ERROR_HEADER].startswith(b"ClientConnectorError")


def test_no_webhook_means_no_delivery_agents(tmp_path: Any) -> None:
    pipeline = create_app(
        load_settings(worker_data_dir=tmp_path), store="memory://", agent_modules=("agents.alerts",)
    )
    assert "alerts-deliver" not in pipeline.app.agents


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"webhook_url": "ftp://x/hook", "webhook_secret": "s"}, "http"),
        ({"webhook_url": "http://127.0.0.1/hook"}, "NUDGE_WEBHOOK_SECRET"),
        (
            {"webhook_url": "http://127.0.0.1/hook", "webhook_secret": "s", "webhook_retry_delays": "5,x"},
            "'x'",
        ),
    ],
)
def test_bad_configuration_fails_at_start(tmp_path: Any, overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        create_app(
            load_settings(worker_data_dir=tmp_path, **overrides),
            store="memory://",
            agent_modules=("agents.alerts",),
        )
