"""Code from Hugging Face datasets: a `save_to_disk` folder or Parquet files (a folder, a
file or a glob, e.g. a slice of The Stack), mapped onto the record schema by column name.

Each Parquet file is read on its own, so files whose schemas differ still map; a file
that cannot be read is quarantined as `corrupt_file`, and a row whose value does not fit its
record column (integer `content`, an unparseable date) as `bad_field`.
"""

from __future__ import annotations

import glob
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from curation.errors import MissingDependency, SourceError
from curation.languages import ALIASES, EXTENSIONS, header_language
from curation.runner import StageContext
from curation.sources.common import fingerprint_files, finish_records

MAPPABLE = ("content", "path", "source", "language", "license", "commit_sha", "created_at")
_GLOB_CHARACTERS = frozenset("*?[")


class HFSourceConfig(BaseModel):
    """A local Hugging Face dataset; `columns` maps record columns to dataset columns."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["hf"] = "hf"
    path: Path  # a saved dataset folder, a Parquet file or folder, or a glob of Parquet files
    split: str | None = None  # for a saved DatasetDict: which split to read
    name: str | None = None  # `source` for rows whose mapped source column is empty
    kind: Literal["code", "issue", "commit"] = "code"
    # record column -> dataset column; unmapped record columns are taken from a
    # dataset column of the same name where one exists.
    columns: dict[Literal[*MAPPABLE], str] = Field(default_factory=dict)  # type: ignore[valid-type]


def _is_glob(path: Path) -> bool:
    return any(character in _GLOB_CHARACTERS for character in str(path))


def dataset_root(path: Path) -> Path:
    """The folder that file names in quarantine rows are relative to."""
    if _is_glob(path):
        return Path(*(part for part in path.parts if _GLOB_CHARACTERS.isdisjoint(part)))
    return path if path.is_dir() else path.parent


def _is_saved_dataset(path: Path) -> bool:
    return path.is_dir() and any(
        (path / name).exists() for name in ("dataset_info.json", "dataset_dict.json", "state.json")
    )


def _parquet_files(path: Path) -> list[Path]:
    if _is_glob(path):
        return sorted(Path(p) for p in glob.glob(str(path), recursive=True) if Path(p).is_file())
    if path.is_file():
        return [path]
    if path.is_dir():
        return sorted(path.rglob("*.parquet"))
    return []


def fingerprint_hf(config: HFSourceConfig) -> str:
    files = (
        sorted(p for p in config.path.rglob("*") if p.is_file())
        if _is_saved_dataset(config.path)
        else _parquet_files(config.path)
    )
    if not files:
        raise SourceError(
            f"no dataset at {str(config.path)!r} (no Parquet files, no saved dataset)"
        )
    return fingerprint_files(Path(), files, salt=str(config.split))


@dataclass(frozen=True)
class Part:
    """One readable piece of a dataset: a Parquet file, or a whole saved dataset."""

    name: str  # in quarantine rows
    frame: pl.LazyFrame
    schema: pl.Schema
    file: Path | None = None


def _saved_dataset(config: HFSourceConfig, ctx: StageContext) -> list[Part]:
    try:
        import datasets
    except ImportError as e:
        raise MissingDependency("datasets", "hf", "Reading a saved HF dataset") from e
    try:
        loaded = datasets.load_from_disk(str(config.path))
    except Exception as e:  # datasets raises many kinds here, all meaning "cannot be read"
        detail = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        ctx.quarantine("corrupt_file", source=_source_name(config), path=config.path.name,
                       detail=detail)  # fmt: skip
        return []
    if isinstance(loaded, datasets.DatasetDict):
        if config.split is None or config.split not in loaded:
            raise SourceError(
                f"{str(config.path)!r} holds splits {sorted(loaded)}; set 'split' to one"
            )
        loaded = loaded[config.split]
    frame = pl.from_arrow(loaded.data.table)  # memory-mapped Arrow, so this is cheap
    assert isinstance(frame, pl.DataFrame)
    return [Part(config.path.name, frame.lazy(), frame.schema)]


def _parquet_parts(config: HFSourceConfig, ctx: StageContext) -> list[Part]:
    files = _parquet_files(config.path)
    if not files:
        raise SourceError(f"no Parquet files at {str(config.path)!r}")
    root = dataset_root(config.path)
    parts = []
    for file in files:
        name = file.relative_to(root).as_posix() if file.is_relative_to(root) else str(file)
        try:
            schema = pl.read_parquet_schema(file)
        except (pl.exceptions.PolarsError, OSError) as e:
            ctx.quarantine("corrupt_file", source=_source_name(config), path=name,
                           detail=_first_line(e))  # fmt: skip
            continue
        parts.append(Part(name, pl.scan_parquet(file), schema, file))
    return parts


def _first_line(error: Exception) -> str:
    return f"{type(error).__name__}: {(str(error).splitlines() or [''])[0]}"


def mapped_columns(config: HFSourceConfig, available: list[str]) -> dict[str, str]:
    """record column -> dataset column, checked against what the dataset has."""
    mapping = {name: name for name in MAPPABLE if name in available}
    mapping.update(config.columns)
    missing = {k: v for k, v in mapping.items() if v not in available}
    if missing:
        record, column = next(iter(missing.items()))
        raise SourceError(
            f"{str(config.path)!r} has no column {column!r} (mapped to '{record}'); "
            f"its columns: {', '.join(available)}"
        )
    if "content" not in mapping:
        raise SourceError(
            f"{str(config.path)!r} has no 'content' column; map one with "
            f'columns = {{content = "..."}} (its columns: {", ".join(available)})'
        )
    return mapping


def _is_text(dtype: pl.DataType) -> bool:
    return dtype == pl.String or isinstance(dtype, pl.Categorical | pl.Enum)


def typed_column(record: str, dtype: pl.DataType) -> tuple[pl.Expr, pl.Expr | None]:
    """The dataset column renamed `record`, as the record schema's type, and for each row
    the reason its value cannot be that (None when every value can)."""
    column = pl.col(record)

    def unfit(expected: str) -> tuple[pl.Expr, pl.Expr]:
        reason = pl.lit(f"{record}: expected {expected}, got {dtype}")
        return pl.lit(None, pl.String), pl.when(column.is_not_null()).then(reason)

    if record == "created_at":
        if isinstance(dtype, pl.Datetime):
            if dtype.time_zone is None:  # a timestamp without a zone is taken to be UTC
                return column.dt.replace_time_zone("UTC"), None
            return column.dt.convert_time_zone("UTC"), None
        if dtype == pl.Date:
            return column.cast(pl.Datetime("us")).dt.replace_time_zone("UTC"), None
        if _is_text(dtype):
            parsed = column.cast(pl.String).str.to_datetime(time_zone="UTC", strict=False)
            reason = pl.lit("created_at: expected an ISO 8601 date and time")
            return parsed, pl.when(column.is_not_null() & parsed.is_null()).then(reason)
        return unfit("a date and time")
    if record == "license" and isinstance(dtype, pl.List):
        if _is_text(dtype.inner):
            return column.cast(pl.List(pl.String)).list.join(" OR "), None
        return unfit("licence names")
    if _is_text(dtype) or (record != "content" and dtype.is_numeric()):
        return column.cast(pl.String), None
    return unfit("a string")


def _language_expr(mapping: dict[str, str]) -> pl.Expr:
    if "language" in mapping:
        return pl.col("language").str.to_lowercase().replace(ALIASES)
    extension = pl.col("path").str.extract(r"(\.[^./]+)$", 1).str.to_lowercase()
    return extension.replace_strict(EXTENSIONS, default=None, return_dtype=pl.String)


def _source_name(config: HFSourceConfig) -> str:
    return config.name or dataset_root(config.path).name or str(config.path)


@dataclass(frozen=True)
class Shard:
    """A piece of a dataset that one worker reads alone: one Parquet file, or a whole saved
    dataset (`file` None). `offset` counts the rows of the files before it, which number
    rows that have no path."""

    config: HFSourceConfig
    file: Path | None
    name: str
    offset: int = 0


def hf_shards(config: HFSourceConfig, ctx: StageContext) -> list[Shard]:
    """The source's shards; a file whose schema cannot be read or does not map is
    quarantined here (when no file maps, the mapping is wrong: an error)."""
    if _is_saved_dataset(config.path):
        return [Shard(config, None, config.path.name)]
    shards, unmapped = [], []
    offset = 0
    for part in _parquet_parts(config, ctx):
        try:
            mapped_columns(config, part.schema.names())
        except SourceError as e:
            unmapped.append((part, e))
            continue
        shards.append(Shard(config, part.file, part.name, offset))
        offset += part.frame.select(pl.len()).collect().item()  # from the file's footer
    if unmapped and not shards:
        raise unmapped[0][1]
    for part, error in unmapped:
        ctx.quarantine("bad_schema", source=_source_name(config), path=part.name,
                       detail=str(error))  # fmt: skip
    return shards


def fingerprint_shard(shard: Shard) -> str:
    if shard.file is None:
        return fingerprint_hf(shard.config)
    return fingerprint_files(Path(), [shard.file], salt=f"{shard.config.split}\0{shard.offset}")


def read_hf_shard(
    shard: Shard, languages: frozenset[str], ctx: StageContext, batch_size: int
) -> Iterator[pl.DataFrame]:
    """Records of the requested languages; rows and files that cannot be read are
    quarantined (see the module docstring)."""
    config = shard.config
    if shard.file is None:
        parts = _saved_dataset(config, ctx)
    else:
        parts = [Part(shard.name, pl.scan_parquet(shard.file), pl.read_parquet_schema(shard.file),
                      shard.file)]  # fmt: skip
    for part in parts:
        mapping = mapped_columns(config, part.schema.names())
        rows = 0
        try:
            for batch in _batches(part, mapping, config, shard.offset, batch_size):
                rows += batch.height
                yield from _records(batch, languages, part.name, ctx)
        except (pl.exceptions.PolarsError, OSError) as e:
            detail = f"{_first_line(e)} (after {rows} rows)"
            ctx.quarantine("corrupt_file", source=_source_name(config), path=part.name,
                           detail=detail)  # fmt: skip


def _batches(
    part: Part, mapping: dict[str, str], config: HFSourceConfig, offset: int, batch_size: int
) -> Iterator[pl.DataFrame]:
    """A part's rows as record columns, with `_row` (the index in the part), `_problem` (why
    a value does not fit, or null) and `_header` (a `.h` file that says it is C)."""
    typed, problems = {}, []
    for record, column in mapping.items():
        typed[record], problem = typed_column(record, part.schema[column])
        if problem is not None:
            problems.append(problem)
    problem = pl.concat_str(problems, separator="; ", ignore_nulls=True) if problems else pl.lit("")
    source_name = _source_name(config)
    frame = (
        part.frame.select(pl.col(column).alias(record) for record, column in mapping.items())
        .with_row_index("_row")
        .with_columns(_problem=pl.when(problem != "").then(problem), **typed)
    )
    if "path" not in mapping:
        frame = frame.with_columns(path=pl.format("row/{}", pl.col("_row") + offset))
    if "source" in mapping:
        frame = frame.with_columns(pl.col("source").fill_null(source_name))
    else:
        frame = frame.with_columns(source=pl.lit(source_name))
    header = pl.col("path").str.to_lowercase().str.ends_with(".h") & (pl.col("language") == "c")
    frame = frame.with_columns(language=_language_expr(mapping), kind=pl.lit(config.kind))
    yield from frame.with_columns(_header=header.fill_null(False)).collect_batches(
        chunk_size=batch_size
    )


def _headers_by_content(batch: pl.DataFrame) -> pl.DataFrame:
    """`.h` rows labelled C become C or C++ by their content, in Python row by row: the rule
    follows preprocessor branches, which no Polars expression can."""
    rows = batch.select((pl.col("_header") & pl.col("content").is_not_null()).arg_true())
    indices = rows.to_series()
    if indices.is_empty():
        return batch.drop("_header")
    languages = [header_language(text) for text in batch["content"].gather(indices)]
    return batch.with_columns(language=batch["language"].scatter(indices, languages)).drop(
        "_header"
    )


def _records(
    batch: pl.DataFrame, languages: frozenset[str], part: str, ctx: StageContext
) -> Iterator[pl.DataFrame]:
    batch = _headers_by_content(batch)
    unwanted = ~pl.col("language").is_in(list(languages)) | pl.col("language").is_null()
    if skipped := batch.filter(unwanted).height:
        ctx.skip("other_language", skipped)
    batch = batch.filter(~unwanted)
    unfit = pl.col("_problem").is_not_null() | pl.col("content").is_null()
    for row in batch.filter(unfit).iter_rows(named=True):
        where = {"source": row["source"], "path": f"{part}:row {row['_row']}"}
        if row["_problem"] is not None:
            ctx.quarantine("bad_field", detail=row["_problem"], **where)
        else:
            ctx.quarantine("missing_content", detail="content: null", **where)
    batch = batch.filter(~unfit).drop("_row", "_problem")
    if batch.height:
        yield finish_records(batch.to_dicts())
