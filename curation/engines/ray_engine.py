"""The Ray engine: the same batch functions as Ray Data actors, partition tasks as Ray tasks.

Needs the `[ray]` extra. Workers import codecurate, so on a cluster every node needs it
installed (or a `runtime_env`); the workdir (stage parts, `.parts/`) and dedup scratch
must be on storage every node reaches (a shared folder, or object storage through fsspec).
"""

from __future__ import annotations

import logging
import pickle
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa

from curation.engines.base import BatchFunction, Engine, OnRecordError, R, T, call_batch, deliver
from curation.engines.local import LocalEngine
from curation.errors import MissingDependency

# Ray Data moves Arrow: the oldest level gives plain large_string/large_list columns,
# which every Arrow reader on the cluster understands.
ARROW = pl.CompatLevel.oldest()


class _Actor:
    """One copy of a batch function, living in a Ray actor: set up once, then fed batches.

    Each batch comes back as one row holding its pickled (frame, record errors): a batch
    whose records were all set aside has no frame to give Ray Data a schema, and the
    errors travel back in input order with their batch.
    """

    def __init__(self, fn: BatchFunction, isolate: bool) -> None:
        fn.setup()
        self.fn = fn
        self.isolate = isolate

    def __call__(self, table: pa.Table) -> pa.Table:
        result = call_batch(self.fn, pl.from_arrow(table), self.isolate)  # type: ignore[arg-type]
        return pa.table({"result": pa.array([pickle.dumps(result)], pa.large_binary())})


def _apply(fn: Callable[[T], R], task: T) -> R:
    return fn(task)


class RayEngine(Engine):
    """Ray Data over Parquet. `address` "local" starts Ray here; anything else is passed
    to `ray.init` ("auto", "ray://head:10001"). A Ray already started by the caller is used
    as it is and left running."""

    name = "ray"

    def __init__(self, address: str = "local", num_cpus: int = 0, workers: int = 0,
                 scratch: str | None = None) -> None:  # fmt: skip
        try:
            import ray
        except ImportError as e:
            raise MissingDependency("ray", "ray", "The Ray engine") from e
        self._ray = ray
        self.address = address
        self.num_cpus = num_cpus
        self.workers = workers
        self.scratch = scratch
        self._started = False

    def _connect(self) -> Any:
        """Ray, initialised on first use, with Ray Data keeping rows in input order."""
        ray = self._ray
        if not ray.is_initialized():
            ray.init(
                address=None if self.address == "local" else self.address,
                num_cpus=(self.num_cpus or None) if self.address == "local" else None,
                include_dashboard=False,
                log_to_driver=False,
                logging_level=logging.WARNING,
            )
            self._started = True
        import ray.data

        context = ray.data.DataContext.get_current()
        context.execution_options.preserve_order = True  # same files as the local engine
        context.enable_progress_bars = False
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        # Inputs smaller than a batch per actor are expected here (a small stage, a sample).
        warnings.filterwarnings("ignore", message="The minimum number of concurrent actors")
        return ray

    def cluster_cpus(self) -> int:
        return int(self._connect().cluster_resources().get("CPU", 1))

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
        ray = self._connect()
        if records.select(pl.len()).collect().item() == 0:
            return
        cpus = self.cluster_cpus()
        size = min(workers or self.workers or cpus, cpus)  # more actors would wait forever
        mapped = self._dataset(records, batch_size, kept_from).map_batches(
            _Actor,
            fn_constructor_args=(fn, on_record_error is not None),
            batch_size=batch_size,
            batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(size=size),
            num_cpus=1,
        )
        results = (pickle.loads(row["result"]) for row in mapped.iter_rows())
        yield from deliver(results, on_record_error)

    def _dataset(self, records: pl.LazyFrame, batch_size: int, kept_from: Path | None) -> Any:
        """Workers read the stage's parts themselves where there are some; otherwise the driver
        ships its batches (records built in memory, such as those chosen for an estimate)."""
        import ray.data
        from ray.data.expressions import col

        if kept_from is not None:
            dataset = ray.data.read_parquet(str(kept_from)).filter(
                expr=col("filter_reason").is_null()
            )
            # Ray reads each part file as one block, and a small stage is one part: blocks
            # are split so that every actor gets work, before the actors start, because a
            # split waiting behind actors that hold every CPU never runs.
            return dataset.repartition(target_num_rows_per_block=batch_size).materialize()
        tables = [
            b.to_arrow(compat_level=ARROW) for b in records.collect_batches(chunk_size=batch_size)
        ]
        return ray.data.from_arrow(tables)

    def task_engine(self) -> Engine:
        """One process inside a Ray task: the task's CPU is the parallelism."""
        return LocalEngine(workers=1, most=1, scratch=self.scratch)

    def run_tasks(self, fn: Callable[[T], R], tasks: Sequence[T]) -> list[R]:
        ray = self._connect()
        remote = ray.remote(num_cpus=1)(_apply)  # fn may be a partial, which Ray won't wrap
        return ray.get([remote.remote(fn, task) for task in tasks])

    def close(self) -> None:
        if self._started:
            self._ray.shutdown()
            self._started = False
