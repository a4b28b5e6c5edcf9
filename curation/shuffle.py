"""Which rows repeat the key of an earlier row, found in pieces on the engine's workers.

Each file's (id, key) rows are split by the key's hash into partitions, and each partition
is searched alone: no process holds every key, and the driver gets back only the repeats
(ingest's records that two units both give, the filters' exact duplicates).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import polars as pl

from curation.engines import Engine

# About 100 MB of (id, hash) a partition: a partition is one task's memory.
ROWS_PER_PARTITION = 2_000_000


@dataclass(frozen=True)
class _Spread:
    """Where the rows are spread (`<folder>/p=<partition>/<file index>.parquet`), by what."""

    folder: Path
    key: str
    partitions: int


def _spread_task(spread: _Spread, item: tuple[int, Path]) -> None:
    """One file's (id, key), in file order, written into the partitions of the key's hash."""
    index, file = item
    rows = (
        pl.read_parquet(file, columns=list(dict.fromkeys(["id", spread.key])))
        .with_row_index("row")
        .with_columns(part=pl.lit(index, pl.Int64), _p=pl.col(spread.key).hash(seed=0))
        .with_columns(_p=pl.col("_p") % spread.partitions)
    )
    for (partition,), frame in rows.partition_by("_p", as_dict=True).items():
        path = spread.folder / f"p={partition}" / f"{index}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        frame.drop("_p").write_parquet(path.with_name(path.name + ".tmp"))
        os.replace(path.with_name(path.name + ".tmp"), path)


LATER = {"part": pl.Int64, "id": pl.String}


def _later_task(spread: _Spread, partition: int) -> pl.DataFrame:
    """(file index, id) of each row of one partition whose key a row before it has."""
    files = sorted((spread.folder / f"p={partition}").glob("*.parquet"))
    if not files:
        return pl.DataFrame(schema=LATER)
    return (
        pl.scan_parquet(files)
        .sort("part", "row")
        .filter(~pl.col(spread.key).is_first_distinct())
        .select("part", "id")
        .collect()
    )


def later_copies(
    files: Sequence[Path], key: str, folder: Path, engine: Engine
) -> list[pl.DataFrame]:
    """Per file, in order: the ids (column `id`, sorted) of its rows whose `key` a row
    before them (in the file or an earlier one) has already. Works in `folder`, which it
    removes."""
    if not files:
        return []
    total = pl.scan_parquet(list(files)).select(pl.len()).collect().item()
    spread = _Spread(folder, key, max(1, -(-total // ROWS_PER_PARTITION)))
    shutil.rmtree(folder, ignore_errors=True)  # what a run cut short left
    try:
        engine.run_tasks(partial(_spread_task, spread), list(enumerate(files)))
        found = engine.run_tasks(partial(_later_task, spread), list(range(spread.partitions)))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    later = pl.concat([pl.DataFrame(schema=LATER), *found]).sort("id")
    by_file = later.partition_by("part", as_dict=True, include_key=False)
    none = later.drop("part").clear()
    return [by_file.get((index,), none) for index in range(len(files))]
