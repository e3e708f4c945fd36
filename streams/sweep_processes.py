"""The worker's sweep processes: sweep evaluation off the thread that serves live transactions.

A sweep is CPU work (advancing feature windows, evaluating the catalogue) for thousands of customers. Done
on the worker's event loop it held up live transactions for as long as it ran: Faust's consumer, conductor
and the transactions agent all share that one thread (bench/bench_sweep.py measured seconds). So the sweep
agent only reads records and writes results; :func:`core.sweeping.sweep_records` runs in a small pool of
processes started with ``spawn`` (no fork of a threaded worker) at a lower CPU priority (``nice``), so the
operating system runs live transactions first when both want a core.

``NUDGE_SWEEP_PROCESSES=0`` sweeps in the worker's own process, yielding to the event loop every few
customers (agent tests, or a machine where a second process cannot be afforded).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import multiprocessing
import os
import signal
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from mode import Service

from core.sweeping import StoredCustomer, SweepJob, SweptCustomer, sweep_records
from streams.settings import bounded

__all__ = ["SweepProcesses", "IN_PROCESS_CHUNK"]

log = logging.getLogger(__name__)

IN_PROCESS_CHUNK = 16  # customers between two yields to the event loop when sweeping in-process
_PR_SET_PDEATHSIG = 1


def _init_sweep_process(nice: int, parent_pid: int) -> None:
    """Runs first in each sweep process: lower priority, leave Ctrl-C to the worker, and die with it (a kill
    -9 of the worker must not leave orphans evaluating a sweep nobody will read)."""
    os.nice(nice)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with contextlib.suppress(OSError, AttributeError):  # not Linux: the pool's pipes end it later instead
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent_pid:  # the worker died before prctl took effect
        os._exit(1)


def _warm_up() -> int:
    """Import everything a sweep needs before the first request arrives."""
    import core.sweeping  # noqa: F401

    return os.getpid()


class SweepProcesses(Service):
    """``await sweep(job, customers)``: the results of :func:`core.sweeping.sweep_records`, computed in the
    pool, split across its processes."""

    def __init__(self, processes: int, nice: int = 10, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if processes < 0:
            raise ValueError(f"NUDGE_SWEEP_PROCESSES must be 0 or more, not {processes}")
        self.processes = processes
        self.nice = bounded("NUDGE_SWEEP_PROCESS_NICE", nice, 0, 19)
        self._pool: ProcessPoolExecutor | None = None

    def _ensure_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=self.processes,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_sweep_process,
                initargs=(self.nice, os.getpid()),
            )
        return self._pool

    async def on_start(self) -> None:
        if self.processes:  # start them now, not in the middle of the first sweep
            pool = self._ensure_pool()
            loop = asyncio.get_running_loop()
            pids = await asyncio.gather(*(loop.run_in_executor(pool, _warm_up) for _ in range(self.processes)))
            log.info("sweep processes ready: %s", sorted(set(pids)))

    async def on_stop(self) -> None:
        self.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    async def sweep(self, job: SweepJob, customers: Sequence[StoredCustomer]) -> list[SweptCustomer]:
        if not customers:
            return []
        if not self.processes:
            return await self._sweep_here(job, customers)
        for attempt in (1, 2):
            pool = self._ensure_pool()
            try:
                return await self._sweep_in_pool(pool, job, customers)
            except BrokenProcessPool as exc:  # a process died (killed, out of memory): a fresh pool, once
                if self._pool is pool:  # several requests may be in flight: only the first one replaces it
                    self._pool = None
                    pool.shutdown(wait=False)
                log.warning("a sweep process died (attempt %d, %d customers): %s", attempt, len(customers), exc)
        # twice: every customer is reported failed (dead-lettered and counted), the sweep still finishes
        error = "BrokenProcessPool: a sweep process died twice while sweeping this request"
        return [SweptCustomer(c.customer_id, None, [], [], 0, error) for c in customers]

    async def _sweep_in_pool(
        self, pool: ProcessPoolExecutor, job: SweepJob, customers: Sequence[StoredCustomer]
    ) -> list[SweptCustomer]:
        loop = asyncio.get_running_loop()
        size = -(-len(customers) // self.processes)  # one slice per process
        slices = [list(customers[i : i + size]) for i in range(0, len(customers), size)]
        parts = await asyncio.gather(*(loop.run_in_executor(pool, sweep_records, job, s) for s in slices))
        return [result for part in parts for result in part]

    async def _sweep_here(self, job: SweepJob, customers: Sequence[StoredCustomer]) -> list[SweptCustomer]:
        out: list[SweptCustomer] = []
        for i in range(0, len(customers), IN_PROCESS_CHUNK):
            out += sweep_records(job, customers[i : i + IN_PROCESS_CHUNK])
            await asyncio.sleep(0)
        return out
