"""What an engine is: a way to run the stages' own batch functions and partition tasks.

A stage never knows which engine runs it (STYLE.md #1): it hands the engine a
`BatchFunction` (a map over record batches, set up once per worker) or a task function
over partitions it wrote as files, and gets back the same results either way.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

import polars as pl

T = TypeVar("T")
R = TypeVar("R")


class BatchFunction(ABC):
    """A map from one batch of records to a frame, with state built once per worker.

    Instances are pickled to workers with their configuration only; `setup` then loads
    what is expensive (a spaCy pipeline, a tokenizer) once, before the first batch.
    """

    def setup(self) -> None:  # noqa: B027 - most functions need no setup
        """Load per-worker state; called once in each worker before the first batch."""

    @abstractmethod
    def __call__(self, batch: pl.DataFrame) -> pl.DataFrame:
        """The result for one batch; the same input gives the same output on any engine."""


class Engine(ABC):
    """Runs batch functions and partition tasks: in this process, in local processes, or on
    a Ray cluster. Results come back in input order, so every engine writes the same files."""

    name: str
    # Where stages keep work files between phases (a folder or an fsspec URL every worker
    # reaches); None: the stage's workdir.
    scratch: str | None = None

    @abstractmethod
    def map_batches(
        self,
        records: pl.LazyFrame,
        fn: BatchFunction,
        *,
        batch_size: int,
        workers: int | None = None,
        kept_from: Path | None = None,
    ) -> Iterator[pl.DataFrame]:
        """`fn` over `records` in batches of `batch_size` rows, results in input order.

        `workers` caps the parallel copies of `fn` (None: the engine's default).
        `kept_from` names the stage file whose kept rows `records` are: an engine whose
        workers read files themselves reads it there instead of shipping batches.
        """

    @abstractmethod
    def run_tasks(self, fn: Callable[[T], R], tasks: Sequence[T]) -> list[R]:
        """`fn` over independent tasks (partitions written as files), results in task order."""

    def close(self) -> None:  # noqa: B027 - only engines that start something stop it
        """Release what the engine started (a local Ray instance)."""

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
