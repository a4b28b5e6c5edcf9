"""Later copies found partition by partition on the engine's workers."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from curation import shuffle
from curation.engines import LocalEngine


def files(tmp_path: Path, keys: list[list[str]]) -> list[Path]:
    paths = []
    for index, part in enumerate(keys):
        path = tmp_path / f"{index}.parquet"
        ids = [f"{index}-{row}" for row in range(len(part))]
        pl.DataFrame({"id": ids, "key": part}).write_parquet(path)
        paths.append(path)
    return paths


@pytest.mark.parametrize("rows_per_partition", [100, 2])
def test_a_key_seen_in_an_earlier_row_or_file_marks_its_later_copies(
    tmp_path, monkeypatch, rows_per_partition
):
    monkeypatch.setattr(shuffle, "ROWS_PER_PARTITION", rows_per_partition)  # 1 or 4 partitions
    keys = [["a", "b", "a"], ["b", "c"], ["c", "a", "d"]]
    later = shuffle.later_copies(files(tmp_path, keys), "key", tmp_path / "work", LocalEngine(1))
    assert [copies["id"].to_list() for copies in later] == [["0-2"], ["1-0"], ["2-0", "2-1"]]
    assert not (tmp_path / "work").exists()  # its work files are removed


def test_no_files_have_no_later_copies(tmp_path):
    assert shuffle.later_copies([], "key", tmp_path / "work", LocalEngine(1)) == []
