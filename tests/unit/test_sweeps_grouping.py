"""A sweep's customers are grouped per partition, so one request message carries many customers."""

from __future__ import annotations

import pytest

from streams.sweeps import group_by_partition, partition_of


def test_groups_cover_each_customer_once_within_one_partition_and_in_order() -> None:
    customers = [f"cust-{n:05d}" for n in range(1_003)]
    groups = list(group_by_partition(customers, partitions=4, per_group=100))

    assert sorted(c for g in groups for c in g) == sorted(customers)
    assert all(1 <= len(g) <= 100 for g in groups)
    assert all(len({partition_of(c, 4) for c in g}) == 1 for g in groups)
    for partition in range(4):  # a partition's customers keep the order they were given in
        mine = [c for g in groups for c in g if partition_of(c, 4) == partition]
        assert mine == [c for c in customers if partition_of(c, 4) == partition]
    full = [g for g in groups if len(g) == 100]
    assert len(full) == sum(len([c for c in customers if partition_of(c, 4) == p]) // 100 for p in range(4))


def test_partition_of_is_the_java_compatible_murmur2_of_the_key() -> None:
    """Pinned values. The producers (confluent-kafka, murmur2_random) put these keys, and 200 more, on the
    same partitions of a 4-partition topic on the local broker (checked 2026-11-25): a sweep request must
    land where the customer's transactions and record are."""
    assert [partition_of(c, 4) for c in ("cust-ga", "cust-gb", "cust-gc", "cust-ge")] == [2, 2, 1, 3]
    assert {partition_of("cust-ga", n) for n in (1,)} == {0}


def test_a_group_size_below_one_is_refused_by_its_setting_name() -> None:
    with pytest.raises(ValueError, match="NUDGE_SWEEP_CUSTOMERS_PER_REQUEST must be at least 1, not 0"):
        list(group_by_partition(["a"], partitions=4, per_group=0))
