"""The vertical-slice agent counts per customer, in memory (Faust's test harness)."""

from __future__ import annotations

import json

from streams.app import create_app
from streams.settings import load_settings


async def test_counts_per_customer(tmp_path) -> None:
    pipeline = create_app(
        load_settings(worker_data_dir=tmp_path), store="memory://", agent_modules=("agents.counter",)
    )
    pipeline.app.flow_control.resume()
    agent = pipeline.app.agents["count-transactions"]
    sent: list[dict[str, object]] = []

    async def capture(*, key, value, **_kw):  # replaces Kafka for the output topic
        sent.append(json.loads(value))

    pipeline.topics["transaction-counts"].send = capture  # type: ignore[method-assign]
    async with agent.test_context() as ctx:
        for key in (b"c1", b"c2", b"c1", b"c1"):
            await ctx.put(b"payload", key=key)
    assert pipeline.tables["transaction-count"][b"c1"] == 3
    assert pipeline.tables["transaction-count"][b"c2"] == 1
    assert sent[-1] == {"customer_id": "c1", "count": 3}
