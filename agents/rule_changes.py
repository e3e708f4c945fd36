"""A rule published, changed or deleted is re-scored for every customer, through targeted sweep requests.

Every worker sees every rule change (see :mod:`streams.catalogue`); each one requests a sweep of that rule
for the customers of the partitions it is actively assigned (grouped per partition, as
:func:`streams.sweeps.publish_sweep` does), so each customer is in exactly one request across the cluster
(a rebalance at that moment can at worst duplicate requests, which are idempotent). A deleted rule's
requests make the sweep agent tombstone its scores.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from agents.plumbing import AgentIO
from schemas.codec import default_codec
from streams.app import Pipeline
from streams.sweeps import group_by_partition, partition_of, sweep_request

__all__ = ["register"]


def register(pipeline: Pipeline) -> None:
    app = pipeline.app
    io = AgentIO.for_pipeline(pipeline, source="rules")
    partitions = pipeline.settings.topic_partitions

    async def request_rescore(rule_id: str, deleted: bool) -> None:
        active = {tp.partition for tp in app.assignor.assigned_actives() if tp.topic == "sweep"}
        now = datetime.now(UTC)
        sweep_id = f"rule_change-{rule_id}-{now:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
        sweep = pipeline.topics["sweep"]
        codec = default_codec()
        mine = [key.decode() for key in list(io.customers.records.keys())]
        mine = [customer for customer in mine if partition_of(customer, partitions) in active]
        for group in group_by_partition(mine, partitions, pipeline.settings.sweep_customers_per_request):
            request = sweep_request(
                sweep_id,
                group[0],
                more_customer_ids=group[1:],
                rule_ids=[rule_id],
                as_of=now,
                requested_at=now,
                reason="rule_change",
            )
            await sweep.send(key=group[0].encode(), value=codec.encode("SweepRequest", request))

    io.feed.on_change(request_rescore)
