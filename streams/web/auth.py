"""API keys with scopes (and optionally a set of customers), stored only as SHA-256 hashes.

A client sends its key as ``Authorization: Bearer <key>`` (or ``X-API-Key: <key>``). The server keeps
``sha256(key) → (name, scopes, customers)``, so a leaked configuration reveals no usable key; keys are long
random tokens (:func:`new_api_key`), so an unsalted hash is enough. Handlers declare what they need with
:func:`require_scope` (or call :func:`check_access`); a missing or unknown key is 401, a key without the
scope (or not allowed for the customer named in the request) is 403.

Scopes: ``insights:read``, ``score``, ``rules:write``, ``sweeps:run``, ``customers:erase``,
``transactions:write`` and ``admin``, which implies every other. A key with ``customers`` set (an app
backend acting for some customers) may only touch those customers' data; ``customers`` absent or null
means every customer.

Configuration, first match wins:

- ``NUDGE_API_KEYS_FILE``: a file holding any of the formats below; ``nudge apikey create`` writes the
  JSON object form ``{"<sha256>": {"name": ..., "scopes": [...], "customers": [...] | null}}``.
- ``NUDGE_API_KEYS``: entries separated by ``;``, each ``name:sha256hex:scope,scope`` (no customer
  restriction in this form). The name and the hash contain no ``:``; scopes may
  (``aggregator-x:3f1a…:transactions:write,score``). A JSON list of ``{"name", "sha256", "scopes",
  "customers"?}`` or the JSON object form are accepted too.
- otherwise the ``default_file`` given to :meth:`ApiKeyStore.from_env`, if it exists; else no key at all
  (every request is refused).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import os
import re
import secrets
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

__all__ = [
    "ADMIN",
    "API_KEYS",
    "SCOPES",
    "AccessDenied",
    "ApiKey",
    "ApiKeyStore",
    "authenticate",
    "check_access",
    "current_key",
    "hash_api_key",
    "new_api_key",
    "require_scope",
]

_HEX64 = re.compile(r"[0-9a-f]{64}")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

ADMIN = "admin"
SCOPES: frozenset[str] = frozenset(
    {"insights:read", "score", "rules:write", "sweeps:run", "customers:erase", "transactions:write", ADMIN}
)


@dataclass(frozen=True, slots=True)
class ApiKey:
    """Who is calling (``name`` goes into events as ``source`` and into logs) and what it may do.

    ``customers`` is None for a key that may act for every customer.
    """

    name: str
    scopes: frozenset[str]
    customers: frozenset[str] | None = None

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes or ADMIN in self.scopes

    def may_access(self, customer_id: str) -> bool:
        return self.customers is None or customer_id in self.customers

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "scopes": sorted(self.scopes),
            "customers": None if self.customers is None else sorted(self.customers),
        }


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_api_key(prefix: str = "nsk") -> tuple[str, str]:
    """A new random key and its hash: give the key to the client, configure the hash."""
    key = f"{prefix}_{secrets.token_urlsafe(32)}"
    return key, hash_api_key(key)


def _customers(value: Any) -> frozenset[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(c, str) and c for c in value):
        raise ValueError("customers must be a list of customer ids or null (every customer)")
    return frozenset(value)


def _scopes(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise ValueError("scopes must be a list of strings")
    return value


class ApiKeyStore:
    """The configured keys, by hash."""

    def __init__(self, keys: Mapping[str, ApiKey]) -> None:
        for digest in keys:
            if not _HEX64.fullmatch(digest):
                raise ValueError("API key hashes must be 64 lowercase hex characters (sha256)")
        self._keys = dict(keys)

    @classmethod
    def from_entries(
        cls, entries: Iterable[tuple[str, str, Iterable[str]] | tuple[str, str, Iterable[str], Iterable[str] | None]]
    ) -> ApiKeyStore:
        """From ``(name, sha256hex, scopes)`` or ``(name, sha256hex, scopes, customers)`` tuples."""
        keys: dict[str, ApiKey] = {}
        for entry in entries:
            name, digest, scopes = entry[0], entry[1], entry[2]
            customers = entry[3] if len(entry) > 3 else None
            keys[digest.lower()] = ApiKey(
                name, frozenset(scopes), None if customers is None else frozenset(customers)
            )
        return cls(keys)

    @classmethod
    def parse(cls, spec: str) -> ApiKeyStore:
        """From the ``NUDGE_API_KEYS`` format, a JSON list of ``{"name", "sha256", "scopes", "customers"?}``
        or a JSON object ``{sha256: {"name", "scopes", "customers"?}}`` (see the module docstring)."""
        spec = spec.strip()
        if spec.startswith("["):
            items = json.loads(spec)
            return cls.from_entries(
                (i["name"], i["sha256"], _scopes(i["scopes"]), _customers(i.get("customers"))) for i in items
            )
        if spec.startswith("{"):
            mapping = json.loads(spec)
            return cls.from_entries(
                (v["name"], digest, _scopes(v["scopes"]), _customers(v.get("customers")))
                for digest, v in mapping.items()
            )
        entries = []
        for raw in filter(None, (e.strip() for e in spec.split(";"))):
            name, digest, scopes = raw.split(":", 2)
            entries.append((name, digest, [s.strip() for s in scopes.split(",") if s.strip()]))
        return cls.from_entries(entries)

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, *, default_file: Path | None = None
    ) -> ApiKeyStore:
        """From ``NUDGE_API_KEYS_FILE``, ``NUDGE_API_KEYS`` or ``default_file``; empty (refuse all) if none."""
        env = os.environ if environ is None else environ
        if env.get("NUDGE_API_KEYS_FILE"):
            with open(env["NUDGE_API_KEYS_FILE"], encoding="utf-8") as fh:
                return cls.parse(fh.read())
        if env.get("NUDGE_API_KEYS"):
            return cls.parse(env["NUDGE_API_KEYS"])
        if default_file is not None and default_file.is_file():
            return cls.parse(default_file.read_text(encoding="utf-8"))
        return cls({})

    def __len__(self) -> int:
        return len(self._keys)

    def items(self) -> list[tuple[str, ApiKey]]:
        """``(sha256, key)`` pairs, sorted by name (for listing; the hashes reveal no key)."""
        return sorted(self._keys.items(), key=lambda kv: (kv[1].name, kv[0]))

    def to_json(self) -> str:
        """The JSON object form, which :meth:`parse` reads back."""
        return json.dumps({digest: key.to_json() for digest, key in self.items()}, indent=2, sort_keys=True)

    def authenticate(self, presented: str) -> ApiKey | None:
        digest = hash_api_key(presented)
        for known, key in self._keys.items():  # constant-time compare; a handful of keys
            if hmac.compare_digest(known, digest):
                return key
        return None


API_KEYS = web.AppKey("api_keys", ApiKeyStore)
# aiohttp >= 3.12 has typed request keys (plain strings warn); older ones take the string
_CURRENT: Any = web.RequestKey("nudge.api_key", ApiKey) if hasattr(web, "RequestKey") else "nudge.api_key"


class AccessDenied(Exception):
    """A request refused by access control: ``status`` 401 or 403, a machine ``code`` and a message."""

    def __init__(self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


def _presented_key(request: web.Request) -> str | None:
    auth = request.headers.get("Authorization", "")
    if auth[:7].lower() == "bearer " and auth[7:].strip():
        return auth[7:].strip()
    key = request.headers.get("X-API-Key", "").strip()
    return key or None


def authenticate(request: web.Request) -> ApiKey:
    """The request's key, or :class:`AccessDenied` 401; remembered on the request for :func:`current_key`."""
    if _CURRENT in request:
        key: ApiKey = request[_CURRENT]
        return key
    presented = _presented_key(request)
    if presented is None:
        raise AccessDenied(401, "unauthorized", "missing API key (Authorization: Bearer <key> or X-API-Key)",
                           {"WWW-Authenticate": 'Bearer realm="nudgestream"'})
    found = request.app[API_KEYS].authenticate(presented)
    if found is None:
        raise AccessDenied(401, "unauthorized", "unknown API key",
                           {"WWW-Authenticate": 'Bearer realm="nudgestream", error="invalid_token"'})
    request[_CURRENT] = found
    return found


def check_access(request: web.Request, scope: str, customer_id: str | None = None) -> ApiKey:
    """The request's key if it holds ``scope`` (``admin`` implies all) and may act for ``customer_id``.

    :raises AccessDenied: 401 without a known key, 403 without the scope or for another customer.
    """
    key = authenticate(request)
    if not key.has_scope(scope):
        raise AccessDenied(403, "forbidden", f"this API key lacks the scope {scope}")
    if customer_id is not None and not key.may_access(customer_id):
        raise AccessDenied(403, "forbidden_customer", "this API key may not act for this customer")
    return key


def _error(status: int, code: str, message: str, **headers: str) -> web.Response:
    """The API's one error shape: ``{"error": {"code", "message"}}``."""
    return web.json_response({"error": {"code": code, "message": message}}, status=status, headers=headers or None)


def require_scope(scope: str) -> Callable[[Handler], Handler]:
    """Decorate a handler so it runs only for a valid key holding ``scope`` (else 401/403 JSON).

    A route with a ``{customer_id}`` path parameter also checks the key may act for that customer.
    """

    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def wrapper(request: web.Request) -> web.StreamResponse:
            try:
                check_access(request, scope, request.match_info.get("customer_id"))
            except AccessDenied as denied:
                return _error(denied.status, denied.code, denied.message, **denied.headers)
            return await handler(request)

        return wrapper

    return decorate


def current_key(request: web.Request) -> ApiKey:
    """The authenticated key of a request that went through :func:`require_scope` or :func:`check_access`."""
    key: ApiKey = request[_CURRENT]
    return key
