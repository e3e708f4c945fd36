"""Browser tests: the pages in headless Chromium (Debian's /usr/bin/chromium, driven by Playwright).

Every test here gets the ``browser`` marker. Without Chromium they skip, saying how to install it
(``apt-get install -y chromium``; Playwright's own browser download is not used). Screenshots go to
``artifacts/`` at the repository root (git-ignored), for people to look at.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from stack import launcher
from streams.settings import PROJECT_ROOT, Settings, load_settings
from streams.web.auth import API_KEYS, ApiKeyStore, hash_api_key

BROWSER_DIR = Path(__file__).resolve().parent
ARTIFACTS = PROJECT_ROOT / "artifacts"
CHROMIUM = os.environ.get("NUDGE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
RULES_KEY = "nsk_test_rules_writer_key"
READER_KEY = "nsk_test_insights_reader_key"
ERASER_KEY = "nsk_test_eraser_only_key"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if BROWSER_DIR in Path(item.path).resolve().parents:
            item.add_marker(pytest.mark.browser)


def key_store() -> ApiKeyStore:
    return ApiKeyStore.from_entries([
        ("rule-author", hash_api_key(RULES_KEY), ["rules:write"]),
        ("feed-reader", hash_api_key(READER_KEY), ["insights:read"]),
        ("eraser", hash_api_key(ERASER_KEY), ["customers:erase"]),
    ])


class ServerThread:
    """An aiohttp app served on 127.0.0.1 from its own event loop in a thread (Playwright's sync API owns
    the test thread)."""

    def __init__(self, build: Callable[[], web.Application]) -> None:
        self.loop = asyncio.new_event_loop()
        self.build = build
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def start(self) -> ServerThread:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(30)
        return self

    async def _start(self) -> None:
        self._runner = web.AppRunner(self.build(), shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"

    async def _shutdown(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in rest:  # e.g. a live stream's consumer: let it close cleanly
            task.cancel()
        await asyncio.gather(*rest, return_exceptions=True)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._shutdown(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


def web_app(routes: list[Any]) -> web.Application:
    app = web.Application()
    app[API_KEYS] = key_store()
    app.add_routes(routes)
    return app


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """A headless Chromium (Playwright's sync API). Module-scoped, not session-scoped: Playwright keeps an
    event loop running in this thread while it is open, which would break the asyncio tests collected
    after the browser tests."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"Chromium not found at {CHROMIUM}: install it with `apt-get install -y chromium`")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(chromium: Any) -> Iterator[Any]:
    context = chromium.new_context(viewport={"width": 1280, "height": 860}, device_scale_factor=1)
    pg = context.new_page()
    pg.set_default_timeout(15_000)
    console: list[str] = []
    pg.on("console", lambda msg: console.append(f"{msg.type}: {msg.text}") if msg.type == "error" else None)
    pg.on("pageerror", lambda exc: console.append(f"pageerror: {exc}"))
    pg.console_errors = console
    try:
        yield pg
    finally:
        context.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def kafka_stack() -> Iterator[Settings]:
    """The real local stack (as tests/integration's ``stack`` fixture): for the live feed.

    The launcher runs in a worker thread: Playwright's sync API keeps an event loop running in this
    thread, and the launcher's probes use ``asyncio.run``."""
    settings = load_settings()

    def echo(line: str) -> None:
        print(f"[stack] {line}")

    with ThreadPoolExecutor(1) as pool:
        result = pool.submit(launcher.up, settings, echo=echo).result()
        try:
            yield settings
        finally:
            if result.started:
                pool.submit(launcher.down, settings, only=result.started, echo=echo).result()
