import polars as pl
import pytest

from curation import RECORD_SCHEMA, SchemaError, conform, record_id, to_records, validate


def record(**overrides: object) -> dict:
    base = {"kind": "code", "source": "repo", "path": "a.py", "content": "print(1)\n"}
    base.update(overrides)
    base.setdefault("id", record_id(base["source"], base["path"], base["content"]))
    base.setdefault("size_bytes", len(base["content"]))
    base.setdefault("num_lines", 1)
    return base


def test_record_id_is_stable_and_depends_on_source_path_and_content():
    assert record_id("r", "a.py", "x") == record_id("r", "a.py", "x")
    assert (
        len(
            {
                record_id("r", "a.py", "x"),
                record_id("r", "b.py", "x"),
                record_id("s", "a.py", "x"),
                record_id("r", "a.py", "y"),
            }
        )
        == 4
    )
    # Length-prefixed parts: moving a character across the boundary changes the id.
    assert record_id("ab", "c", "") != record_id("a", "bc", "")


def test_to_records_fills_every_schema_column():
    frame = to_records([record()])
    assert frame.schema == RECORD_SCHEMA
    assert validate(frame).height == 1


def test_to_records_rejects_unknown_columns():
    with pytest.raises(SchemaError, match=r"unknown record column.*contnet"):
        to_records([{"contnet": "typo"}])


def test_validate_names_a_missing_column():
    frame = to_records([record()]).drop("cluster_id")
    with pytest.raises(SchemaError, match="column 'cluster_id' is missing"):
        validate(frame)


def test_validate_names_a_column_of_the_wrong_type():
    frame = to_records([record()]).with_columns(pl.col("num_lines").cast(pl.String))
    with pytest.raises(SchemaError, match="column 'num_lines' has type String, expected Int64"):
        validate(frame)


def test_validate_names_a_null_required_column():
    frame = to_records([record()]).with_columns(pl.lit(None, pl.String).alias("content"))
    with pytest.raises(SchemaError, match="column 'content' has 1 null"):
        validate(frame)


def test_validate_rejects_values_outside_an_enum():
    with pytest.raises(SchemaError, match="column 'kind' has value 'snippet'"):
        validate(to_records([record(kind="snippet")]))


def test_validate_rejects_duplicate_ids():
    with pytest.raises(SchemaError, match="column 'id' has duplicate value"):
        validate(to_records([record(), record()]))


def test_conform_adds_missing_columns_and_orders_them():
    frame = conform(pl.DataFrame({"content": ["x"], "id": ["1"]}))
    assert frame.columns == list(RECORD_SCHEMA)
    assert frame["cluster_size"].to_list() == [None]


def test_conform_names_a_column_that_cannot_be_cast():
    with pytest.raises(SchemaError, match="num_lines"):
        conform(pl.DataFrame({"num_lines": ["many"]}))
