"""The rule editor in Chromium: type a rule, see an error with its line appear as you type, fix it, run a
backtest and see the chart, publish.

Each test runs twice: against the worker's real API (``streams.web.api.create_api``: its auth, rate limit,
validation and error shapes) with the pages mounted as ``extra_routes``, and against the small stand-in of
``fake_api.py``. Both use the real rule compiler; the backtest figures come from a recording backend."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from aiohttp import web
from playwright.sync_api import expect

from streams.settings import load_settings
from streams.web.api import create_api
from streams.web.pages import page_routes
from tests.browser.conftest import ERASER_KEY, RULES_KEY, ServerThread, key_store, web_app
from tests.browser.fake_api import FakeRulesApi, RecordingBackend

BACKEND_KEY = web.AppKey("test_backend", RecordingBackend)


def real_api() -> web.Application:
    """The worker's API (streams/web/api.py) with the pages mounted, over a recording backend."""
    backend = RecordingBackend()
    app = create_api(cast(Any, backend), key_store(), extra_routes=page_routes(load_settings()))
    app[BACKEND_KEY] = backend
    return app


def fake_api() -> web.Application:
    backend = RecordingBackend()
    app = web_app([*page_routes(load_settings()), *FakeRulesApi(backend).routes()])
    app[BACKEND_KEY] = backend
    return app


@pytest.fixture(params=["real-api", "fake-api"])
def editor_server(request: pytest.FixtureRequest) -> Iterator[tuple[str, RecordingBackend]]:
    """The pages served with the real API (``create_api``) or with the stand-in of ``fake_api.py``."""
    holder: dict[str, web.Application] = {}

    def build() -> web.Application:
        holder["app"] = real_api() if request.param == "real-api" else fake_api()
        return holder["app"]

    server = ServerThread(build).start()
    try:
        yield server.url, holder["app"][BACKEND_KEY]
    finally:
        server.stop()


def enter_key(page: Any, key: str) -> None:
    page.fill("#api-key", key)
    page.press("#api-key", "Enter")


def put_caret_at_end_of_line(page: Any, line: int) -> None:
    page.eval_on_selector(
        "#source",
        """(ta, line) => {
            const lines = ta.value.split("\\n");
            let offset = 0;
            for (let i = 0; i < line; i++) offset += lines[i].length + 1;
            ta.focus();
            ta.setSelectionRange(offset - 1, offset - 1);
        }""",
        line,
    )


def test_write_validate_backtest_publish(page: Any, editor_server: tuple[str, RecordingBackend], artifacts: Path) -> None:
    url, backend = editor_server
    shot = "real-api" if "real-api" in os.environ.get("PYTEST_CURRENT_TEST", "") else "fake-api"
    page.goto(f"{url}/rules/editor")
    expect(page.locator("#validity")).to_have_text("Enter an API key to check the rule")
    enter_key(page, RULES_KEY)
    expect(page.locator("#validity")).to_have_text("✓ Valid rule")
    expect(page.locator("#gutter > div")).to_have_count(16)  # 15 lines and the empty one after the final newline
    expect(page.locator("#publish")).to_be_enabled()

    # Line 10 is "  - item.active": type "x" at its end, as an author would.
    put_caret_at_end_of_line(page, 10)
    page.keyboard.type("x", delay=30)
    expect(page.locator("#publish")).to_be_disabled()
    problem = page.locator("#problems li.problem").first
    expect(problem).to_contain_text("Line 10, col 5")
    expect(problem).to_contain_text("no field 'activex'")
    expect(page.locator("#validity")).to_have_text("1 problem")
    expect(page.locator("#gutter > div.err")).to_have_text(["10"])
    expect(page.locator('#backdrop .line.err[data-line="10"] .col')).to_have_text("i")  # column 5: where the expression starts
    page.screenshot(path=str(artifacts / f"rules-editor-error-{shot}.png"), full_page=True, animations="disabled")

    # Clicking the problem puts the caret on the error.
    problem.click()
    caret = page.eval_on_selector("#source", "ta => ta.value.slice(0, ta.selectionStart).split('\\n').length")
    assert caret == 10

    put_caret_at_end_of_line(page, 10)
    page.keyboard.press("Backspace")
    expect(page.locator("#validity")).to_have_text("✓ Valid rule")
    expect(page.locator("#gutter > div.err")).to_have_count(0)
    expect(page.locator("#problems li")).to_have_text(["No problems found."])

    page.fill("#customers", "500")
    page.click("#run-backtest")
    bars = page.locator("#chart svg rect.bar")
    expect(bars).to_have_count(10)
    assert backend.backtests[-1] == ("big_subscription_renewal", 500)
    expect(page.locator(".stats")).to_contain_text("500")
    counts = [int(bars.nth(i).get_attribute("data-count")) for i in range(10)]
    fired = int(page.locator(".stats .stat").nth(1).locator(".v").inner_text())
    assert sum(counts) == fired > 0
    heights = [float(bars.nth(i).get_attribute("height")) for i in range(10)]
    assert heights[counts.index(max(counts))] == max(heights) > 0  # the tallest bar is the biggest bin

    page.click("#publish")
    expect(page.locator("#publish-result")).to_have_text("Published big_subscription_renewal version 1.")
    page.screenshot(path=str(artifacts / f"rules-editor-{shot}.png"), full_page=True, animations="disabled")
    assert backend.versions == {"big_subscription_renewal": 1}
    assert page.console_errors == []


def test_key_is_kept_for_the_tab_and_refusals_are_shown(
    page: Any, editor_server: tuple[str, RecordingBackend]
) -> None:
    url, _ = editor_server
    page.goto(f"{url}/rules/editor")
    enter_key(page, "nsk_wrong")
    expect(page.locator("#banner")).to_have_text("Validation failed: unknown API key")
    page.click("#forget-key")
    enter_key(page, ERASER_KEY)
    expect(page.locator("#banner")).to_have_text("Validation failed: this API key lacks the scope rules:write")
    page.click("#forget-key")
    enter_key(page, RULES_KEY)
    expect(page.locator("#validity")).to_have_text("✓ Valid rule")
    page.reload()  # sessionStorage keeps the key for this tab
    expect(page.locator("#validity")).to_have_text("✓ Valid rule")
    assert page.evaluate("sessionStorage.getItem('nudge.apiKey')") == RULES_KEY


def test_backtest_of_a_broken_rule_shows_its_errors(page: Any, editor_server: tuple[str, RecordingBackend]) -> None:
    url, _ = editor_server
    page.goto(f"{url}/rules/editor")
    enter_key(page, RULES_KEY)
    expect(page.locator("#validity")).to_have_text("✓ Valid rule")
    page.fill("#source", "id: x\nversion: one\n")
    page.click("#run-backtest")
    result = page.locator("#backtest-result")
    expect(result).to_contain_text("Backtest failed: the rule has ")
    count = int(result.inner_text().split("the rule has ")[1].split(" ")[0])
    expect(page.locator("#problems li.problem")).to_have_count(count)
    expect(page.locator("#publish")).to_be_disabled()
