"""The dedup stage's story: its threshold and bands in words, and its largest clusters."""

from __future__ import annotations

from pathlib import Path

from curation.runner import Manifest
from curation.story import Story, StoryContext, StoryTable


def story(manifest: Manifest, ctx: StoryContext) -> Story:
    """Near-dup settings in words; candidate and verified pairs; the largest clusters."""
    c, e = manifest.config, manifest.extra
    others = "dropped" if c["drop_duplicates"] else "kept, marked"
    clusters = e.get("clusters_with_duplicates", 0)
    reused = e.get("summaries_reused", 0)
    largest = [(cluster["size"], cluster["members_here"], "\n".join(cluster["sample_paths"]))
               for cluster in e.get("largest_clusters", [])]  # fmt: skip
    columns = ("cluster size", "records here", "sample paths")
    tables = (StoryTable("largest near-duplicate clusters", columns, largest),) if largest else ()
    return Story(
        settings=(
            f"near-duplicates at Jaccard similarity {c['threshold']} or more over "
            f"{c['shingle']} {c['ngram']}-grams (MinHash {c['num_perm']} permutations, "
            f"{e.get('bands')} bands of {e.get('rows')} rows, verified {c['verify']}); one "
            f"record per cluster kept ({c['representative']}), the others {others}; "
            f"{clusters:,} clusters had duplicates" + _checked_against(c.get("against") or [])
        ),
        text=(
            f"{clusters:,} clusters with duplicates, {e.get('verified_pairs', 0):,} verified "
            f"pairs of {e.get('candidate_pairs', 0):,} candidates."
            + (f" Signatures of {reused:,} input parts were the last run's." if reused else "")
        ),
        tables=tables,
    )


def _checked_against(indexes: list[str]) -> str:
    """The held-out indexes (benchmarks, earlier exports) near-copies of which were dropped."""
    if not indexes:
        return ""
    names = ", ".join(Path(index).name.removesuffix(".parquet") for index in indexes)
    return f"; checked against {names} (near-copies dropped as near_duplicate_of:<name>)"
