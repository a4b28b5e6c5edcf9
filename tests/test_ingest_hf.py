"""Hugging Face datasets (Parquet or save_to_disk) mapped onto the record schema."""

from datetime import UTC, datetime

import polars as pl
import pytest
from conftest import ingest

from curation import SourceError

STACK_LIKE = {
    "content": ["def f():\n    return 1\n", "int main(void) { return 0; }\n", None, "x"],
    "max_stars_repo_path": ["a/f.py", "b/main.c", "c/empty.py", "d/x.rb"],
    "max_stars_repo_name": ["org/a", "org/b", "org/c", "org/d"],
    "lang": ["Python", "C", "Python", "Ruby"],
    "max_stars_repo_licenses": [["MIT"], ["Apache-2.0", "MIT"], [], ["MIT"]],
}
COLUMNS = {
    "content": "content",
    "path": "max_stars_repo_path",
    "source": "max_stars_repo_name",
    "language": "lang",
    "license": "max_stars_repo_licenses",
}


def test_parquet_slice_of_the_stack_is_mapped_by_column_name(tmp_path):
    pl.DataFrame(STACK_LIKE).write_parquet(tmp_path / "stack.parquet")
    source = {"type": "hf", "path": tmp_path / "stack.parquet", "columns": COLUMNS}
    records, manifest, quarantine = ingest(tmp_path, sources=[source], languages=["python", "c"])
    assert records.select("path", "source", "language", "license").rows() == [
        ("a/f.py", "org/a", "python", "MIT"),
        ("b/main.c", "org/b", "c", "Apache-2.0 OR MIT"),
    ]
    assert manifest.skipped == {"other_language": 1}
    assert quarantine["reason"].to_list() == ["missing_content"]


def test_saved_dataset_dict_needs_a_split_and_infers_language_from_path(tmp_path):
    datasets = pytest.importorskip("datasets")
    table = {"content": ["print('hi')\n", "SELECT 1;\n"], "path": ["x.py", "q.sql"]}
    dataset = datasets.DatasetDict({"train": datasets.Dataset.from_dict(table)})
    dataset.save_to_disk(str(tmp_path / "saved"))
    with pytest.raises(SourceError, match="set 'split'"):
        ingest(tmp_path, sources=[{"type": "hf", "path": tmp_path / "saved"}])
    source = {"type": "hf", "path": tmp_path / "saved", "split": "train", "name": "mine"}
    records, _, _ = ingest(tmp_path, sources=[source], languages=["python", "sql"])
    assert records.select("path", "language", "source").rows() == [
        ("x.py", "python", "mine"),
        ("q.sql", "sql", "mine"),
    ]


def test_a_mapped_column_the_dataset_lacks_is_named(tmp_path):
    pl.DataFrame({"text": ["x = 1\n"]}).write_parquet(tmp_path / "d.parquet")
    with pytest.raises(SourceError, match="no 'content' column"):
        ingest(tmp_path, sources=[{"type": "hf", "path": tmp_path / "d.parquet"}])
    source = {"type": "hf", "path": tmp_path / "d.parquet", "columns": {"content": "code"}}
    with pytest.raises(SourceError, match=r"no column 'code'.*its columns: text"):
        ingest(tmp_path, sources=[source])


def test_a_glob_reads_each_file_with_its_own_schema(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    first = {"content": ["x = 1\n"], "path": ["a.py"], "created_at": ["2024-05-01T10:00:00+02:00"]}
    pl.DataFrame(first).write_parquet(data / "part-0.parquet")
    second = {"stars": [3], "path": ["b.h"], "content": ["namespace a {\nclass B;\n}\n"]}
    pl.DataFrame(second).write_parquet(data / "part-1.parquet")
    source = {"type": "hf", "path": data / "part-*.parquet"}
    records, _, _ = ingest(tmp_path, sources=[source], languages=["python", "cpp"])
    assert records.select("source", "path", "language").rows() == [
        ("data", "a.py", "python"),
        ("data", "b.h", "cpp"),  # a .h file is C or C++ by its content
    ]
    assert records["created_at"][0] == datetime(2024, 5, 1, 8, tzinfo=UTC)


def test_a_repeated_row_becomes_one_record_and_is_counted(tmp_path):
    pl.DataFrame({"content": ["x = 1\n"] * 2, "path": ["a.py"] * 2}).write_parquet(
        tmp_path / "d.parquet"
    )
    records, manifest, _ = ingest(
        tmp_path, sources=[{"type": "hf", "path": tmp_path / "d.parquet"}]
    )
    assert records["path"].to_list() == ["a.py"]
    assert manifest.skipped == {"duplicate_record": 1}


def test_a_saved_dataset_that_cannot_be_read_is_quarantined(tmp_path):
    datasets = pytest.importorskip("datasets")
    table = {"content": ["x = 1\n"], "path": ["a.py"]}
    datasets.Dataset.from_dict(table).save_to_disk(str(tmp_path / "saved"))
    [arrow] = (tmp_path / "saved").glob("*.arrow")
    arrow.write_bytes(arrow.read_bytes()[:50])  # cut short, as by a full disk
    records, _, quarantine = ingest(tmp_path, sources=[{"type": "hf", "path": tmp_path / "saved"}])
    assert records.height == 0
    [(reason, path, detail)] = quarantine.select("reason", "path", "detail").rows()
    assert (reason, path) == ("corrupt_file", "saved") and detail.startswith("ArrowInvalid: ")


def test_each_parquet_file_is_a_unit_and_rows_without_a_path_number_on_across_files(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for index, texts in enumerate([["a = 1\n", "b = 2\n"], ["c = 3\n"], ["d = 4\n"]]):
        pl.DataFrame({"content": texts, "language": ["python"] * len(texts)}).write_parquet(
            data / f"part-{index}.parquet"
        )
    source = {"type": "hf", "path": data}
    records, manifest, _ = ingest(tmp_path, sources=[source])
    assert records["path"].to_list() == ["row/0", "row/1", "row/2", "row/3"]
    assert len(manifest.parts) == 3  # one part a file

    pl.DataFrame({"content": ["c = 30\n"], "language": ["python"]}).write_parquet(
        data / "part-1.parquet"
    )
    records, grown, _ = ingest(tmp_path, sources=[source])
    assert [part["reused"] for part in grown.parts] == [True, False, True]
    assert records.select("path", "content").row(2) == ("row/2", "c = 30\n")
