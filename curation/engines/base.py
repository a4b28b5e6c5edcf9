"""What an engine is: a way to run the stages' own batch functions and partition tasks.

A stage never knows which engine runs it: it hands the engine a
`BatchFunction` (a map over record batches, set up once per worker) or a task function
over partitions it wrote as files, and gets back the same results either way.

No record can stop a map: given `on_record_error`, an engine retries a batch that raises
record by record, in the worker, and sends each record that raises on its own back to the
driver as a `RecordError` (the stage context quarantines it); the other records go on.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import polars as pl

from curation.errors import describe_error

T = TypeVar("T")
R = TypeVar("R")
# The columns of a record that say where it came from, copied into its RecordError.
RECORD_FIELDS = ("id", "source", "path", "size_bytes")


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


@dataclass(frozen=True)
class RecordError:
    """A record a batch function raised on: where it came from (those of RECORD_FIELDS the
    batch has) and the exception in one line. Plain data, so it travels back from a worker."""

    record: dict[str, Any]
    error_type: str
    message: str


OnRecordError = Callable[[RecordError], None]
BatchResult = tuple[pl.DataFrame | None, list[RecordError]]


def call_batch(fn: BatchFunction, batch: pl.DataFrame, isolate: bool) -> BatchResult:
    """`fn(batch)` and no failures; with `isolate`, a batch that raises is retried record by
    record and the records that raise come back as RecordErrors (the frame is None when
    none is left). When every record of a batch raises the batch's own error, the fault is
    not in the records (a full disk, a broken model): that error is raised instead."""
    if not isolate:
        return fn(batch), []
    try:
        return fn(batch), []
    except Exception as error:
        batch_error = error
    if batch.height == 1:
        return None, [_record_error(batch, batch_error)]
    frames, failures = [], []
    for row in batch.iter_slices(1):
        try:
            frames.append(fn(row))
        except Exception as error:
            failures.append(_record_error(row, error))
    same = {(f.error_type, f.message) for f in failures} == {describe_error(batch_error)}
    if not frames and same:
        raise batch_error
    return (pl.concat(frames) if frames else None), failures


def _record_error(row: pl.DataFrame, error: Exception) -> RecordError:
    fields = [name for name in RECORD_FIELDS if name in row.columns]
    return RecordError(row.select(fields).row(0, named=True), *describe_error(error))


def deliver(
    results: Iterable[BatchResult], on_record_error: OnRecordError | None
) -> Iterator[pl.DataFrame]:
    """The frames of batch results, in order; their failures go to `on_record_error`."""
    for frame, failures in results:
        for failure in failures:
            assert on_record_error is not None, "records were isolated with nowhere to go"
            on_record_error(failure)
        if frame is not None:
            yield frame


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
        on_record_error: OnRecordError | None = None,
    ) -> Iterator[pl.DataFrame]:
        """`fn` over `records` in batches of `batch_size` rows, results in input order.

        `workers` caps the parallel copies of `fn` (None: the engine's default).
        `kept_from` names the part file or stage folder whose kept rows `records` are: an
        engine whose workers read files themselves reads it there instead of shipping batches.
        `on_record_error`: where records that raise go (see `call_batch`); without it an
        exception in `fn` ends the map.
        """

    @abstractmethod
    def run_tasks(self, fn: Callable[[T], R], tasks: Sequence[T]) -> list[R]:
        """`fn` over independent tasks (partitions written as files), results in task order."""

    def task_engine(self) -> Engine:
        """The engine a task of `run_tasks` uses for the maps inside it: this one where tasks
        run in this process."""
        return self

    @contextmanager
    def keeping_workers(self) -> Iterator[None]:
        """Within this block, maps of one batch function may share workers that are set up
        once (a per-part stage maps every part with the same function)."""
        yield

    def close(self) -> None:  # noqa: B027 - only engines that start something stop it
        """Release what the engine started (a local Ray instance)."""

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class StageEngine(Engine):
    """An engine as a running stage sees it: every map sends the records that raise to the
    stage context, so no stage has to ask for it. It does not own `engine`: closing is the
    runner's."""

    def __init__(self, engine: Engine, on_record_error: OnRecordError) -> None:
        self.engine = engine
        self.name = engine.name
        self.scratch = engine.scratch
        self.on_record_error = on_record_error

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
        return self.engine.map_batches(
            records, fn, batch_size=batch_size, workers=workers, kept_from=kept_from,
            on_record_error=on_record_error or self.on_record_error,
        )  # fmt: skip

    def run_tasks(self, fn: Callable[[T], R], tasks: Sequence[T]) -> list[R]:
        return self.engine.run_tasks(fn, tasks)


def mapped_with_errors(
    engine: Engine,
    records: pl.LazyFrame,
    fn: BatchFunction,
    schema: Mapping[str, Any],
    **options: Any,
) -> pl.DataFrame:
    """`engine.map_batches(records, fn, **options)` as one frame of `schema`, where a record
    that raised is a row of its RECORD_FIELDS with `error_type` and `error` (columns of
    `schema`), so a stage's summary keeps its failures for the plan to set aside."""
    failed: list[RecordError] = []
    # the failures arrive as the map is consumed, so it is consumed before they are read
    mapped = [*engine.map_batches(records, fn, on_record_error=failed.append, **options)]
    errors = [{**e.record, "error_type": e.error_type, "error": e.message} for e in failed]
    frames = [pl.DataFrame(schema=schema), *mapped, pl.DataFrame(errors, schema=schema)]
    return pl.concat(frames, how="diagonal")


def set_aside_errors(rows: pl.LazyFrame, on_record_error: OnRecordError) -> pl.LazyFrame:
    """Hand the rows of `rows` that carry an `error` (as `mapped_with_errors` writes them)
    to `on_record_error`; the rows without one."""
    failed = rows.filter(pl.col("error").is_not_null()).collect()
    for row in failed.iter_rows(named=True):
        record = {name: row.get(name) for name in RECORD_FIELDS}
        on_record_error(RecordError(record, row["error_type"], row["error"]))
    return rows.filter(pl.col("error").is_null())
