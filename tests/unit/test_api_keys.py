"""API keys: scopes (admin implies all), customer restrictions, configuration formats, `nudge apikey`."""

from __future__ import annotations

import argparse
import io
import json
import stat
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from streams.web import apikey_cli
from streams.web.auth import API_KEYS, ApiKey, ApiKeyStore, hash_api_key, require_scope


def test_admin_implies_every_scope_and_customers_restrict() -> None:
    admin = ApiKey("ops", frozenset({"admin"}))
    assert admin.has_scope("rules:write") and admin.has_scope("customers:erase") and admin.may_access("anyone")
    app = ApiKey("app", frozenset({"insights:read"}), frozenset({"c1"}))
    assert app.has_scope("insights:read") and not app.has_scope("score")
    assert app.may_access("c1") and not app.may_access("c2")


def test_configuration_formats() -> None:
    d1, d2 = hash_api_key("one"), hash_api_key("two")
    as_object = ApiKeyStore.parse(json.dumps({d1: {"name": "a", "scopes": ["score"], "customers": ["c1"]},
                                              d2: {"name": "b", "scopes": ["admin"]}}))
    assert as_object.authenticate("one") == ApiKey("a", frozenset({"score"}), frozenset({"c1"}))
    assert as_object.authenticate("two") == ApiKey("b", frozenset({"admin"}), None)
    as_list = ApiKeyStore.parse(json.dumps([{"name": "a", "sha256": d1, "scopes": ["score"], "customers": ["c1"]}]))
    assert as_list.authenticate("one") == as_object.authenticate("one")
    as_text = ApiKeyStore.parse(f"a:{d1}:score,transactions:write")
    assert as_text.authenticate("one") == ApiKey("a", frozenset({"score", "transactions:write"}))
    assert ApiKeyStore.parse(as_object.to_json()).items() == as_object.items()
    with pytest.raises(ValueError, match="customers"):
        ApiKeyStore.parse(json.dumps({d1: {"name": "a", "scopes": ["score"], "customers": "c1"}}))


def test_from_env_order(tmp_path: Path) -> None:
    digest = hash_api_key("k")
    keys_file = tmp_path / "keys.json"
    keys_file.write_text(json.dumps({digest: {"name": "from-file", "scopes": ["score"]}}))
    default = tmp_path / "default.json"
    default.write_text(json.dumps({digest: {"name": "from-default", "scopes": ["score"]}}))
    found = ApiKeyStore.from_env({"NUDGE_API_KEYS_FILE": str(keys_file)}, default_file=default).authenticate("k")
    assert found is not None and found.name == "from-file"
    found = ApiKeyStore.from_env({"NUDGE_API_KEYS": f"from-env:{digest}:score"}, default_file=default).authenticate("k")
    assert found is not None and found.name == "from-env"
    found = ApiKeyStore.from_env({}, default_file=default).authenticate("k")
    assert found is not None and found.name == "from-default"
    assert len(ApiKeyStore.from_env({}, default_file=tmp_path / "missing.json")) == 0


async def test_require_scope_checks_the_path_customer() -> None:
    """The ingestion decorator also refuses a restricted key for another customer's path."""

    @require_scope("transactions:write")
    async def handler(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app = web.Application()
    app[API_KEYS] = ApiKeyStore.parse(json.dumps({hash_api_key("k"): {
        "name": "agg", "scopes": ["transactions:write"], "customers": ["c1"]}}))
    app.router.add_post("/v1/customers/{customer_id}/transactions", handler)
    async with TestClient(TestServer(app)) as client:
        assert (await client.post("/v1/customers/c1/transactions", headers={"X-API-Key": "k"})).status == 200
        resp = await client.post("/v1/customers/c2/transactions", headers={"X-API-Key": "k"})
        assert resp.status == 403 and (await resp.json())["error"]["code"] == "forbidden_customer"


def _run(fn: Any, **kwargs: Any) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = fn(argparse.Namespace(**kwargs), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_apikey_create_list_revoke(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "keys.json"
    code, out, err = _run(apikey_cli.run_create, file=path, name="mobile", scopes="insights:read,score",
                          customers="c1,c2")
    assert code == 0, err
    key = out.strip()
    assert key.startswith("nsk_") and len(key) > 40
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert key not in path.read_text()  # only the hash is stored
    found = ApiKeyStore.parse(path.read_text()).authenticate(key)
    assert found == ApiKey("mobile", frozenset({"insights:read", "score"}), frozenset({"c1", "c2"}))

    code, _, err = _run(apikey_cli.run_create, file=path, name="mobile", scopes="score", customers=None)
    assert code == 1 and "exists" in err
    code, _, err = _run(apikey_cli.run_create, file=path, name="x", scopes="score,reade", customers=None)
    assert code == 2 and "reade" in err
    code, out2, _ = _run(apikey_cli.run_create, file=path, name="ops", scopes="admin", customers=None)
    assert code == 0 and out2.strip() != key

    code, listing, _ = _run(apikey_cli.run_list, file=path)
    lines = listing.strip().splitlines()
    assert code == 0 and len(lines) == 2
    assert lines[0].startswith("mobile\tinsights:read,score\tc1,c2") and "all customers" in lines[1]
    assert key not in listing

    code, _, _ = _run(apikey_cli.run_revoke, file=path, name="mobile")
    assert code == 0 and ApiKeyStore.parse(path.read_text()).authenticate(key) is None
    assert _run(apikey_cli.run_revoke, file=path, name="mobile")[0] == 1


def test_apikey_default_file(tmp_path: Path) -> None:
    assert apikey_cli.default_keys_file({"NUDGE_API_KEYS_FILE": str(tmp_path / "k.json")}) == tmp_path / "k.json"
    assert apikey_cli.default_keys_file({"NUDGE_CACHE_DIR": str(tmp_path)}) == tmp_path / "api_keys.json"


def test_apikey_registers_on_the_nudge_parser() -> None:
    parser = argparse.ArgumentParser()
    apikey_cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["apikey", "create", "--name", "n", "--scopes", "score"])
    assert args.handler is apikey_cli.run_create


async def test_stack_api_reads_the_keys_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker's app serves the keys `nudge apikey create` wrote (no store is touched for /v1/rules:validate)."""
    from streams.settings import Settings
    from streams.web.backends import create_stack_api

    path = tmp_path / "keys.json"
    code, out, _ = _run(apikey_cli.run_create, file=path, name="author", scopes="rules:write", customers=None)
    assert code == 0
    monkeypatch.setenv("NUDGE_API_KEYS_FILE", str(path))

    async def no_score(customer_id: str, rule_id: str) -> dict[str, Any]:
        raise AssertionError("not called")

    app = create_stack_api(Settings(kafka_port=1, dynamodb_port=1), score=no_score)
    async with TestClient(TestServer(app)) as client:
        resp = await client.post("/v1/rules:validate", data=b"id: x", headers={"X-API-Key": out.strip()})
        assert resp.status == 200 and (await resp.json())["valid"] is False
        assert (await client.post("/v1/rules:validate", data=b"id: x", headers={"X-API-Key": "nope"})).status == 401
