"""What a dataset version is made of, read from the workdir's manifests: each stage's
config, its hash and its settings in words, and what each stage's story adds (where the
records were read from, the prompts, who reviewed and which reviewers are machines)."""

from __future__ import annotations

from typing import Any

import polars as pl

from codecurate.stages import story_of
from curation import Manifest
from curation.story import StoryContext


def lineage(records: pl.DataFrame, manifests: list[Manifest], ctx: StoryContext) -> dict[str, Any]:
    """The run's part of a version's lineage."""
    stories = [(m, story_of(m, ctx)) for m in manifests]
    entries: dict[str, Any] = {}
    for _, story in stories:
        entries.update(story.lineage)
    return {
        "stages": {
            m.tag: {
                "config": m.config,
                "config_hash": m.config_hash,
                "input_hash": m.input_hash,
                "codecurate": m.versions.get("codecurate"),
            }
            for m in manifests
        },
        # a list, in pipeline order (lineage.json sorts the keys of objects)
        "settings": [{"stage": m.stage, "text": story.settings} for m, story in stories],
        "annotators": sorted(records["annotator"].drop_nulls().unique().to_list()),
        **entries,
    }
