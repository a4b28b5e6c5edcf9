"""Train/validation/test by near-duplicate cluster, stratified, and stable across versions.

A record that was in an earlier version of the dataset keeps the split it had there, and
its cluster goes with it, so a trainer comparing versions never finds a record of one
version's validation set in the next one's train. Clusters new to the dataset are spread
over their (language, task) stratum in the order of a seeded hash of the cluster id, and
cut at the fractions each split still lacks. No cluster is in two splits.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import polars as pl

from curation.errors import CurateError
from curation.schema import SPLITS

STRATUM = ("language", "task")
# When the remembered members of one cluster disagree (dedup merged two clusters), the
# evaluation splits win: moving a record out of train is safer than leaking one into it.
_PRIORITY = {"test": 0, "validation": 1, "train": 2}


def assign_splits(
    records: pl.DataFrame,
    fractions: Mapping[str, float],
    seed: int,
    remembered: Mapping[str, str],
    min_clusters: int = 1,
) -> pl.Series:
    """A split per record of `records`; `remembered` is record id -> split in earlier versions.

    Each split of `fractions` gets at least `min_clusters` clusters, or a CurateError says
    how to export a corpus this small.
    """
    names = [s for s in SPLITS if s in fractions]
    members = records.select(
        "id",
        cluster=pl.coalesce("cluster_id", "id"),
        language=pl.col("language").fill_null(""),
        task=pl.col("task").fill_null(""),
    ).join(_memory(remembered), on="id", how="left", maintain_order="left")
    _check_remembered_splits(members, names)
    clusters = _clusters(members, seed)
    placed = _place_new_clusters(clusters, fractions, names)
    placed = _fill_small_splits(placed, names, min_clusters)
    return members.join(
        placed.select("cluster", "split"), on="cluster", how="left", maintain_order="left"
    )["split"]


def _memory(remembered: Mapping[str, str]) -> pl.DataFrame:
    return pl.DataFrame(
        {"id": list(remembered), "remembered": list(remembered.values())},
        schema={"id": pl.String, "remembered": pl.String},
    )


def _check_remembered_splits(members: pl.DataFrame, names: list[str]) -> None:
    dropped = members.filter(
        pl.col("remembered").is_not_null() & ~pl.col("remembered").is_in(names)
    )
    if not dropped.is_empty():
        split = dropped["remembered"][0]
        raise CurateError(
            f"[export].splits has no {split}, where {dropped.height} of these "
            "records were in earlier versions: keep the split, or export them "
            "under a new dataset name"
        )


def _clusters(members: pl.DataFrame, seed: int) -> pl.DataFrame:
    """One row per cluster: its stratum, size, remembered split (or null) and hash order."""
    votes = (
        members.filter(pl.col("remembered").is_not_null())
        .group_by("cluster", "remembered")
        .agg(votes=pl.len())
        .with_columns(priority=pl.col("remembered").replace_strict(_PRIORITY))
        .sort("cluster", "votes", "priority", descending=[False, True, False])
        .group_by("cluster", maintain_order=True)
        .agg(kept=pl.col("remembered").first())
    )
    clusters = (
        members.group_by("cluster")
        .agg(pl.col(*STRATUM).sort_by("id").first(), size=pl.len())
        .join(votes, on="cluster", how="left")
        .sort("cluster")
    )
    # hashlib, not Expr.hash: Polars does not promise the same hash in its next release, and
    # where a new cluster lands must not depend on which Polars wrote the version.
    order = [hashlib.sha256(f"{seed}\x00{c}".encode()).hexdigest() for c in clusters["cluster"]]
    return clusters.with_columns(order=pl.Series(order, dtype=pl.String))


def _place_new_clusters(
    clusters: pl.DataFrame, fractions: Mapping[str, float], names: list[str]
) -> pl.DataFrame:
    """Remembered clusters keep their split; new ones fill what each split lacks.

    A split lacks max(0, fraction x records - records it keeps). Within its stratum each new
    cluster takes a position in [0, 1) in hash order, by its share of the stratum's new
    records; new clusters of all strata are then ordered by position and cut at the
    cumulative shares of the lacks, so every stratum spreads over the splits in proportion.
    """
    size = pl.col("size")
    kept = {s: clusters.filter(pl.col("kept") == s)["size"].sum() for s in names}
    lacks = [max(0.0, fractions[s] * clusters["size"].sum() - kept[s]) for s in names]
    if sum(lacks) == 0:  # every split holds its share already: new clusters go by fraction
        lacks = [fractions[s] for s in names]
    cuts = [sum(lacks[: i + 1]) / sum(lacks) for i in range(len(names))]
    new = (
        clusters.filter(pl.col("kept").is_null())
        .sort(*STRATUM, "order")
        .with_columns(position=((size.cum_sum() - size / 2) / size.sum()).over(*STRATUM))
        .sort("position", "order")
        .with_columns(share=(size.cum_sum() - size / 2) / size.sum())
    )
    chosen = pl.lit(names[-1])
    for s, cut in reversed(list(zip(names[:-1], cuts[:-1], strict=True))):
        chosen = pl.when(pl.col("share") <= cut + 1e-12).then(pl.lit(s)).otherwise(chosen)
    new = new.select("cluster", "position", new_split=chosen)
    return clusters.join(new, on="cluster", how="left").with_columns(
        split=pl.coalesce("kept", "new_split"), movable=pl.col("kept").is_null()
    )


def _fill_small_splits(placed: pl.DataFrame, names: list[str], min_clusters: int) -> pl.DataFrame:
    """Give each split `min_clusters` clusters, moving new clusters from the biggest split."""
    counts = {s: 0 for s in names} | dict(placed["split"].value_counts().iter_rows())
    for short in names:
        while counts[short] < min_clusters:
            donors = [
                s
                for s in names
                if s != short
                and counts[s] > min_clusters
                and placed.filter((pl.col("split") == s) & pl.col("movable")).height
            ]
            if not donors:
                raise _too_small(placed, names, min_clusters)
            donor = max(donors, key=lambda s: counts[s])
            moved = placed.filter((pl.col("split") == donor) & pl.col("movable")).sort(
                "position", "order", descending=True
            )["cluster"][0]
            placed = placed.with_columns(
                split=pl.when(pl.col("cluster") == moved).then(pl.lit(short)).otherwise("split")
            )
            counts[donor] -= 1
            counts[short] += 1
    return placed


def _too_small(placed: pl.DataFrame, names: list[str], min_clusters: int) -> CurateError:
    kept = " (records of earlier versions keep their splits)" if not placed["movable"].all() else ""
    return CurateError(
        f"{placed.height} near-duplicate clusters ({placed['size'].sum()} records) cannot give "
        f"{', '.join(names)} at least {min_clusters} cluster(s) each{kept}: export fewer "
        "splits ([export] splits = {train = 1.0}, or {train = 0.9, test = 0.1}), or let a "
        "split be empty with --min-clusters 0"
    )
