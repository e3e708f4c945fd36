"""The first vertical slice: a running transaction count per customer in a RocksDB table.

It proves the plumbing end to end (Kafka in, table with changelog, Kafka out) and stays as the simplest
example of an agent in this codebase.
"""

from __future__ import annotations

import json

from faust import StreamT

from streams.app import Pipeline

__all__ = ["register"]


def register(pipeline: Pipeline) -> None:
    app = pipeline.app
    counts = pipeline.table("transaction-count", value_type=int, default=int)
    out = pipeline.topics["transaction-counts"]

    @app.agent(pipeline.topics["transactions"], name="count-transactions")
    async def count_transactions(stream: StreamT[bytes]) -> None:
        async for event in stream.events():
            key = event.key
            if not isinstance(key, bytes) or not key:
                continue  # unkeyed input cannot be attributed to a customer; the main agent dead-letters it
            counts[key] += 1
            await out.send(
                key=key, value=json.dumps({"customer_id": key.decode(), "count": counts[key]}).encode()
            )
