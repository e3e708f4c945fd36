"""The live alerts page in Chromium against the real stack: an alert produced to Kafka appears in the feed."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer
from playwright.sync_api import expect

from schemas.codec import default_codec
from streams.settings import Settings
from streams.web.pages import page_routes
from tests.browser.conftest import READER_KEY, RULES_KEY, ServerThread, web_app

pytestmark = pytest.mark.integration


@pytest.fixture
def feed_server(kafka_stack: Settings) -> Iterator[str]:
    server = ServerThread(lambda: web_app(page_routes(kafka_stack))).start()
    try:
        yield server.url
    finally:
        server.stop()


def produce_alert(settings: Settings, alert_id: str, customer: str, title: str, message: str, score: float,
                  item: str | None) -> None:
    producer = Producer({"bootstrap.servers": settings.bootstrap_servers, "acks": "all"})
    producer.produce("alerts", key=customer.encode(), value=default_codec().encode("Alert", {
        "alert_id": alert_id, "customer_id": customer, "rule_id": "subscription_price_rise", "rule_version": 3,
        "item_key": item, "title": title, "message": message, "score": score,
        "created_at": datetime.now(UTC), "transaction_id": None,
    }))
    assert producer.flush(30) == 0


def test_alert_appears_in_the_live_feed(
    page: Any, feed_server: str, kafka_stack: Settings, artifacts: Path
) -> None:
    page.goto(f"{feed_server}/alerts")
    expect(page.locator("#status")).to_have_text("Enter an API key")
    page.fill("#api-key", READER_KEY)
    page.press("#api-key", "Enter")
    expect(page.locator("#status")).to_have_text("Live", timeout=20_000)
    expect(page.locator("#empty")).to_be_visible()

    run = uuid.uuid4().hex[:8]
    shown = [
        (f"ui-{run}-1", "Annual subscription renews soon", "Amazon Prime renews in 6 days for about £95.00.", 0.72, "amazon prime"),
        (f"ui-{run}-2", "Netflix costs more", "Netflix went from £10.99 to £12.99 a month.", 0.86, "netflix"),
    ]
    for alert_id, title, message, score, item in shown:
        produce_alert(kafka_stack, alert_id, f"cust-{run}", title, message, score, item)
    for alert_id, title, message, _, _ in shown:
        card = page.locator(f'[data-alert-id="{alert_id}"]')
        expect(card).to_be_visible(timeout=20_000)
        expect(card.locator(".alert-title")).to_have_text(title)
        expect(card.locator(".alert-message")).to_have_text(message)
        expect(card).to_contain_text(f"customer cust-{run}")
    newest_first = page.locator(".alert-card").first
    expect(newest_first).to_have_attribute("data-alert-id", shown[-1][0])
    expect(page.locator("#empty")).to_be_hidden()
    page.screenshot(path=str(artifacts / "alerts-feed.png"), full_page=True, animations="disabled")
    assert page.console_errors == []


def test_feed_refuses_a_key_without_the_scope(page: Any, feed_server: str) -> None:
    page.goto(f"{feed_server}/alerts")
    page.fill("#api-key", RULES_KEY)
    page.press("#api-key", "Enter")
    expect(page.locator("#banner")).to_have_text("The alert stream refused: this API key lacks the scope insights:read")
    expect(page.locator("#status")).to_have_text("Not allowed")
