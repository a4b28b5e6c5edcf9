"""Reviewed records -> the next version of a dataset, written once and never again.

A version is a folder `<root>/<name>/<version>/`:
    data/<split>-00000-of-00001.parquet   the splits, loadable by `datasets` as they are
    README.md                             the dataset card (YAML: configs, features, licence...)
    lineage.json                          where every record came from, who reviewed it, what
                                          it cost, the diff against the parent, and the split
                                          of every record the dataset ever held
    checksums.sha256                      the sha256 of each file above
It is written in a staging folder and renamed into place, then the registry is updated;
the same records, history and seed give byte-identical folders.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal

import polars as pl

from curation.errors import CurateError
from finetune.release.card import dataset_card, human_reviews, review_summary
from finetune.release.config import ExportConfig
from finetune.release.diff import COLUMNS, diff_frames, read_version_rows
from finetune.release.registry import (
    LINEAGE,
    REGISTRY,
    Entry,
    latest,
    open_version,
    read_registry,
    write_registry,
)
from finetune.release.splits import assign_splits
from finetune.release.topics import cap_topics, find_topics, topic_breakdown
from finetune.release.versions import bump, shard_path, version_folder, write_checksums

EXPORTED_STATUSES: Final = ("accepted", "corrected")
RAW_COLUMNS: Final = (
    "id",
    "kind",
    "language",
    "task",
    "source",
    "path",
    "license",
    "commit_sha",
    "cluster_id",
    "annotator",
    "review_status",
    "reviewers",
    "quality_flags",
)


@dataclass(frozen=True)
class Export:
    name: str
    version: str
    folder: Path
    counts: dict[str, int]
    content_hash: str
    created: bool  # False: identical to `version`, which already existed


def training_frame(records: pl.DataFrame, machine_reviewers: list[str]) -> pl.DataFrame:
    """The exported columns: `messages` and `prompt`/`completion` for SFT, and raw columns."""
    code = pl.col("kind").is_in(["code", "pair"])
    answer = pl.when(code).then("content_clean").otherwise("response")
    return records.select(
        messages=pl.concat_list(
            pl.struct(role=pl.lit("user"), content=pl.col("final_instruction")),
            pl.struct(role=pl.lit("assistant"), content=answer),
        ),
        prompt=pl.col("final_instruction"),
        completion=answer,
        **{c: pl.col(c) for c in RAW_COLUMNS},
        human_reviews=human_reviews(machine_reviewers),
    )


def export(
    records: pl.DataFrame,
    config: ExportConfig,
    run: dict[str, Any],
    version: str | None = None,
    part: Literal["major", "minor", "patch"] = "minor",
) -> Export:
    """Write the next version of the dataset from reviewed records (accepted or corrected).

    `run` is what codecurate.lineage says about the pipeline run (inputs, settings,
    annotators, `machine_reviewers`, agreement...). The latest version is verified first;
    an export identical to it returns that version instead of a copy.
    """
    chosen = exported_records(records)
    if chosen.is_empty():
        raise CurateError("no accepted or corrected records to export: review some first")
    topics = find_topics(chosen["final_instruction"].to_list(), config.seed)
    chosen = chosen.with_columns(topic=pl.Series(topics.assigned, dtype=pl.Int64))
    before = chosen["topic"]
    if config.max_topic_share is not None:
        chosen = cap_topics(chosen, config.max_topic_share)
    breakdown = topic_breakdown(topics.labels, before, chosen["topic"])
    chosen = chosen.drop("topic")
    if version is not None:
        _new_folder(config, version)  # before any work: that version may exist already
    parent_version = latest(config.root, config.name)
    parent = (
        open_version(config.root, f"{config.name}@{parent_version}") if parent_version else None
    )
    remembered: dict[str, str] = parent.lineage["record_splits"] if parent else {}
    chosen = chosen.with_columns(
        split=assign_splits(chosen, config.splits, config.seed, remembered, config.min_clusters)
    )
    machines = list(run.get("machine_reviewers", []))
    frames = {
        s: training_frame(chosen.filter(pl.col("split") == s), machines)
        for s in config.split_names
        if (chosen["split"] == s).any()
    }
    shards = {s: _parquet_bytes(frame) for s, frame in frames.items()}
    content_hash = _content_hash(shards)
    counts = {s: frame.height for s, frame in frames.items()}
    if parent is not None and version is None and parent.lineage["content_hash"] == content_hash:
        return Export(config.name, parent.version, parent.folder, counts, content_hash, False)
    version = version or bump(parent_version, part)
    folder = _new_folder(config, version)
    rows = pl.concat(f.select(COLUMNS).with_columns(split=pl.lit(s)) for s, f in frames.items())
    old_rows = read_version_rows(parent.folder) if parent else rows.clear()
    diff = diff_frames(old_rows, rows, parent.ref if parent else "none", f"{config.name}@{version}")
    lineage = {
        **run,
        "dataset": config.name,
        "version": version,
        "parent": parent_version,
        "seed": config.seed,
        "split_fractions": config.splits,
        "min_clusters": config.min_clusters,
        "counts": counts,
        "content_hash": content_hash,
        "review": {"statuses": _annotated_statuses(records), **review_summary(chosen, machines)},
        "sources": _sources(chosen),
        "annotation_cost_usd": round(float(chosen["cost_usd"].fill_null(0).sum()), 6),
        "topics": {
            "method": "tf-idf over the final instructions, k-means (finetune.release.topics)",
            "max_share": config.max_topic_share,
            "topics": breakdown,
        },
        "diff": diff.to_lineage(),
        "record_splits": remembered | dict(chosen.select("id", "split").iter_rows()),
    }
    checksums = _write_version(
        folder, shards, lineage, dataset_card(config, version, frames, lineage)
    )
    created_at = datetime.now(UTC).isoformat(timespec="seconds")
    entry: Entry = {
        "version": version,
        "content_hash": content_hash,
        "checksums_sha256": checksums,
        "counts": counts,
        "parent": parent_version,
        "created_at": created_at,
    }
    others = [e for e in read_registry(config.root, config.name) if e["version"] != version]
    try:
        write_registry(config.root, config.name, [*others, entry])
    except OSError as e:
        raise CurateError(f"{config.name}@{version} is written, but {REGISTRY} could not be "
                          f"updated ({e}); the version is listed from its folder until the next "
                          "export rewrites the registry") from e  # fmt: skip
    return Export(config.name, version, folder, counts, content_hash, True)


def exported_records(records: pl.DataFrame) -> pl.DataFrame:
    """Accepted and corrected records, and pairs whose dataset gave the instruction where no
    review ran (`review_status` null): their instruction is the final one. By id."""
    given_pair = (
        (pl.col("kind") == "pair")
        & pl.col("task").is_null()
        & pl.col("instruction").is_not_null()
        & pl.col("review_status").is_null()
        & pl.col("filter_reason").is_null()
    )
    chosen = records.filter(pl.col("review_status").is_in(EXPORTED_STATUSES) | given_pair)
    return chosen.with_columns(
        final_instruction=pl.when(given_pair).then("instruction").otherwise("final_instruction")
    ).sort("id")


def _new_folder(config: ExportConfig, version: str) -> Path:
    folder = version_folder(config.root, config.name, version)
    if folder.exists():
        raise CurateError(f"{config.name}@{version} exists and versions are immutable: "
                          "export a new version (or --version another)")  # fmt: skip
    return folder


def _write_version(
    folder: Path, shards: dict[str, bytes], lineage: dict[str, Any], card: str
) -> str:
    """Write the version in a staging folder and rename it into place; its checksums' sha256."""
    staging = folder.with_name(f".{folder.name}.{uuid.uuid4().hex[:12]}.partial")
    staging.mkdir(parents=True)
    try:
        for split, shard in shards.items():
            path = staging / shard_path(split)
            path.parent.mkdir(exist_ok=True)
            path.write_bytes(shard)
        (staging / LINEAGE).write_text(json.dumps(lineage, indent=2, sort_keys=True) + "\n")
        (staging / "README.md").write_text(card)
        checksums = write_checksums(staging)
        os.rename(staging, folder)
    except OSError as e:
        raise CurateError(f"could not write {folder}: {e}") from e
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return checksums


def _parquet_bytes(frame: pl.DataFrame) -> bytes:
    """Deterministic Parquet: the same frame always gives the same bytes."""
    buffer = io.BytesIO()
    frame.write_parquet(buffer, compression="zstd", statistics=True)
    return buffer.getvalue()


def _content_hash(shards: dict[str, bytes]) -> str:
    digest = hashlib.sha256()
    for split, shard in shards.items():
        digest.update(f"{split}\x00{len(shard)}\x00".encode())
        digest.update(shard)
    return digest.hexdigest()


def _annotated_statuses(records: pl.DataFrame) -> dict[str, int]:
    """Review statuses of every annotated record in the run, exported or not (a pair's given
    instruction that no review saw is not pending anything)."""
    annotated = pl.col("task").is_not_null() | pl.col("review_status").is_not_null()
    statuses = records.filter(pl.col("instruction").is_not_null(), annotated)["review_status"]
    return dict(sorted(statuses.fill_null("pending").value_counts().iter_rows()))


def _sources(chosen: pl.DataFrame) -> list[dict[str, Any]]:
    """Each source of the exported records with its record count and commits."""
    return (
        chosen.group_by("source")
        .agg(records=pl.len(), commits=pl.col("commit_sha").drop_nulls().unique().sort())
        .sort("source")
        .to_dicts()
    )
