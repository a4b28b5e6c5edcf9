"""What a dataset version is made of, read from the workdir's manifests and records."""

from __future__ import annotations

from typing import Any

import polars as pl

from curation import Manifest


def lineage(records: pl.DataFrame, manifests: list[Manifest]) -> dict[str, Any]:
    """Sources and commits, each stage's config hash, the PII and dedup settings, the
    annotators and prompt hashes, and the review's progress."""
    by_stage = {m.stage: m for m in manifests}
    sources = (
        records.group_by("source")
        .agg(commits=pl.col("commit_sha").drop_nulls().unique().sort())
        .sort("source")
    )
    annotate = by_stage.get("annotate")
    review = by_stage.get("review")
    return {
        "sources": sources.to_dicts(),
        "stages": {
            m.tag: {
                "config_hash": m.config_hash,
                "input_hash": m.input_hash,
                "codecurate": m.versions.get("codecurate"),
            }
            for m in manifests
        },
        "pii": by_stage["pii"].config if "pii" in by_stage else None,
        "dedup": by_stage["dedup"].config if "dedup" in by_stage else None,
        "annotators": sorted(records["annotator"].drop_nulls().unique().to_list()),
        "prompt_hashes": annotate.extra.get("prompt_hashes", {}) if annotate else {},
        "review_progress": review.extra.get("review_statuses", {}) if review else {},
        "review_agreement": review.extra.get("agreement") if review else None,
    }
