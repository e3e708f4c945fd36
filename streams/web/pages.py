"""The pages served next to the API: the live alerts feed (``/alerts``) and the rule editor
(``/rules/editor``), plus their static files and the alerts event stream they read.

Plain HTML, CSS and a little JavaScript from ``streams/web/static`` (no build step, nothing fetched from
another origin: the Content-Security-Policy allows only this server). The pages call the API with the
key the user enters once; it is kept in ``sessionStorage`` (gone when the tab closes) and sent as
``Authorization: Bearer``.

Mount with ``app.add_routes(page_routes(settings))`` (or ``create_api(..., extra_routes=page_routes())``).
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from streams.settings import Settings, load_settings
from streams.web.alerts_feed import AlertsFeed

__all__ = ["STATIC_DIR", "page_routes"]

STATIC_DIR = Path(__file__).resolve().parent / "static"

PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def _page(name: str) -> web.RouteDef:
    path = STATIC_DIR / name

    async def handler(_request: web.Request) -> web.StreamResponse:
        return web.FileResponse(path, headers={**PAGE_HEADERS, "Content-Type": "text/html; charset=utf-8"})

    handler.__name__ = f"page_{path.stem}"
    return web.get(f"/{name.removesuffix('.html').replace('-', '/')}", handler)


def page_routes(settings: Settings | None = None) -> list[web.AbstractRouteDef]:
    """``GET /alerts``, ``GET /rules/editor``, ``GET /v1/alerts/stream`` and ``/static/*``."""
    feed = AlertsFeed(settings or load_settings())
    return [
        _page("alerts.html"),
        _page("rules-editor.html"),
        web.get("/v1/alerts/stream", feed.stream),
        web.static("/static", STATIC_DIR, append_version=False),
    ]
