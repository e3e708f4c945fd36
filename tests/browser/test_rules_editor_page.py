"""The rule editor in Chromium: type a rule, see an error with its line appear as you type, fix it, run a
backtest and see the chart, publish. The rules endpoints are a stand-in (``fake_api.py``) with the API's
shapes; validation is the real rule compiler."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from streams.settings import load_settings
from streams.web.pages import page_routes
from tests.browser.conftest import ERASER_KEY, RULES_KEY, ServerThread, web_app
from tests.browser.fake_api import FakeRulesApi


@pytest.fixture
def editor_server() -> Iterator[tuple[str, FakeRulesApi]]:
    api = FakeRulesApi()
    server = ServerThread(lambda: web_app([*page_routes(load_settings()), *api.routes()])).start()
    try:
        yield server.url, api
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


def test_write_validate_backtest_publish(page: Any, editor_server: tuple[str, FakeRulesApi], artifacts: Path) -> None:
    url, api = editor_server
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
    page.screenshot(path=str(artifacts / "rules-editor-error.png"), full_page=True, animations="disabled")

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
    backtest = [body for name, body in api.calls if name == "backtest"][-1]
    assert backtest["customers"] == 500 and "item.active\n" in backtest["source"]
    expect(page.locator(".stats")).to_contain_text("500")
    counts = [int(bars.nth(i).get_attribute("data-count")) for i in range(10)]
    fired = int(page.locator(".stats .stat").nth(1).locator(".v").inner_text())
    assert sum(counts) == fired > 0
    heights = [float(bars.nth(i).get_attribute("height")) for i in range(10)]
    assert heights[counts.index(max(counts))] == max(heights) > 0  # the tallest bar is the biggest bin

    page.click("#publish")
    expect(page.locator("#publish-result")).to_have_text("Published big_subscription_renewal version 1.")
    page.screenshot(path=str(artifacts / "rules-editor.png"), full_page=True, animations="disabled")
    assert api.versions == {"big_subscription_renewal": 1}
    assert page.console_errors == []


def test_key_is_kept_for_the_tab_and_refusals_are_shown(
    page: Any, editor_server: tuple[str, FakeRulesApi]
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


def test_backtest_of_a_broken_rule_shows_its_errors(page: Any, editor_server: tuple[str, FakeRulesApi]) -> None:
    url, _ = editor_server
    page.goto(f"{url}/rules/editor")
    enter_key(page, RULES_KEY)
    expect(page.locator("#validity")).to_have_text("✓ Valid rule")
    page.fill("#source", "id: x\nversion: one\n")
    page.click("#run-backtest")
    expect(page.locator("#backtest-result")).to_contain_text("Backtest failed: the rule has errors (source)")
    expect(page.locator("#problems li.problem").first).to_be_visible()
    expect(page.locator("#publish")).to_be_disabled()
