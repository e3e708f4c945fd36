"""`nudge apikey create|list|revoke`: manage the HTTP API's keys in the keys file.

The file is ``NUDGE_API_KEYS_FILE`` if set, else ``<cache_dir>/api_keys.json`` (``--file`` overrides
both); the worker reads the same file (:func:`default_keys_file`). It holds only SHA-256 hashes, written
with mode 0600; ``create`` prints the new key once, on stdout, and it cannot be shown again.

    nudge apikey create --name mobile-app --scopes insights:read,score --customers c-1,c-2
    nudge apikey list
    nudge apikey revoke mobile-app
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from streams.web.auth import ApiKey

__all__ = ["default_keys_file", "register"]


def default_keys_file(environ: dict[str, str] | None = None) -> Path:
    """Where keys are kept: ``NUDGE_API_KEYS_FILE``, else ``<cache_dir>/api_keys.json``."""
    from streams.settings import load_settings

    env = dict(os.environ) if environ is None else environ
    if env.get("NUDGE_API_KEYS_FILE"):
        return Path(env["NUDGE_API_KEYS_FILE"])
    return load_settings(env).cache_dir / "api_keys.json"


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg,unused-ignore]
    apikey = sub.add_parser("apikey", help="create, list or revoke HTTP API keys (stored hashed)")
    apikey.add_argument("--file", type=Path, help="keys file (default: NUDGE_API_KEYS_FILE or "
                                                  "<cache_dir>/api_keys.json)")
    actions = apikey.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = actions.add_parser("create", help="create a key; prints it once")
    create.add_argument("--name", required=True, help="who uses it (logs, rate limits, event source)")
    create.add_argument("--scopes", required=True, help="comma-separated: insights:read, score, rules:write, "
                                                         "sweeps:run, customers:erase, transactions:write, admin")
    create.add_argument("--customers", help="comma-separated customer ids this key is limited to "
                                            "(default: every customer)")
    create.set_defaults(handler=run_create)
    listing = actions.add_parser("list", help="list keys (names, scopes, customers; never the keys)")
    listing.set_defaults(handler=run_list)
    revoke = actions.add_parser("revoke", help="remove a key by name")
    revoke.add_argument("name")
    revoke.set_defaults(handler=run_revoke)


def _split(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def _load(path: Path) -> dict[str, ApiKey]:
    from streams.web.auth import ApiKeyStore

    if not path.exists():
        return {}
    store = ApiKeyStore.parse(path.read_text(encoding="utf-8"))
    return {digest: key for digest, key in store.items()}


def _save(path: Path, keys: dict[str, ApiKey]) -> None:
    """Write atomically (temp file + rename) with mode 0600."""
    from streams.web.auth import ApiKeyStore

    store = ApiKeyStore(keys)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".api_keys.")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(store.to_json() + "\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _path(args: argparse.Namespace) -> Path:
    return Path(args.file) if args.file else default_keys_file()


def _load_or_report(path: Path, err: TextIO) -> dict[str, ApiKey] | None:
    """The keys of ``path``, or None after telling the user why the file is not a valid keys file."""
    try:
        return _load(path)
    except (ValueError, KeyError, TypeError) as exc:
        print(f"error: {path} is not a valid keys file: {exc}", file=err)
        return None


def run_create(args: argparse.Namespace, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    from streams.web.auth import SCOPES, ApiKey, new_api_key

    scopes = _split(args.scopes)
    unknown = sorted(set(scopes) - SCOPES)
    if not scopes or unknown:
        print(f"error: unknown scope(s) {', '.join(unknown) or '(none given)'}; choose from "
              f"{', '.join(sorted(SCOPES))}", file=err)
        return 2
    name = args.name.strip()
    if not name:
        print("error: --name must not be empty", file=err)
        return 2
    path = _path(args)
    keys = _load_or_report(path, err)
    if keys is None:
        return 1
    if any(k.name == name for k in keys.values()):
        print(f"error: a key named {name!r} exists; revoke it first or choose another name", file=err)
        return 1
    customers = _split(args.customers)
    key, digest = new_api_key()
    keys[digest] = ApiKey(name, frozenset(scopes), frozenset(customers) if customers else None)
    _save(path, keys)
    print(key, file=out)
    print(f"created key {name!r} (scopes {', '.join(sorted(scopes))}"
          f"{'; customers ' + ', '.join(customers) if customers else ''}) in {path}; "
          "the key is shown only now", file=err)
    if not os.environ.get("NUDGE_API_KEYS_FILE") and args.file:
        print(f"serve it with NUDGE_API_KEYS_FILE={path}", file=err)
    return 0


def run_list(args: argparse.Namespace, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    path = _path(args)
    keys = _load_or_report(path, err)
    if keys is None:
        return 1
    if not keys:
        print(f"no keys in {path}", file=err)
        return 0
    for digest, key in keys.items():
        customers = "all customers" if key.customers is None else ",".join(sorted(key.customers))
        print(f"{key.name}\t{','.join(sorted(key.scopes))}\t{customers}\tsha256:{digest[:12]}…", file=out)
    return 0


def run_revoke(args: argparse.Namespace, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    path = _path(args)
    keys = _load_or_report(path, err)
    if keys is None:
        return 1
    kept = {d: k for d, k in keys.items() if k.name != args.name}
    if len(kept) == len(keys):
        print(f"error: no key named {args.name!r} in {path}", file=err)
        return 1
    _save(path, kept)
    print(f"revoked {args.name!r}; restart or reload the workers to stop accepting it", file=err)
    return 0
