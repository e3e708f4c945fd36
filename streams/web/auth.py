"""API keys with scopes, stored only as SHA-256 hashes.

A client sends its key as ``Authorization: Bearer <key>`` (or ``X-API-Key: <key>``). The server keeps
``sha256(key) → (name, scopes)``, so a leaked configuration reveals no usable key; keys are long random
tokens (:func:`new_api_key`), so an unsalted hash is enough. Handlers declare what they need with
:func:`require_scope`; a missing or unknown key is 401, a key without the scope is 403.

Configuration (``NUDGE_API_KEYS``): entries separated by ``;``, each ``name:sha256hex:scope,scope``.
The name and the hash contain no ``:``; scopes may (``aggregator-x:3f1a…:transactions:write,scores:read``).
``NUDGE_API_KEYS_FILE`` may instead name a file holding that text or a JSON list.
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

from aiohttp import web

__all__ = [
    "API_KEYS",
    "ApiKey",
    "ApiKeyStore",
    "current_key",
    "hash_api_key",
    "new_api_key",
    "require_scope",
]

_HEX64 = re.compile(r"[0-9a-f]{64}")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class ApiKey:
    """Who is calling (``name`` goes into events as ``source`` and into logs) and what it may do."""

    name: str
    scopes: frozenset[str]


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_api_key(prefix: str = "nsk") -> tuple[str, str]:
    """A new random key and its hash: give the key to the client, configure the hash."""
    key = f"{prefix}_{secrets.token_urlsafe(32)}"
    return key, hash_api_key(key)


class ApiKeyStore:
    """The configured keys, by hash."""

    def __init__(self, keys: Mapping[str, ApiKey]) -> None:
        for digest in keys:
            if not _HEX64.fullmatch(digest):
                raise ValueError("API key hashes must be 64 lowercase hex characters (sha256)")
        self._keys = dict(keys)

    @classmethod
    def from_entries(cls, entries: Iterable[tuple[str, str, Iterable[str]]]) -> ApiKeyStore:
        """From ``(name, sha256hex, scopes)`` triples."""
        return cls({digest.lower(): ApiKey(name, frozenset(scopes)) for name, digest, scopes in entries})

    @classmethod
    def parse(cls, spec: str) -> ApiKeyStore:
        """From the ``NUDGE_API_KEYS`` format (see the module docstring) or a JSON list of objects
        ``{"name", "sha256", "scopes"}``."""
        spec = spec.strip()
        if spec.startswith("["):
            items = json.loads(spec)
            return cls.from_entries((i["name"], i["sha256"], i["scopes"]) for i in items)
        entries = []
        for raw in filter(None, (e.strip() for e in spec.split(";"))):
            name, digest, scopes = raw.split(":", 2)
            entries.append((name, digest, [s.strip() for s in scopes.split(",") if s.strip()]))
        return cls.from_entries(entries)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ApiKeyStore:
        """From ``NUDGE_API_KEYS`` or the file named by ``NUDGE_API_KEYS_FILE``; empty (refuse all) if neither."""
        env = os.environ if environ is None else environ
        if env.get("NUDGE_API_KEYS_FILE"):
            with open(env["NUDGE_API_KEYS_FILE"], encoding="utf-8") as fh:
                return cls.parse(fh.read())
        return cls.parse(env.get("NUDGE_API_KEYS", ""))

    def __len__(self) -> int:
        return len(self._keys)

    def authenticate(self, presented: str) -> ApiKey | None:
        digest = hash_api_key(presented)
        for known, key in self._keys.items():  # constant-time compare; a handful of keys
            if hmac.compare_digest(known, digest):
                return key
        return None


API_KEYS = web.AppKey("api_keys", ApiKeyStore)
_CURRENT = web.RequestKey("nudge.api_key", ApiKey)


def _presented_key(request: web.Request) -> str | None:
    auth = request.headers.get("Authorization", "")
    if auth[:7].lower() == "bearer " and auth[7:].strip():
        return auth[7:].strip()
    key = request.headers.get("X-API-Key", "").strip()
    return key or None


def _error(status: int, error: str, message: str, **headers: str) -> web.Response:
    return web.json_response({"error": error, "message": message}, status=status, headers=headers or None)


def require_scope(scope: str) -> Callable[[Handler], Handler]:
    """Decorate a handler so it runs only for a valid key holding ``scope`` (else 401/403 JSON)."""

    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def wrapper(request: web.Request) -> web.StreamResponse:
            presented = _presented_key(request)
            if presented is None:
                return _error(401, "unauthorized", "missing API key (Authorization: Bearer <key>)",
                              **{"WWW-Authenticate": 'Bearer realm="nudgestream"'})
            key = request.app[API_KEYS].authenticate(presented)
            if key is None:
                return _error(401, "unauthorized", "unknown API key",
                              **{"WWW-Authenticate": 'Bearer realm="nudgestream", error="invalid_token"'})
            if scope not in key.scopes:
                return _error(403, "forbidden", f"this API key lacks the scope {scope}")
            request[_CURRENT] = key
            return await handler(request)

        return wrapper

    return decorate


def current_key(request: web.Request) -> ApiKey:
    """The authenticated key of a request that went through :func:`require_scope`."""
    return request[_CURRENT]
