"""The local engine: batch functions in this process or in a pool of local processes."""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path

import polars as pl

from curation.engines.base import BatchFunction, Engine, R, T

_WORKER_FN: BatchFunction | None = None


def _start_worker(fn: BatchFunction) -> None:
    global _WORKER_FN
    fn.setup()
    _WORKER_FN = fn


def _call_in_worker(batch: pl.DataFrame) -> pl.DataFrame:
    assert _WORKER_FN is not None, "worker started without its function"
    return _WORKER_FN(batch)


class LocalEngine(Engine):
    """Processes on this machine: `workers` of them (0: one per core; 1: this process)."""

    name = "local"

    def __init__(self, workers: int = 0, scratch: str | None = None) -> None:
        self.workers = workers or os.cpu_count() or 1
        self.scratch = scratch

    def map_batches(
        self,
        records: pl.LazyFrame,
        fn: BatchFunction,
        *,
        batch_size: int,
        workers: int | None = None,
        kept_from: Path | None = None,
    ) -> Iterator[pl.DataFrame]:
        workers = workers or self.workers
        total = records.select(pl.len()).collect().item()
        if total == 0:
            return  # nothing to map: do not set up (load spaCy) for nothing
        batches = records.collect_batches(chunk_size=batch_size)
        # Each worker pays for setup (seconds for spaCy): not worth it for a batch or less.
        if workers == 1 or total <= batch_size:
            fn.setup()
            yield from map(fn, batches)
            return
        # spawn, not fork: forking a process that runs Polars' thread pool can deadlock.
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(
            workers, mp_context=context, initializer=_start_worker, initargs=(fn,)
        ) as pool:
            yield from _in_order(pool, batches, 2 * workers)

    def run_tasks(self, fn: Callable[[T], R], tasks: Sequence[T]) -> list[R]:
        # In this process, one after another: each task is Polars work that already uses
        # every core.
        return [fn(task) for task in tasks]


def _in_order(
    pool: ProcessPoolExecutor, batches: Iterable[pl.DataFrame], in_flight: int
) -> Iterator[pl.DataFrame]:
    """Results in input order with at most `in_flight` batches submitted, so memory holds a
    few batches, not the whole input."""
    pending: deque[Future] = deque()
    for batch in batches:
        pending.append(pool.submit(_call_in_worker, batch))
        if len(pending) >= in_flight:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()
