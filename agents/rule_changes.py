"""A rule published, changed or deleted is re-scored for every customer, through targeted sweep requests.

Every worker sees every rule change (see :mod:`streams.catalogue`); each one requests a sweep of that rule
for the customers of the partitions it is actively assigned, so each customer gets exactly one request
across the cluster (a rebalance at that moment can at worst duplicate requests, which are idempotent).
A deleted rule's requests make the sweep agent tombstone its scores.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from aiokafka.partitioner import DefaultPartitioner

from agents.plumbing import AgentIO
from schemas.codec import default_codec
from streams.app import Pipeline
from streams.sweeps import sweep_request

__all__ = ["register"]


def register(pipeline: Pipeline) -> None:
    app = pipeline.app
    io = AgentIO.for_pipeline(pipeline, source="rules")
    partitioner = DefaultPartitioner()
    n = pipeline.settings.topic_partitions
    all_partitions = list(range(n))

    async def request_rescore(rule_id: str, deleted: bool) -> None:
        active = {tp.partition for tp in app.assignor.assigned_actives() if tp.topic == "sweep"}
        now = datetime.now(UTC)
        sweep_id = f"rule_change-{rule_id}-{now:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
        sweep = pipeline.topics["sweep"]
        codec = default_codec()
        for key in list(io.customers.keys()):
            if partitioner(key, all_partitions, all_partitions) not in active:
                continue
            request = sweep_request(
                sweep_id, key.decode(), rule_ids=[rule_id], as_of=now, requested_at=now, reason="rule_change"
            )
            await sweep.send(key=key, value=codec.encode("SweepRequest", request))

    io.feed.on_change(request_rescore)
