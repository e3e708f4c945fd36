"""What the HTTP API needs from the rest of nudgestream: the :class:`ApiBackend` protocol and its errors.

The API (``streams/web/api.py``) does HTTP, access control and input checks only; everything that reads
or writes data goes through a backend. The worker builds one from the concrete parts in
``streams/web/backends.py`` plus its own ``score`` (table lookup routed to the owning worker) and
``readiness``; tests use a fake. Backends raise :class:`ApiError` (or :class:`NotFound`) for answers the
client must see; any other exception is a bug and becomes a logged 500.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from core.rules import CompiledRule

__all__ = ["ApiBackend", "ApiError", "Check", "InsightsPage", "NotFound", "Unavailable"]


class ApiError(Exception):
    """An answer for the client: HTTP ``status``, machine ``code``, human ``message``, and the request
    ``field`` at fault if one is; ``extra`` is merged into the response body (e.g. a list of errors)."""

    def __init__(self, status: int, code: str, message: str, *, field: str | None = None,
                 extra: Mapping[str, Any] | None = None, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.extra = dict(extra or {})
        self.headers = dict(headers or {})


class NotFound(ApiError):
    """404 for an unknown ``kind`` (customer, rule, sweep) named by ``field``."""

    def __init__(self, kind: str, ident: str, *, field: str | None = None) -> None:
        super().__init__(404, f"{kind}_not_found", f"unknown {kind} {ident!r}", field=field or f"{kind}_id")
        self.kind = kind
        self.ident = ident


class Unavailable(ApiError):
    """503: a store the answer depends on (Kafka, DynamoDB) did not answer; the client may retry."""

    def __init__(self, message: str) -> None:
        super().__init__(503, "unavailable", message, headers={"Retry-After": "5"})


@dataclass(frozen=True, slots=True)
class Check:
    """One readiness check: whether it passed and a short detail an operator can act on."""

    ok: bool
    detail: str = ""


@dataclass(frozen=True, slots=True)
class InsightsPage:
    """One page of a customer's insights, ranked; ``next_cursor`` is None on the last page."""

    items: Sequence[Mapping[str, Any]]
    next_cursor: str | None = None
    total: int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


class ApiBackend(Protocol):
    """Everything the HTTP API reads and writes. Blocking clients must run off the event loop."""

    async def score(self, customer_id: str, rule_id: str) -> Mapping[str, Any]:
        """The rule's outcome for the customer's current features, computed now, in the form of
        :meth:`core.rules.RuleOutcome.to_dict` (rule_id, rule_version, eligible, score, items, message,
        reasons). Raises ``NotFound("customer", …)`` or ``NotFound("rule", …)``."""
        ...

    async def insights(self, customer_id: str, *, limit: int, cursor: str | None,
                       include_ineligible: bool) -> InsightsPage:
        """The customer's stored insights ranked by score (highest first), ``limit`` per page, from
        ``cursor`` (opaque, from the previous page). A bad cursor raises ``ApiError(400, field="cursor")``."""
        ...

    async def list_rules(self, *, include_deleted: bool) -> list[dict[str, Any]]:
        """The latest version of every rule (id, version, title, kind, trigger, published_at, author,
        deleted)."""
        ...

    async def get_rule(self, rule_id: str) -> dict[str, Any]:
        """The latest version with its source, plus ``history``: every version still on the topic."""
        ...

    async def publish_rule(self, rule: CompiledRule, author: str) -> dict[str, Any]:
        """Publish a validated rule as version latest + 1; returns at least rule_id and version, and
        ``unchanged: true`` (nothing published) when it equals the latest version."""
        ...

    async def delete_rule(self, rule_id: str, author: str) -> dict[str, Any]:
        """Withdraw a rule (its scores are deleted by the workers); ``NotFound`` if unknown or deleted."""
        ...

    async def backtest(self, rule: CompiledRule, customers: int, *, days: int, seed: int) -> dict[str, Any]:
        """Run a draft over ``customers`` simulated customers with ``days`` of history (deterministic from
        ``seed``): customers, fired, hit_rate, histogram [{low, high, count}], and what else is known."""
        ...

    async def start_sweep(self, rule_ids: list[str], *, dry_run: bool, requested_by: str) -> dict[str, Any]:
        """Publish a sweep of every active customer (for ``rule_ids``, empty = all rules)."""
        ...

    async def list_sweeps(self) -> list[dict[str, Any]]:
        ...

    async def get_sweep(self, sweep_id: str) -> dict[str, Any]:
        """Progress of one sweep (customers done/total, evaluations, ETA); ``NotFound`` if unknown."""
        ...

    async def erase_customer(self, customer_id: str, *, requested_by: str) -> dict[str, Any]:
        """Publish the customer's erasure; returns what will be removed."""
        ...

    async def readiness(self) -> Mapping[str, Check]:
        """Named checks (Kafka reachable, partitions assigned, tables recovered)."""
        ...
