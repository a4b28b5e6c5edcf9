"""Helpers every source uses to turn raw rows into schema records."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import polars as pl

from curation.schema import record_id, to_records

T = TypeVar("T")


def num_lines(content: pl.Expr) -> pl.Expr:
    """Lines in a text, counting a last line without a trailing newline."""
    return (
        content.str.count_matches("\n")
        + pl.when(content.str.ends_with("\n") | (content == "")).then(0).otherwise(1)
    ).cast(pl.Int64)


def finish_records(rows: list[dict[str, Any]]) -> pl.DataFrame:
    """Schema records from raw rows: ids (where a source gave none), byte sizes and line
    counts filled in."""
    for row in rows:
        if row.get("id") is None:
            row["id"] = record_id(row["source"], row["path"], row["content"])
    return to_records(rows).with_columns(
        size_bytes=pl.col("content").str.len_bytes().cast(pl.Int64),
        num_lines=num_lines(pl.col("content")),
    )


def fingerprint_files(root: Path, paths: Iterable[Path | str], salt: str = "") -> str:
    """A hash that changes when any file changes: relative path, size and mtime (cheap:
    no file is read), plus `salt` for what else decides the input (a commit, a split)."""
    digest = hashlib.sha256(salt.encode())
    for path in paths:
        try:
            stat = (root / path).stat()
        except OSError as e:  # reading it will quarantine it; the hash only has to change
            digest.update(f"{path}\0{type(e).__name__}\n".encode())
            continue
        digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive lists of at most `size` items."""
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
