"""The worker's web server: the HTTP API, the pages and the ingestion endpoint, on one aiohttp app.

Faust's own web server is disabled (so its ``/table`` and ``/router`` endpoints do not exist); this
service serves our app on the worker's ``web_host:web_port``, which is also the URL Faust advertises to
the other workers as this worker's ``canonical_url``. That is what makes ``POST /v1/score`` answerable
by any worker: the table router says which worker owns the customer's partition, and a request for a
customer owned elsewhere is forwarded there over an internal endpoint authenticated by a token shared
by the workers (``NUDGE_INTERNAL_TOKEN``, or a file in the cache folder for workers on one machine).
"""

from __future__ import annotations

import hmac
import logging
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from mode import Service

from core.customer import CustomerRecord
from core.features import features_at
from streams.app import Pipeline
from streams.web.api_backend import ApiError, NotFound, Unavailable
from streams.web.backends import create_stack_api
from streams.web.ingest import RedactingAccessLogger, add_kafka_ingest
from streams.web.pages import page_routes

__all__ = ["WebServer", "internal_token"]

log = logging.getLogger(__name__)

INTERNAL_SCORE_PATH = "/internal/v1/score"
TOKEN_HEADER = "X-Nudge-Internal-Token"


def internal_token(cache_dir: Path) -> str:
    """The token workers use to call each other: from the environment, else one file per machine."""
    token = os.environ.get("NUDGE_INTERNAL_TOKEN")
    if token:
        return token
    path = cache_dir / "internal-token"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(32))
    return path.read_text().strip()


class WebServer(Service):
    """Serves the worker's aiohttp app for as long as the Faust worker runs."""

    def __init__(self, pipeline: Pipeline, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pipeline = pipeline
        self.token = internal_token(pipeline.settings.cache_dir)
        self._runner: web.AppRunner | None = None
        self._client: aiohttp.ClientSession | None = None

    def build_app(self) -> web.Application:
        settings = self.pipeline.settings
        internal = [web.post(INTERNAL_SCORE_PATH, self._internal_score)]
        app = create_stack_api(
            settings,
            score=self.score,
            pipeline=self.pipeline,
            extra_routes=[*page_routes(settings), *internal],
        )
        add_kafka_ingest(app, settings)
        return app

    async def on_start(self) -> None:
        settings = self.pipeline.settings
        self._client = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        self._runner = web.AppRunner(self.build_app(), access_log_class=RedactingAccessLogger)
        await self._runner.setup()
        await web.TCPSite(self._runner, settings.host, settings.web_port).start()
        log.info("web server on http://%s:%s", settings.host, settings.web_port)

    async def on_stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._client is not None:
            await self._client.close()

    # -- scoring, routed to the worker that owns the customer ------------------------------------------
    def score_locally(self, customer_id: str, rule_id: str) -> dict[str, Any]:
        feed = self.pipeline.services["catalogue"]
        rule = feed.current.get(rule_id)
        if rule is None:
            raise NotFound("rule", rule_id)
        raw = self.pipeline.tables["customers"].get(customer_id.encode())
        if raw is None:
            raise NotFound("customer", customer_id)
        record = CustomerRecord.from_bytes(raw)
        features = features_at(record.state, record.as_of_datetime, rule.reads)
        outcome = rule.evaluate(features, explain=True)
        return {"customer_id": customer_id, "as_of": record.as_of_datetime.isoformat(), **outcome.to_dict()}

    async def score(self, customer_id: str, rule_id: str) -> Mapping[str, Any]:
        app = self.pipeline.app
        try:
            owner = str(app.router.key_store("customers", customer_id.encode())).rstrip("/")
        except Exception as exc:  # noqa: BLE001 - no assignment yet (starting, rebalancing)
            raise Unavailable(f"the owner of this customer is not known yet ({type(exc).__name__})") from exc
        if owner == str(app.conf.canonical_url).rstrip("/"):
            return self.score_locally(customer_id, rule_id)
        assert self._client is not None
        try:
            async with self._client.post(
                owner + INTERNAL_SCORE_PATH,
                json={"customer_id": customer_id, "rule_id": rule_id},
                headers={TOKEN_HEADER: self.token},
            ) as response:
                body = await response.json()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise Unavailable(
                f"the worker owning this customer did not answer ({type(exc).__name__})"
            ) from exc
        if response.status != 200:
            error = body.get("error", {})
            raise ApiError(response.status, error.get("code", "error"), error.get("message", "owner refused"))
        return dict(body)

    async def _internal_score(self, request: web.Request) -> web.Response:
        if not hmac.compare_digest(request.headers.get(TOKEN_HEADER, ""), self.token):
            return web.json_response(
                {"error": {"code": "forbidden", "message": "internal endpoint"}}, status=403
            )
        try:
            body = await request.json()
            customer_id, rule_id = str(body["customer_id"]), str(body["rule_id"])
        except (ValueError, KeyError, TypeError) as exc:
            message = f"expected a JSON object with customer_id and rule_id ({type(exc).__name__})"
            return web.json_response({"error": {"code": "bad_request", "message": message}}, status=400)
        try:
            return web.json_response(self.score_locally(customer_id, rule_id))
        except ApiError as exc:
            return web.json_response({"error": {"code": exc.code, "message": exc.message}}, status=exc.status)
