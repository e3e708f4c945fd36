"""Offsets that a worker's concurrent sweep batches have taken from their partitions and not yet finished.

The sweep agent runs more than one batch at a time (``NUDGE_SWEEP_BATCHES_IN_FLIGHT``), so the sweep
processes evaluate one batch while the agent stores the books of another. Batches then finish in any order,
but a sweep's progress record says "every request of this partition up to offset N is counted", and
``streams.sweeps.SweepProgress.done`` trusts it. So a batch marks its offsets taken the moment its stream
takes them from the topic's queue (in offset order), and before it records an offset as counted it waits
until no earlier offset of that partition is still in flight in another batch.

Faust itself commits only the consecutive offsets that have been acknowledged, so commits stay safe
whatever order the batches finish in; this is only for the progress records.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Iterable

__all__ = ["OffsetsInFlight"]


class OffsetsInFlight:
    """``take`` each offset as it is taken, ``finish`` a batch's offsets when its work is counted, and
    ``wait_for_earlier`` before recording an offset as done. A new consumer generation (a rebalance) forgets
    every offset taken before it, and releases whoever waits on them: those messages are either finished by
    their batch anyway, or delivered again and taken again."""

    def __init__(self) -> None:
        self._taken: dict[int, set[int]] = {}
        self._generation: object = None
        self._changed = asyncio.Event()

    def take(self, generation: object, partition: int, offset: int) -> None:
        if generation != self._generation:
            self._generation = generation
            self._taken.clear()
            self._notify()
        self._taken.setdefault(partition, set()).add(offset)

    def finish(self, offsets: Iterable[tuple[int, int]]) -> None:
        """The (partition, offset) pairs of a batch whose work is done and counted."""
        for partition, offset in offsets:
            taken = self._taken.get(partition)
            if taken is not None:
                taken.discard(offset)
                if not taken:
                    del self._taken[partition]
        self._notify()

    def earlier_in_flight(self, partition: int, offset: int) -> bool:
        """Whether an offset below ``offset`` of ``partition`` is taken and not finished."""
        taken = self._taken.get(partition)  # never empty: finish drops a partition's emptied set
        return taken is not None and min(taken) < offset

    async def wait_for_earlier(self, offsets: Collection[tuple[int, int]]) -> None:
        """Wait until no offset below any of these (partition, offset) pairs is in flight."""
        while any(self.earlier_in_flight(p, o) for p, o in offsets):
            changed = self._changed
            await changed.wait()

    def _notify(self) -> None:
        """Wake every waiter (each checks again), and arm a fresh event for the next change."""
        self._changed.set()
        self._changed = asyncio.Event()
