"""Insights from the DynamoDB table ``insights`` (aioboto3), ranked by score with keyset paging.

The sink connector writes one item per (customer, rule) from the JSON score (PK customer_id, SK rule_id),
so a customer has a few dozen items: they are all read (one query, paged by DynamoDB if ever large) and
ranked here, and the cursor is the last item's rank key, not an offset.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from streams.settings import Settings
from streams.web.api_backend import ApiError, Check, InsightsPage, Unavailable

__all__ = ["INSIGHTS_TABLE", "DynamoInsights", "decode_cursor", "encode_cursor", "insight_from_item", "rank_insights"]

log = logging.getLogger(__name__)

INSIGHTS_TABLE = "insights"


def _rank_key(item: Mapping[str, Any]) -> tuple[int, float, str]:
    """Eligible with a score first (highest first), then eligible without one, then not eligible."""
    score = item.get("score")
    has_score = isinstance(score, int | float) and not isinstance(score, bool)
    group = (0 if has_score else 1) if item.get("eligible") else 2
    return group, -float(score) if has_score else 0.0, str(item.get("rule_id", ""))  # type: ignore[arg-type]


def encode_cursor(key: tuple[int, float, str]) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(key)).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, float, str]:
    """The rank key a cursor continues after; ``ApiError(400, field="cursor")`` if it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        group, neg_score, rule_id = json.loads(raw)
        if not (isinstance(group, int) and isinstance(neg_score, int | float) and isinstance(rule_id, str)):
            raise ValueError("bad cursor fields")
        return group, float(neg_score), rule_id
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError) as exc:
        raise ApiError(400, "invalid_cursor", "cursor is not one returned by this endpoint", field="cursor") from exc


def rank_insights(items: Iterable[Mapping[str, Any]], *, limit: int, cursor: str | None,
                  include_ineligible: bool) -> InsightsPage:
    """One page of ``items`` ranked by :func:`_rank_key`, after ``cursor``.

    Keyset paging (the cursor is the last item's rank key, not an offset), so a score changing between
    pages moves that item but never repeats or skips the others.
    """
    chosen = [i for i in items if include_ineligible or i.get("eligible")]
    ranked = sorted(chosen, key=_rank_key)
    if cursor:
        after = decode_cursor(cursor)
        ranked = [i for i in ranked if _rank_key(i) > after]
    page = ranked[:limit]
    more = len(ranked) > limit
    return InsightsPage(items=page, next_cursor=encode_cursor(_rank_key(page[-1])) if more and page else None,
                        total=len(chosen))


def _plain(value: Any) -> Any:
    """DynamoDB's deserialised values as JSON: Decimal → int/float, sets → sorted lists."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() and "." not in str(value) else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted(_plain(v) for v in value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return value


def insight_from_item(item: Mapping[str, Any]) -> dict[str, Any]:
    """A stored item (already deserialised) as the API's insight; timestamps in ms become ISO 8601.

    The pipeline stores only eligible scores (``core.scoring.score_value``: a rule that stops being
    eligible is tombstoned, and the sink deletes its item), so an item without ``eligible`` is eligible.
    """
    out = {k: _plain(v) for k, v in item.items()}
    out.setdefault("eligible", True)
    evaluated = out.get("evaluated_at")
    if isinstance(evaluated, int | float) and not isinstance(evaluated, bool):
        out["evaluated_at"] = datetime.fromtimestamp(evaluated / 1000, UTC).isoformat()
    score = out.get("score")
    if isinstance(score, int) and not isinstance(score, bool):
        out["score"] = float(score)
    return out


class DynamoInsights:
    """Reads the ``insights`` table: every item of a customer (one per rule, a few dozen), ranked here."""

    def __init__(self, settings: Settings, table: str = INSIGHTS_TABLE) -> None:
        self.settings = settings
        self.table = table
        self._clients: dict[str, Any] = {}
        self._stack = contextlib.AsyncExitStack()
        self._opening = asyncio.Lock()

    async def _client(self, purpose: str = "query", *, timeout_s: float = 5.0, attempts: int = 3) -> Any:
        """A long-lived client per purpose (creating one costs hundreds of ms), with bounded timeouts and
        retries so a request answers before its caller gives up. Closed by :meth:`close`."""
        if purpose in self._clients:
            return self._clients[purpose]
        import aioboto3
        from botocore.config import Config

        from stack.dynamodb import dynamodb_client_kwargs

        async with self._opening:
            if purpose not in self._clients:
                config = Config(connect_timeout=timeout_s, read_timeout=timeout_s,
                                retries={"max_attempts": attempts, "mode": "standard"})
                client = aioboto3.Session().client("dynamodb", config=config, **dynamodb_client_kwargs(self.settings))
                self._clients[purpose] = await self._stack.enter_async_context(client)
        return self._clients[purpose]

    async def close(self) -> None:
        self._clients.clear()
        await self._stack.aclose()

    async def items(self, customer_id: str) -> list[dict[str, Any]]:
        from boto3.dynamodb.types import TypeDeserializer
        from botocore.exceptions import BotoCoreError, ClientError

        deserialize = TypeDeserializer().deserialize
        found: list[dict[str, Any]] = []
        try:
            ddb = await self._client()
            kwargs: dict[str, Any] = {
                "TableName": self.table,
                "KeyConditionExpression": "customer_id = :c",
                "ExpressionAttributeValues": {":c": {"S": customer_id}},
                "ConsistentRead": True,
            }
            while True:
                response = await ddb.query(**kwargs)
                found.extend({k: deserialize(v) for k, v in raw.items()} for raw in response.get("Items", []))
                if "LastEvaluatedKey" not in response:
                    break
                kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        except (BotoCoreError, ClientError, OSError) as exc:
            log.warning("insights query failed: %s", type(exc).__name__)
            raise Unavailable(f"DynamoDB did not answer: {type(exc).__name__}") from exc
        return [insight_from_item(i) for i in found]

    async def insights(self, customer_id: str, *, limit: int, cursor: str | None,
                       include_ineligible: bool) -> InsightsPage:
        if cursor:
            decode_cursor(cursor)  # a bad cursor is the client's error even when DynamoDB is down
        return rank_insights(await self.items(customer_id), limit=limit, cursor=cursor,
                             include_ineligible=include_ineligible)

    async def ping(self) -> Check:
        try:
            ddb = await self._client("probe", timeout_s=1.5, attempts=1)
            await ddb.describe_table(TableName=self.table)
        except Exception as exc:  # noqa: BLE001 - any failure means not ready
            return Check(False, f"DynamoDB table {self.table}: {type(exc).__name__}")
        return Check(True, f"table {self.table} reachable")
