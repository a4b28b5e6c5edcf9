"""Reviewed records -> a versioned Hugging Face dataset that trainers can pull and trust.

A version is a folder `<root>/<name>/<version>/`:
    data/<split>-00000-of-00001.parquet   the splits, loadable by `datasets` as they are
    README.md                             the dataset card (YAML: configs, features, licence...)
    lineage.json                          where every record came from and what it cost
Splits follow near-duplicate clusters (no cluster straddles two splits), are stratified by
language and task, and depend only on the records and the seed: the same input and seed
give byte-identical folders. A version, once written, is never written again; the
registry `<root>/<name>/versions.json` lists versions with their dates and content hashes.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, model_validator

from curation.errors import ConfigError, CurateError

SPLITS: Final = ("train", "validation", "test")
EXPORTED_STATUSES: Final = ("accepted", "corrected")
RAW_COLUMNS: Final = ("id", "kind", "language", "task", "source", "path", "license",
                      "commit_sha", "cluster_id", "annotator", "review_status", "reviewers",
                      "quality_flags")  # fmt: skip


class ExportConfig(BaseModel):
    """`[export]`: which dataset, how it is split, where versions are kept."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(default="code-instructions", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    root: Path = Path("data/exports")
    seed: int = 42
    splits: dict[str, float] = Field(
        default_factory=lambda: {"train": 0.8, "validation": 0.1, "test": 0.1}
    )
    license: str | None = None  # the card's licence; default: the records' own, if one
    hub_repo: str | None = None  # push_to_hub target (HF_TOKEN from the environment)

    @model_validator(mode="after")
    def _check(self) -> ExportConfig:
        if set(self.splits) != set(SPLITS) or abs(sum(self.splits.values()) - 1) > 1e-9:
            raise ConfigError("export.splits: train, validation and test fractions summing to 1")
        return self


# versions


def parse_version(text: str) -> tuple[int, int, int]:
    parts = text.split(".")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise ConfigError(f"version {text!r}: expected MAJOR.MINOR.PATCH, e.g. 1.2.0")
    major, minor, patch = (int(p) for p in parts)
    return major, minor, patch


def bump(version: str | None, part: Literal["major", "minor", "patch"]) -> str:
    """The next version after `version` (the first is 1.0.0)."""
    if version is None:
        return "1.0.0"
    major, minor, patch = parse_version(version)
    if part == "major":
        return f"{major + 1}.0.0"
    if part == "minor":
        return f"{major}.{minor + 1}.0"
    return f"{major}.{minor}.{patch + 1}"


def read_registry(root: Path, name: str) -> list[dict[str, Any]]:
    path = root / name / "versions.json"
    return json.loads(path.read_text()) if path.exists() else []


def latest(root: Path, name: str) -> str | None:
    versions = [entry["version"] for entry in read_registry(root, name)]
    return max(versions, key=parse_version) if versions else None


def resolve(root: Path, ref: str) -> Path:
    """`name@1.2.0` or `name` (the latest) -> that version's folder."""
    name, _, version = ref.partition("@")
    version = version or latest(root, name) or ""
    folder = root / name / version
    if not version or not (folder / "lineage.json").exists():
        known = ", ".join(e["version"] for e in read_registry(root, name)) or "none"
        raise CurateError(f"no dataset {ref!r} under {root} (versions of {name}: {known})")
    return folder


# splits


def assign_splits(records: pl.DataFrame, fractions: dict[str, float], seed: int) -> pl.Series:
    """A split per record: whole clusters, stratified by (language, task), seeded.

    Within its stratum each cluster gets a position in [0, 1) from a hash of (seed,
    cluster); clusters of all strata are then ordered by that position and cut at the
    cumulative fractions of records, so every stratum spreads over the splits in proportion
    (even a small one) and the result depends on nothing but the records and the seed.
    """
    clusters = (
        records.with_columns(cluster=pl.coalesce("cluster_id", "id"))
        .group_by("cluster")
        .agg(
            pl.col("language").first().fill_null(""),
            pl.col("task").first().fill_null(""),
            size=pl.len(),
        )
        .with_columns(order=pl.concat_str(pl.lit(str(seed)), "cluster").hash(seed=0))
        .sort("language", "task", "order", "cluster")
        .with_columns(
            position=(pl.col("size").cum_sum() - pl.col("size") / 2).over("language", "task")
            / pl.col("size").sum().over("language", "task")
        )
        .sort("position", "order", "cluster")
    )
    if clusters.height < len(SPLITS):
        raise CurateError(f"{clusters.height} clusters cannot fill {len(SPLITS)} splits")
    share = (clusters["size"].cum_sum() - clusters["size"] / 2) / clusters["size"].sum()
    cuts = [sum(fractions[s] for s in SPLITS[: i + 1]) for i in range(len(SPLITS))]
    splits = [SPLITS[next(i for i, cut in enumerate(cuts) if x <= cut + 1e-12)] for x in share]
    for index, split in enumerate(SPLITS[1:], start=1):  # a tiny export still fills each split
        if split not in splits:
            splits[-index] = split
    by_cluster = pl.DataFrame({"cluster": clusters["cluster"], "split": splits})
    return records.select(cluster=pl.coalesce("cluster_id", "id")).join(
        by_cluster, on="cluster", how="left", maintain_order="left"
    )["split"]


# export


def training_frame(records: pl.DataFrame) -> pl.DataFrame:
    """The exported columns: `messages` and `prompt`/`completion` for SFT, and raw columns."""
    answer = pl.when(pl.col("kind") == "code").then("content_clean").otherwise("response")
    return records.select(
        messages=pl.concat_list(
            pl.struct(role=pl.lit("user"), content=pl.col("final_instruction")),
            pl.struct(role=pl.lit("assistant"), content=answer),
        ),
        prompt=pl.col("final_instruction"),
        completion=answer,
        **{c: pl.col(c) for c in RAW_COLUMNS},
    )


@dataclass(frozen=True)
class Export:
    name: str
    version: str
    folder: Path
    counts: dict[str, int]
    content_hash: str
    created: bool  # False: identical to `version`, which already existed


def export(
    records: pl.DataFrame,
    config: ExportConfig,
    lineage: dict[str, Any],
    version: str | None = None,
    part: Literal["major", "minor", "patch"] = "minor",
) -> Export:
    """Write the next version of the dataset from reviewed records (accepted or corrected).

    An export identical to the latest version returns that version instead of a copy.
    """
    chosen = records.filter(pl.col("review_status").is_in(EXPORTED_STATUSES)).sort("id")
    if chosen.is_empty():
        raise CurateError("no accepted or corrected records to export: review some first")
    chosen = chosen.with_columns(split=assign_splits(chosen, config.splits, config.seed))
    frames = {s: training_frame(chosen.filter(pl.col("split") == s)) for s in SPLITS}
    shards = {s: _parquet_bytes(frame) for s, frame in frames.items()}
    content_hash = hashlib.sha256(b"".join(shards[s] for s in SPLITS)).hexdigest()
    parent = latest(config.root, config.name)
    registry = read_registry(config.root, config.name)
    if parent is not None and version is None:
        same = next(e for e in registry if e["version"] == parent)
        if same["content_hash"] == content_hash:
            return Export(config.name, parent, config.root / config.name / parent,
                          {s: frames[s].height for s in SPLITS}, content_hash, False)  # fmt: skip
    version = version or bump(parent, part)
    parse_version(version)
    folder = config.root / config.name / version
    if folder.exists():
        raise CurateError(f"{config.name}@{version} exists and versions are immutable: "
                          "export a new version (or --version another)")  # fmt: skip
    counts = {s: frames[s].height for s in SPLITS}
    staging = folder.with_name(f".{version}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "data").mkdir(parents=True)
    for split in SPLITS:
        (staging / "data" / f"{split}-00000-of-00001.parquet").write_bytes(shards[split])
    parent_rows = _row_hashes_of(config.root / config.name / parent) if parent else {}
    rows = _row_hashes(chosen)
    full_lineage = {
        **lineage,
        "dataset": config.name, "version": version, "parent": parent, "seed": config.seed,
        "split_fractions": config.splits, "counts": counts, "content_hash": content_hash,
        "review": _review_counts(chosen, records),
        "annotation_cost_usd": round(float(chosen["cost_usd"].fill_null(0).sum()), 6),
        "diff": diff_rows(parent_rows, rows),
        "row_hashes": rows,
    }  # fmt: skip
    (staging / "lineage.json").write_text(json.dumps(full_lineage, indent=2, sort_keys=True) + "\n")
    (staging / "README.md").write_text(dataset_card(config, version, frames, full_lineage))
    staging.replace(folder)
    created_at = datetime.now(UTC).isoformat(timespec="seconds")
    registry.append({"version": version, "content_hash": content_hash, "counts": counts,
                     "parent": parent, "created_at": created_at})  # fmt: skip
    (config.root / config.name / "versions.json").write_text(json.dumps(registry, indent=2) + "\n")
    return Export(config.name, version, folder, counts, content_hash, True)


def _parquet_bytes(frame: pl.DataFrame) -> bytes:
    """Deterministic Parquet: the same frame always gives the same bytes."""
    buffer = io.BytesIO()
    frame.write_parquet(buffer, compression="zstd", statistics=True)
    return buffer.getvalue()


def _row_hashes(records: pl.DataFrame) -> dict[str, str]:
    """id -> a hash of what training sees of the record."""
    hashes = records.select(
        "id", h=pl.concat_str(pl.col("final_instruction").fill_null(""),
                              pl.col("content_clean").fill_null(""),
                              pl.col("response").fill_null(""), separator="\x00")
        .hash(seed=0).cast(pl.String),
    )  # fmt: skip
    return dict(hashes.iter_rows())


def _row_hashes_of(folder: Path) -> dict[str, str]:
    return json.loads((folder / "lineage.json").read_text())["row_hashes"]


def diff_rows(parent: dict[str, str], current: dict[str, str]) -> dict[str, Any]:
    """Records added, removed and changed between two versions' row hashes."""
    added = sorted(set(current) - set(parent))
    removed = sorted(set(parent) - set(current))
    changed = sorted(i for i in set(current) & set(parent) if current[i] != parent[i])
    return {"added": len(added), "removed": len(removed), "changed": len(changed),
            "added_ids": added, "removed_ids": removed, "changed_ids": changed}  # fmt: skip


def _review_counts(chosen: pl.DataFrame, records: pl.DataFrame) -> dict[str, Any]:
    statuses = records.filter(pl.col("instruction").is_not_null())["review_status"]
    return {"statuses": dict(sorted(statuses.fill_null("pending").value_counts().iter_rows())),
            "exported": chosen.height}  # fmt: skip


def dataset_card(
    config: ExportConfig, version: str, frames: dict[str, pl.DataFrame], lineage: dict[str, Any]
) -> str:
    """README.md with the YAML the Hub and `datasets` read (configs, features, licence)."""
    from huggingface_hub import DatasetCard, DatasetCardData

    every = pl.concat(frames.values())
    languages = sorted({lang for lang in every["language"].drop_nulls().to_list()})
    licenses = sorted(set(every["license"].drop_nulls().to_list()))
    license = config.license or (licenses[0].lower() if len(licenses) == 1 else "other")
    data = DatasetCardData(
        pretty_name=f"{config.name} {version}",
        language=["en"],
        license=license,
        task_categories=["text-generation"],
        tags=["code", "instruction-tuning", "codecurate", *languages],
        size_categories=["n<1K"] if every.height < 1000 else ["1K<n<10K"],
        configs=[{"config_name": "default", "data_files": [
            {"split": s, "path": f"data/{s}-00000-of-00001.parquet"} for s in SPLITS]}],
    )  # fmt: skip
    diff = lineage["diff"]
    body = (
        f"""
# {config.name} {version}

Instruction/code pairs curated by codecurate: ingested, filtered, stripped of PII,
near-deduplicated, annotated by {", ".join(lineage.get("annotators", [])) or "an LLM"} and
reviewed by people in Argilla. Only accepted or corrected pairs are here.

| split | records |
|---|---|
"""
        + "".join(f"| {s} | {frames[s].height:,} |\n" for s in SPLITS)
        + f"""
Splits follow near-duplicate clusters (no cluster is in two splits) and are stratified by
language and task (seed {config.seed}).

Columns: `messages` (chat), `prompt`/`completion`, and the record's origin (`source`,
`path`, `license`, `commit_sha`, `cluster_id`), `annotator`, `review_status`, `reviewers`,
`quality_flags`.

Programming languages: {", ".join(languages) or "none"}. Licences of the sources:
{", ".join(licenses) or "unknown"}.

Parent version: {lineage["parent"] or "none"}; added {diff["added"]}, removed
{diff["removed"]}, changed {diff["changed"]}. Annotation cost: {lineage["annotation_cost_usd"]}
USD. Everything else (sources and commits, pipeline config hashes, PII and dedup settings,
prompt hashes, review counts) is in `lineage.json`; content hash `{lineage["content_hash"][:16]}`.

```python
from datasets import load_dataset
ds = load_dataset("parquet", data_dir="{config.name}/{version}/data")
```
"""
    )
    return str(DatasetCard(f"---\n{data.to_yaml()}\n---\n{body}"))


def push_to_hub(folder: Path, repo: str, token: str | None) -> str:
    """Upload a version folder to a Hub dataset repo and tag the commit `v<version>`."""
    if not token:
        raise CurateError("push to the Hub needs HF_TOKEN in the environment")
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    version = folder.name
    api.create_repo(repo, repo_type="dataset", exist_ok=True, private=True)
    commit = api.upload_folder(folder_path=str(folder), repo_id=repo, repo_type="dataset",
                               commit_message=f"{folder.parent.name} {version}")  # fmt: skip
    api.create_tag(repo, tag=f"v{version}", repo_type="dataset", revision=commit.oid)
    return f"https://huggingface.co/datasets/{repo}/tree/v{version}"


def load_version(folder: Path) -> Any:
    """A version's DatasetDict, read with plain `datasets` into memory.

    A private, throwaway cache: `datasets` keys its cache on names and file stamps that two
    version folders can share (`<name>/1.0.0` in two roots), and then serves the wrong data.
    """
    import tempfile

    from datasets import load_dataset

    with tempfile.TemporaryDirectory() as cache:
        return load_dataset(str(folder), cache_dir=cache, keep_in_memory=True)
