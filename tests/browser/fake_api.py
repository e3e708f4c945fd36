"""A small stand-in for the rules endpoints of the HTTP API, for driving the rule editor in a browser.

Same request and response shapes and error format as ``streams/web/api.py`` (validate → ``{valid,
errors}``; backtest → ``{customers, fired, hit_rate, histogram}``; publish → ``{rule_id, version}``;
errors ``{"error": {"code", "message", "field"?}}``), same key check (``rules:write``). Validation is the
real rule compiler; the backtest scores come from a seeded generator, since the simulator is not this
test's subject. It records every call so tests can check what the page sent.
"""

from __future__ import annotations

import json
import random
from typing import Any

from aiohttp import web

from core.rules import RuleValidationError, compile_rule
from streams.web.auth import API_KEYS

RULES_SCOPE = "rules:write"


class RecordingBackend:
    """The two things the rule editor needs from an API backend (``ApiBackend.backtest`` and
    ``publish_rule``), recorded. Used by :class:`FakeRulesApi` and, behind the real ``create_api``, by the
    test that drives the editor against the API itself."""

    def __init__(self) -> None:
        self.backtests: list[tuple[str, int]] = []
        self.versions: dict[str, int] = {}

    async def backtest(self, rule: Any, customers: int, **options: Any) -> dict[str, Any]:
        """``options``: whatever else the API passes along (simulation days, seed...), not used here."""
        self.backtests.append((rule.describe()["id"], customers))
        rng = random.Random(customers)
        scores = [min(0.999, rng.betavariate(2, 3)) for _ in range(customers) if rng.random() < 0.4]
        histogram = [
            {"low": i / 10, "high": (i + 1) / 10, "count": sum(1 for s in scores if i / 10 <= s < (i + 1) / 10)}
            for i in range(10)
        ]
        return {"customers": customers, "fired": len(scores), "hit_rate": len(scores) / customers,
                "histogram": histogram}

    async def publish_rule(self, rule: Any, author: str) -> dict[str, Any]:
        rule_id = rule.describe()["id"]
        self.versions[rule_id] = self.versions.get(rule_id, 0) + 1
        return {"rule_id": rule_id, "version": self.versions[rule_id]}


def _error(status: int, code: str, message: str, field: str | None = None, **extra: Any) -> web.Response:
    error: dict[str, Any] = {"code": code, "message": message}
    if field:
        error["field"] = field
    return web.json_response({"error": error, **extra}, status=status)


class FakeRulesApi:
    def __init__(self, backend: RecordingBackend) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.backend = backend

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/v1/rules:validate", self.validate),
            web.post("/v1/rules:backtest", self.backtest),
            web.post("/v1/rules", self.publish),
        ]

    async def _body(self, request: web.Request, name: str) -> dict[str, Any] | web.Response:
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            return _error(401, "unauthorized", "missing API key (Authorization: Bearer <key>)")
        key = request.app[API_KEYS].authenticate(auth[7:])
        if key is None:
            return _error(401, "unauthorized", "unknown API key")
        if RULES_SCOPE not in key.scopes:
            return _error(403, "forbidden", f"this API key lacks the scope {RULES_SCOPE}")
        if request.content_type != "application/json":
            return _error(415, "unsupported_media_type", "send Content-Type: application/json", "Content-Type")
        body = json.loads(await request.read())
        if not isinstance(body.get("source"), str):
            return _error(422, "missing_field", "source is required", "source")
        self.calls.append((name, body))
        return dict(body)

    @staticmethod
    def _issues(exc: RuleValidationError) -> list[dict[str, Any]]:
        return [{"line": e.line, "column": e.column, "message": e.message, "code": e.code} for e in exc.errors]

    async def validate(self, request: web.Request) -> web.Response:
        body = await self._body(request, "validate")
        if isinstance(body, web.Response):
            return body
        try:
            compile_rule(body["source"], "<request>")
        except RuleValidationError as exc:
            return web.json_response({"valid": False, "errors": self._issues(exc)})
        return web.json_response({"valid": True, "errors": []})

    async def backtest(self, request: web.Request) -> web.Response:
        body = await self._body(request, "backtest")
        if isinstance(body, web.Response):
            return body
        customers = body.get("customers")
        if not isinstance(customers, int) or not 1 <= customers <= 5000:
            return _error(422, "invalid_field", "customers must be a whole number from 1 to 5000", "customers")
        try:
            rule = compile_rule(body["source"], "<request>")
        except RuleValidationError as exc:
            return _error(422, "invalid_rule", f"the rule has {len(exc.errors)} error(s)", "source",
                          errors=self._issues(exc))
        return web.json_response(await self.backend.backtest(rule, customers))

    async def publish(self, request: web.Request) -> web.Response:
        body = await self._body(request, "publish")
        if isinstance(body, web.Response):
            return body
        try:
            rule = compile_rule(body["source"], "<request>")
        except RuleValidationError as exc:
            return _error(422, "invalid_rule", f"the rule has {len(exc.errors)} error(s); nothing was published",
                          "source", errors=self._issues(exc))
        return web.json_response(await self.backend.publish_rule(rule, "test"), status=201)
