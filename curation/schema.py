"""The one record schema shared by every stage: its columns and their types, and the
stable record id."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any, Final

import polars as pl

from curation.errors import SchemaError

# a pair: an instruction/answer pair brought in from a dataset (curation.sources.pairs)
KINDS: Final = ("code", "issue", "commit", "pair")
REVIEW_STATUSES: Final = ("accepted", "corrected", "rejected", "pending")
SPLITS: Final = ("train", "validation", "test")
# What the automatic checks on an annotation can find (`quality_flags`); reviewers see the
# same names as suggested labels in Argilla.
QUALITY_FLAGS: Final = (
    "empty", "too_short", "too_long", "copies_code", "restates_code", "wrong_language",
    "mentions_placeholder", "refuses", "not_a_request", "vague", "repetitive", "boilerplate",
    "names_not_in_code", "incomplete", "off_topic", "garbled", "duplicate_instruction",
    "judge_rejects", "not_verified",
)  # fmt: skip

PII_ENTITY: Final = pl.Struct(
    {"type": pl.String, "start": pl.Int64, "end": pl.Int64, "replacement": pl.String}
)

RECORD_SCHEMA: Final = pl.Schema(
    {
        # identity
        "id": pl.String,
        "kind": pl.String,
        "source": pl.String,
        "path": pl.String,
        "language": pl.String,
        "license": pl.String,
        "commit_sha": pl.String,
        "created_at": pl.Datetime("us", "UTC"),
        # source-specific extras as a JSON object (issue number, url, author login, labels...)
        "meta": pl.String,
        # content
        "content": pl.String,
        "content_clean": pl.String,
        "size_bytes": pl.Int64,
        "num_lines": pl.Int64,
        "num_tokens": pl.Int64,  # where the filters count them (token limits), else null
        # stage marks
        "filter_reason": pl.String,
        "pii_entities": pl.List(PII_ENTITY),
        "pii_count": pl.Int64,
        "exact_hash": pl.String,
        "cluster_id": pl.String,
        "cluster_size": pl.Int64,
        "is_cluster_rep": pl.Boolean,
        # verify: true when the code's checks passed, false with the reason, null unchecked
        "verified": pl.Boolean,
        "verify_reason": pl.String,
        # annotation
        "instruction": pl.String,
        "response": pl.String,
        "task": pl.String,
        "annotator": pl.String,
        "prompt_tokens": pl.Int64,
        "completion_tokens": pl.Int64,
        "cost_usd": pl.Float64,
        "quality_flags": pl.List(pl.String),
        "judge_score": pl.Float64,  # 1-5 from the optional LLM judge of annotations
        # review
        "review_status": pl.String,
        "reviewers": pl.List(pl.String),
        "final_instruction": pl.String,
        "review_labels": pl.List(pl.String),
        # differing corrections reviewers wrote, most voted first (empty when they agree)
        "correction_candidates": pl.List(pl.String),
        # export
        "split": pl.String,
    }
)

REQUIRED_NON_NULL: Final = ("id", "kind", "source", "path", "content", "size_bytes", "num_lines")

_ENUMS: Final[Mapping[str, tuple[str, ...]]] = {
    "kind": KINDS,
    "review_status": REVIEW_STATUSES,
    "split": SPLITS,
}


def record_id(source: str, path: str, content: str) -> str:
    """Stable content hash of source + path + content: the key every stage joins on."""
    digest = hashlib.blake2b(digest_size=16)
    for part in (source, path, content):
        encoded = part.encode("utf-8", "surrogatepass")
        digest.update(len(encoded).to_bytes(8, "little"))
        digest.update(encoded)
    return digest.hexdigest()


def empty_records() -> pl.DataFrame:
    """A frame with no rows and the full record schema."""
    return pl.DataFrame(schema=RECORD_SCHEMA)


def to_records(rows: Iterable[Mapping[str, Any]]) -> pl.DataFrame:
    """Build a schema-conformant frame from dicts holding any subset of the columns."""
    rows = list(rows)
    unknown = {key for row in rows for key in row} - set(RECORD_SCHEMA)
    if unknown:
        raise SchemaError(f"unknown record column(s): {', '.join(sorted(unknown))}")
    columns = {
        name: pl.Series(name, [row.get(name) for row in rows], dtype=dtype)
        for name, dtype in RECORD_SCHEMA.items()
    }
    return pl.DataFrame(columns)


def conform(frame: pl.DataFrame) -> pl.DataFrame:
    """Add missing record columns as nulls, cast known ones, and order them as the schema.

    Columns outside the schema are an error: a typo must not silently become a new column.
    """
    unknown = [name for name in frame.columns if name not in RECORD_SCHEMA]
    if unknown:
        raise SchemaError(f"unknown record column(s): {', '.join(unknown)}")
    exprs = [
        pl.col(name).cast(dtype, strict=True)
        if name in frame.columns
        else pl.lit(None, dtype=dtype).alias(name)
        for name, dtype in RECORD_SCHEMA.items()
    ]
    try:
        return frame.select(exprs)
    except pl.exceptions.PolarsError as e:
        raise SchemaError(f"frame does not fit the record schema: {e}") from e


def validate(frame: pl.DataFrame) -> pl.DataFrame:
    """Check a frame against the record schema; raise SchemaError naming the bad column."""
    for name, dtype in RECORD_SCHEMA.items():
        if name not in frame.columns:
            raise SchemaError(f"column '{name}' is missing (expected {dtype})")
        if frame.schema[name] != dtype:
            raise SchemaError(f"column '{name}' has type {frame.schema[name]}, expected {dtype}")
    extra = [name for name in frame.columns if name not in RECORD_SCHEMA]
    if extra:
        raise SchemaError(f"column '{extra[0]}' is not part of the record schema")
    for name in REQUIRED_NON_NULL:
        nulls = frame[name].null_count()
        if nulls:
            raise SchemaError(f"column '{name}' has {nulls} null value(s); it is required")
    for name, allowed in _ENUMS.items():
        bad = frame.filter(pl.col(name).is_not_null() & ~pl.col(name).is_in(allowed))[name]
        if len(bad):
            raise SchemaError(
                f"column '{name}' has value {bad[0]!r}; expected one of {', '.join(allowed)}"
            )
    duplicated = frame.filter(pl.col("id").is_duplicated())["id"]
    if len(duplicated):
        raise SchemaError(f"column 'id' has duplicate value {duplicated[0]!r}")
    return frame
