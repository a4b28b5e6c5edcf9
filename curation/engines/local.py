"""The local engine: batch functions in this process or in a pool of local processes."""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import polars as pl

from curation.engines.base import (
    BatchFunction,
    BatchResult,
    Engine,
    OnRecordError,
    R,
    T,
    call_batch,
    deliver,
)
from curation.parts import record_batches

_WORKER_FN: BatchFunction | None = None
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def die_with_parent(parent: int) -> None:
    """End this process when `parent` dies, however it dies (a `kill -9` of the run must
    not leave workers holding a spaCy model each).

    On Linux the kernel does it (PR_SET_PDEATHSIG): the worker is killed at once even while
    it is inside C code that holds the GIL, which a watchdog thread would wait for. Elsewhere
    a watchdog thread polls the parent. PDEATHSIG follows the thread that started the
    worker: the pool starts its workers from the thread that submits, the stage's own.
    """
    if sys.platform == "linux":
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    else:
        threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    if os.getppid() != parent:  # the parent died before either was in place
        os._exit(1)


def _watch_parent(parent: int, every: float = 0.5) -> None:
    while os.getppid() == parent:
        time.sleep(every)
    os._exit(1)


def _start_worker(fn: BatchFunction, parent: int) -> None:
    global _WORKER_FN
    die_with_parent(parent)
    fn.setup()
    _WORKER_FN = fn


def _call_in_worker(batch: pl.DataFrame, isolate: bool) -> BatchResult:
    assert _WORKER_FN is not None, "worker started without its function"
    return call_batch(_WORKER_FN, batch, isolate)


class LocalEngine(Engine):
    """Processes on this machine: `workers` of them (0: one per core; 1: this process), and
    never more than `most` whatever a stage asks for (inside a task that owns one CPU)."""

    name = "local"

    def __init__(self, workers: int = 0, scratch: str | None = None, most: int = 0) -> None:
        self.workers = workers or os.cpu_count() or 1
        self.scratch = scratch
        self.most = most
        self._keeping = False
        self._kept: tuple[BatchFunction, int, ProcessPoolExecutor] | None = None

    @contextmanager
    def keeping_workers(self) -> Iterator[None]:
        # A pool per map would load spaCy in every worker for every part of the pii stage:
        # seconds a part, most of the stage's time on parts of small files.
        self._keeping = True
        try:
            yield
        finally:
            self._keeping = False
            self._release()

    def _release(self) -> None:
        if self._kept is not None:
            self._kept[2].shutdown()
            self._kept = None

    def _kept_pool(self, fn: BatchFunction, workers: int) -> ProcessPoolExecutor:
        """The pool kept for `fn` inside `keeping_workers`, started on first use."""
        if self._kept is None or self._kept[0] is not fn or self._kept[1] != workers:
            self._release()
            self._kept = (fn, workers, _new_pool(fn, workers))
        return self._kept[2]

    def map_batches(
        self,
        records: pl.LazyFrame,
        fn: BatchFunction,
        *,
        batch_size: int,
        workers: int | None = None,
        kept_from: Path | None = None,
        on_record_error: OnRecordError | None = None,
    ) -> Iterator[pl.DataFrame]:
        workers = min(workers or self.workers, self.most or sys.maxsize)
        total = records.select(pl.len()).collect().item()
        if total == 0:
            return  # nothing to map: do not set up (load spaCy) for nothing
        batches = record_batches(records, batch_size, kept_from)
        isolate = on_record_error is not None
        # Each worker pays for setup (seconds for spaCy): not worth it for a batch or less.
        if workers == 1 or total <= batch_size:
            fn.setup()
            yield from deliver((call_batch(fn, b, isolate) for b in batches), on_record_error)
            return
        if self._keeping:
            pool = self._kept_pool(fn, workers)
            yield from deliver(_in_order(pool, batches, isolate, 2 * workers), on_record_error)
            return
        with _new_pool(fn, workers) as pool:
            yield from deliver(_in_order(pool, batches, isolate, 2 * workers), on_record_error)

    def run_tasks(self, fn: Callable[[T], R], tasks: Sequence[T]) -> list[R]:
        # In this process, one after another: each task is Polars work that already uses
        # every core.
        return [fn(task) for task in tasks]


def _new_pool(fn: BatchFunction, workers: int) -> ProcessPoolExecutor:
    # spawn, not fork: forking a process that runs Polars' thread pool can deadlock.
    context = multiprocessing.get_context("spawn")
    return ProcessPoolExecutor(
        workers, mp_context=context, initializer=_start_worker, initargs=(fn, os.getpid())
    )


def _in_order(
    pool: ProcessPoolExecutor, batches: Iterable[pl.DataFrame], isolate: bool, in_flight: int
) -> Iterator[BatchResult]:
    """Results in input order with at most `in_flight` batches submitted, so memory holds a
    few batches, not the whole input."""
    pending: deque[Future] = deque()
    for batch in batches:
        pending.append(pool.submit(_call_in_worker, batch, isolate))
        if len(pending) >= in_flight:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()
