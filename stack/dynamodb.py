"""The DynamoDB side: the local server (moto) and the ``insights`` table.

The local DynamoDB is moto in server mode (the ``moto_server`` console script of the ``moto[server]``
dependency), not Amazon's DynamoDB Local: DynamoDB Local's licence is the vendor's own terms, not open
source. moto keeps its data in memory, so the table is created again on every start of the stack.

With ``NUDGE_DYNAMODB_ENDPOINT`` set the stack starts no local server: the value is used as the endpoint
URL, and the special value ``aws`` means AWS's own endpoint for ``NUDGE_AWS_REGION``. Credentials then come
from the standard AWS chain (environment, profile, instance role); the local server gets dummy ones.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import aioboto3
from botocore.exceptions import ClientError

from stack.errors import StackError
from streams.settings import Settings

__all__ = [
    "INSIGHTS_TABLE",
    "INSIGHTS_KEY_SCHEMA",
    "dynamodb_is_local",
    "dynamodb_client_kwargs",
    "moto_server_command",
    "ensure_insights_table",
    "list_tables",
]

INSIGHTS_TABLE = "insights"
INSIGHTS_KEY_SCHEMA = (("customer_id", "HASH"), ("rule_id", "RANGE"))
AWS_ENDPOINT = "aws"
LOCAL_CREDENTIALS = {"aws_access_key_id": "nudge-local", "aws_secret_access_key": "nudge-local"}


def dynamodb_is_local(settings: Settings) -> bool:
    """True when the stack runs DynamoDB itself (no NUDGE_DYNAMODB_ENDPOINT)."""
    return not settings.dynamodb_endpoint


def dynamodb_client_kwargs(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for ``session.client("dynamodb", **kwargs)`` that reach the configured DynamoDB."""
    kwargs: dict[str, Any] = {"region_name": settings.aws_region}
    if dynamodb_is_local(settings):
        kwargs["endpoint_url"] = settings.dynamodb_url
        kwargs.update(LOCAL_CREDENTIALS)
    elif settings.dynamodb_endpoint != AWS_ENDPOINT:
        kwargs["endpoint_url"] = settings.dynamodb_endpoint
    return kwargs


def moto_server_command(settings: Settings) -> list[str]:
    """The moto_server console script installed beside this interpreter, bound to loopback."""
    script = Path(sys.executable).parent / "moto_server"
    if not script.is_file():
        raise StackError(f"{script} is missing: install the project (`pip install -e .`), moto[server] comes with it")
    return [str(script), "-H", settings.host, "-p", str(settings.dynamodb_port)]


async def list_tables(settings: Settings) -> list[str]:
    """One ListTables call: the readiness probe of the DynamoDB service."""
    session = aioboto3.Session()
    async with session.client("dynamodb", **dynamodb_client_kwargs(settings)) as ddb:
        response = await ddb.list_tables(Limit=100)
    return list(response.get("TableNames", []))


async def ensure_insights_table(settings: Settings) -> bool:
    """Create the ``insights`` table if missing (PK customer_id S, SK rule_id S, on demand).

    Returns True when it was created. An existing table with other keys is an error, not something to
    write scores into.
    """
    session = aioboto3.Session()
    async with session.client("dynamodb", **dynamodb_client_kwargs(settings)) as ddb:
        try:
            described = await ddb.describe_table(TableName=INSIGHTS_TABLE)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
                raise
        else:
            keys = tuple((k["AttributeName"], k["KeyType"]) for k in described["Table"]["KeySchema"])
            if keys != INSIGHTS_KEY_SCHEMA:
                raise StackError(
                    f"DynamoDB table {INSIGHTS_TABLE!r} exists with key schema {keys}, expected "
                    f"{INSIGHTS_KEY_SCHEMA}: delete or rename it"
                )
            return False
        try:
            await ddb.create_table(
                TableName=INSIGHTS_TABLE,
                KeySchema=[{"AttributeName": name, "KeyType": kind} for name, kind in INSIGHTS_KEY_SCHEMA],
                AttributeDefinitions=[
                    {"AttributeName": name, "AttributeType": "S"} for name, _ in INSIGHTS_KEY_SCHEMA
                ],
                BillingMode="PAY_PER_REQUEST",
            )
        except ClientError as exc:
            # Another process created it between our describe and create: fine, it is there.
            if exc.response.get("Error", {}).get("Code") != "ResourceInUseException":
                raise
            return False
        await ddb.get_waiter("table_exists").wait(
            TableName=INSIGHTS_TABLE, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
        )
        return True


def main() -> int:
    """``python -m stack.dynamodb``: create the insights table (docker-compose's table-init job uses it)."""
    import asyncio

    from streams.settings import load_settings

    settings = load_settings()
    created = asyncio.run(ensure_insights_table(settings))
    where = settings.dynamodb_endpoint or settings.dynamodb_url
    print(f"table {INSIGHTS_TABLE} {'created' if created else 'already present'} at {where}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
