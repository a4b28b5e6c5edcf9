"""Code from Hugging Face datasets: a `save_to_disk` folder or Parquet files (e.g. a slice
of The Stack), mapped onto the record schema by column name."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from curation.errors import MissingDependency, SourceError
from curation.languages import ALIASES, EXTENSIONS
from curation.runner import StageContext
from curation.sources.common import fingerprint_files, finish_records

MAPPABLE = ("content", "path", "source", "language", "license", "commit_sha", "created_at")


class HFSourceConfig(BaseModel):
    """A local Hugging Face dataset; `columns` maps record columns to dataset columns."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["hf"] = "hf"
    path: Path
    split: str | None = None  # for a saved DatasetDict: which split to read
    name: str | None = None  # `source` for rows whose mapped source column is empty
    kind: Literal["code", "issue", "commit"] = "code"
    # record column -> dataset column; unmapped record columns are taken from a
    # dataset column of the same name where one exists.
    columns: dict[Literal[*MAPPABLE], str] = Field(default_factory=dict)  # type: ignore[valid-type]


def _is_saved_dataset(path: Path) -> bool:
    return path.is_dir() and any(
        (path / name).exists() for name in ("dataset_info.json", "dataset_dict.json", "state.json")
    )


def _parquet_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if path.is_dir():
        return sorted(path.rglob("*.parquet"))
    return sorted(Path().glob(str(path)))


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


def scan_dataset(config: HFSourceConfig) -> pl.LazyFrame:
    """The dataset as a LazyFrame; saved datasets are memory-mapped Arrow, so this is cheap."""
    if _is_saved_dataset(config.path):
        try:
            import datasets
        except ImportError as e:
            raise MissingDependency("datasets", "hf", "Reading a saved HF dataset") from e
        loaded = datasets.load_from_disk(str(config.path))
        if isinstance(loaded, datasets.DatasetDict):
            if config.split is None or config.split not in loaded:
                raise SourceError(
                    f"{str(config.path)!r} holds splits {sorted(loaded)}; set 'split' to one"
                )
            loaded = loaded[config.split]
        return pl.from_arrow(loaded.data.table).lazy()
    files = _parquet_files(config.path)
    if not files:
        raise SourceError(f"no Parquet files at {str(config.path)!r}")
    return pl.scan_parquet(files)


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


def _language_expr(mapping: dict[str, str]) -> pl.Expr:
    if "language" in mapping:
        lowered = pl.col("language").cast(pl.String).str.to_lowercase()
        return lowered.replace(ALIASES)
    extension = pl.col("path").str.extract(r"(\.[^./]+)$", 1).str.to_lowercase()
    return extension.replace_strict(EXTENSIONS, default=None, return_dtype=pl.String)


def read_hf_dataset(
    config: HFSourceConfig, languages: frozenset[str], ctx: StageContext, batch_size: int
) -> Iterator[pl.DataFrame]:
    """Records of the requested languages; rows without content are quarantined."""
    lazy = scan_dataset(config)
    mapping = mapped_columns(config, lazy.collect_schema().names())
    source_name = config.name or config.path.name
    frame = lazy.select(
        pl.col(column).alias(record) for record, column in mapping.items()
    ).with_row_index("_row")
    if "path" not in mapping:
        frame = frame.with_columns(path=pl.format("row/{}", pl.col("_row")))
    if "license" in mapping and frame.collect_schema()["license"] != pl.String:
        frame = frame.with_columns(pl.col("license").cast(pl.List(pl.String)).list.join(" OR "))
    frame = frame.with_columns(
        language=_language_expr(mapping),
        source=pl.col("source").cast(pl.String).fill_null(source_name)
        if "source" in mapping
        else pl.lit(source_name),
        kind=pl.lit(config.kind),
    )
    for batch in frame.collect_batches(chunk_size=batch_size):
        unwanted = ~pl.col("language").is_in(list(languages)) | pl.col("language").is_null()
        ctx.skip("other_language", batch.filter(unwanted).height)
        batch = batch.filter(~unwanted)
        for row in batch.filter(pl.col("content").is_null()).iter_rows(named=True):
            ctx.quarantine("missing_content", source=row["source"], path=row["path"])
        batch = batch.filter(pl.col("content").is_not_null()).drop("_row")
        if batch.height:
            yield finish_records(batch.to_dicts())
