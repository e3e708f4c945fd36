"""``nudge simulate``: realistic open-banking customers, deterministic from a seed.

Public API: :func:`simulate_customer` (one customer's Avro-shaped ``Transaction`` records),
:func:`simulate` (the same plus the ground-truth :class:`Profile` and record categories) and
:func:`population` (many customers). Outputs (JSON lines, Kafka, HTTP) live in :mod:`simulator.outputs`.
"""

from simulator.generator import (
    Profile,
    SimulatedCustomer,
    SubscriptionPlan,
    population,
    simulate,
    simulate_customer,
)

__all__ = ["Profile", "SimulatedCustomer", "SubscriptionPlan", "population", "simulate", "simulate_customer"]
