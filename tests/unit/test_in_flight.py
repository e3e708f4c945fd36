"""OffsetsInFlight: a sweep batch records an offset as counted only once no earlier offset of the same
partition is still in flight in another batch."""

from __future__ import annotations

import asyncio

from streams.in_flight import OffsetsInFlight

GEN = 1


async def waiting_batch(offsets: OffsetsInFlight, pairs: list[tuple[int, int]]) -> asyncio.Future[None]:
    """A batch waiting to record these (partition, offset) pairs, given a moment to start waiting."""
    waiting = asyncio.ensure_future(offsets.wait_for_earlier(pairs))
    await asyncio.sleep(0.01)
    return waiting


def test_an_offset_waits_only_for_earlier_unfinished_offsets_of_its_partition() -> None:
    offsets = OffsetsInFlight()
    for offset in (10, 11, 12):
        offsets.take(GEN, 0, offset)
    offsets.take(GEN, 1, 3)
    assert offsets.earlier_in_flight(0, 13)
    assert not offsets.earlier_in_flight(0, 10), "nothing below 10 was taken"
    assert not offsets.earlier_in_flight(2, 99), "a partition with nothing taken"
    offsets.finish([(0, 10), (0, 11)])
    assert offsets.earlier_in_flight(0, 13), "12 is still in flight"
    offsets.finish([(0, 12)])
    assert not offsets.earlier_in_flight(0, 13)
    assert offsets.earlier_in_flight(1, 4), "partitions are independent"


async def test_a_later_batch_waits_for_the_earlier_one_to_finish() -> None:
    offsets = OffsetsInFlight()
    offsets.take(GEN, 0, 10)  # batch A
    offsets.take(GEN, 0, 11)  # batch B, taken after A
    offsets.finish([(0, 11)])  # B finishes first
    waiting = await waiting_batch(offsets, [(0, 11)])
    assert not waiting.done(), "B must not record offset 11 while A still has 10"
    offsets.finish([(0, 10)])
    await asyncio.wait_for(waiting, 1)


async def test_waiting_on_several_partitions_ends_when_all_are_clear() -> None:
    offsets = OffsetsInFlight()
    offsets.take(GEN, 0, 5)
    offsets.take(GEN, 1, 7)
    waiting = await waiting_batch(offsets, [(0, 9), (1, 9)])
    offsets.finish([(0, 5)])
    await asyncio.sleep(0.01)  # woken, it checks again
    assert not waiting.done(), "partition 1 still has 7 in flight"
    offsets.finish([(1, 7)])
    await asyncio.wait_for(waiting, 1)


async def test_two_offsets_of_one_partition_wait_for_whatever_is_below_the_higher() -> None:
    offsets = OffsetsInFlight()
    offsets.take(GEN, 0, 11)  # another batch holds 11; this batch counted records up to 10 and 12
    waiting = await waiting_batch(offsets, [(0, 12), (0, 10)])
    assert not waiting.done(), "11 is below 12, whichever pair comes last"
    offsets.finish([(0, 11)])
    await asyncio.wait_for(waiting, 1)


async def test_a_rebalance_forgets_what_was_taken_and_releases_the_waiters() -> None:
    offsets = OffsetsInFlight()
    offsets.take(GEN, 0, 10)
    waiting = await waiting_batch(offsets, [(0, 20)])
    assert not waiting.done()
    offsets.take(GEN + 1, 0, 30)  # first offset of the next consumer generation
    await asyncio.wait_for(waiting, 1)
    assert not offsets.earlier_in_flight(0, 30)
    assert offsets.earlier_in_flight(0, 31)


def test_finishing_an_offset_never_taken_is_harmless() -> None:
    offsets = OffsetsInFlight()
    offsets.finish([(0, 3)])
    offsets.take(GEN, 0, 4)
    offsets.finish([(0, 3), (5, 1)])
    assert offsets.earlier_in_flight(0, 5)
