"""The dedup stage: cluster near-duplicates, keep one representative per cluster."""

from __future__ import annotations

import importlib.util
import tempfile
from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING, ClassVar

import polars as pl

from curation.dedup.config import DedupConfig
from curation.dedup.index import INDEX_PREFIX, index_nodes, read_index, write_index
from curation.errors import MissingDependency
from curation.parts import record_batches
from curation.runner import Stage, StageContext, hash_json, package_version

if TYPE_CHECKING:
    from curation.dedup.phases import Scratch

# Which member represents its cluster: a sort order over (size_bytes, created_at, id).
REPRESENTATIVE_ORDER = {
    "longest": ([pl.col("size_bytes"), pl.col("id")], [True, False]),
    "shortest": ([pl.col("size_bytes"), pl.col("id")], [False, False]),
    "newest": ([pl.col("created_at"), pl.col("id")], [True, False]),
    "oldest": ([pl.col("created_at"), pl.col("id")], [False, False]),
    "first": ([pl.col("id")], [False]),
}
ROWS_PER_PARTITION = 25_000  # ~1M band rows a task: 549 MB peak over 100k records


def check_dependencies() -> None:
    """Fail early, with the install command, when the `[dedup]` extra is missing."""
    for package in ("numpy", "fsspec", "datasketch"):
        if importlib.util.find_spec(package) is None:
            raise MissingDependency(package, "dedup", "The dedup stage")


class DedupStage(Stage):
    """Near-duplicate clusters over the text that later stages will see.

    The work runs as file-based phases on the context's engine (`curation.dedup.phases`);
    this process then holds one row of ids and labels per record, and joins them back to
    the records batch by batch.
    """

    name: ClassVar[str] = "dedup"

    def __init__(self, config: DedupConfig) -> None:
        check_dependencies()
        self.config = config
        self.indexes = [read_index(path, config) for path in config.against]

    def versions(self) -> dict[str, str]:
        return {"datasketch": package_version("datasketch"), "numpy": package_version("numpy")}

    def run(self, records: pl.LazyFrame | None, ctx: StageContext) -> Iterator[pl.DataFrame]:
        assert records is not None, "dedup reads the records of the stage before"
        from curation.dedup.phases import (  # numpy, fsspec: [dedup]
            Scratch,
            SignatureCache,
            cluster_phases,
        )

        config = self.config
        total = records.select(pl.len()).collect().item()
        partitions = config.partitions or max(1, -(-total // ROWS_PER_PARTITION))
        scratch = Scratch(self._scratch_url(ctx), partitions)
        # kept beside the scratch, which goes when the stage is done: the next run reuses it
        root = ctx.engine.scratch or ctx.workdir
        cache = None if root is None else SignatureCache.for_config(
            f"{str(root).rstrip('/')}/{ctx.tag}.signatures", config
        )  # fmt: skip
        linked = cluster_phases(
            ctx, scratch, records, config, key=hash_json([ctx.run_key, partitions]),
            index=index_nodes(self.indexes), cache=cache,
        )  # fmt: skip
        clusters = self._cluster_frame(records, linked.labels)
        ctx.extra.update(self._summary(clusters, linked.candidates, linked.verified))
        ctx.extra["partitions"], ctx.extra["star_rounds"] = partitions, linked.rounds
        ctx.extra["phase_seconds"] = linked.seconds
        ctx.extra["signatures_reused"] = linked.signatures_reused
        if config.write_index is not None:
            self._write_index(scratch, clusters)
        scratch.remove()  # the stage file is the resume point from here on
        return self._with_clusters(records, clusters.drop("label", "path"), ctx)

    def _scratch_url(self, ctx: StageContext) -> str:
        """`<scratch or workdir>/<tag>.work`; a temporary folder for a stage run outside a
        workdir (removed with the rest of the scratch when the stage is done)."""
        root = ctx.engine.scratch or ctx.workdir
        if root is None:
            return tempfile.mkdtemp(prefix=f"codecurate-{ctx.tag}-")
        return f"{str(root).rstrip('/')}/{ctx.tag}.work"

    def _with_clusters(
        self, records: pl.LazyFrame, clusters: pl.DataFrame, ctx: StageContext
    ) -> Iterator[pl.DataFrame]:
        """Records with their cluster columns, joined batch by batch so only one part of
        content is in memory (a lazy join materialised them all)."""
        for batch in record_batches(records, self.config.batch_size, ctx.input_path):
            yield (
                batch.join(clusters, on="id", how="left", maintain_order="left")
                .with_columns(
                    cluster_id=pl.col("_cluster_id"),
                    cluster_size=pl.col("_cluster_size"),
                    is_cluster_rep=pl.col("_is_rep"),
                    filter_reason=pl.col("_reason"),
                )
                .drop("_cluster_id", "_cluster_size", "_is_rep", "_reason")
            )

    def _cluster_frame(self, records: pl.LazyFrame, labels: pl.DataFrame) -> pl.DataFrame:
        """Per record: cluster id, size, whether it represents it, and the drop reason.

        A cluster's label is its smallest node, a record whenever it holds one (index nodes
        sort last). A cluster that holds an index entry has no representative here: its
        records are already in that index.
        """
        local = records.select("id", "path", "size_bytes", "created_at").collect()
        members = local.select(node="id").join(labels, on="node", how="left")
        members = members.with_columns(label=pl.col("label").fill_null(pl.col("node")))
        held_out = labels.filter(pl.col("node").str.starts_with(INDEX_PREFIX))
        nodes = pl.concat([
            members.with_columns(index=pl.lit(None, pl.String)),
            held_out.with_columns(index=pl.col("node").str.slice(1).str.split("/").list.first()),
        ])  # fmt: skip
        per_cluster = nodes.group_by("label").agg(
            _cluster_size=pl.len().cast(pl.Int64), index=pl.col("index").min()
        )
        order, descending = REPRESENTATIVE_ORDER[self.config.representative]
        ranked = (
            members.join(per_cluster, on="label")
            .join(local, left_on="node", right_on="id")
            .rename({"node": "id"})
            .with_columns(_cluster_id=pl.col("label"))
            .sort(order, descending=descending, nulls_last=True)
        )
        is_rep = (pl.col("id") == pl.col("id").first().over("label")) & pl.col("index").is_null()
        reason = (
            pl.when(pl.col("index").is_not_null())
            .then(pl.format("near_duplicate_of:{}", pl.col("index")))
            .when(~is_rep & pl.lit(self.config.drop_duplicates))
            .then(pl.lit("near_duplicate"))
        )
        return ranked.select(
            "id", "path", "_cluster_id", "_cluster_size", "label", _is_rep=is_rep, _reason=reason
        ).sort("id")

    def _summary(self, clusters: pl.DataFrame, candidates: int, verified: int) -> dict:
        """Counts, the cluster-size histogram and the largest clusters, for the manifest."""
        multi = clusters.filter(pl.col("_cluster_size") > 1)
        sizes = multi.group_by("label").agg(pl.col("_cluster_size").first())["_cluster_size"]
        largest = (
            multi.group_by("_cluster_id")
            .agg(pl.len().alias("members_here"), pl.col("_cluster_size").first().alias("size"),
                 pl.col("path").head(3).alias("sample_paths"))
            .sort("size", "_cluster_id", descending=[True, False])
            .head(5)
        )  # fmt: skip
        return {
            "bands": self.config.lsh()[0],
            "rows": self.config.lsh()[1],
            "candidate_pairs": candidates,
            "verified_pairs": verified,
            "clusters_with_duplicates": len(sizes),
            "cluster_size_histogram": {
                str(k): v for k, v in sorted(Counter(sizes.to_list()).items())
            },
            "largest_clusters": largest.rename({"_cluster_id": "cluster_id"}).to_dicts(),
        }

    def _write_index(self, scratch: Scratch, clusters: pl.DataFrame) -> None:
        """Signatures of what this run keeps, for later runs' `against`."""
        kept = clusters.filter(pl.col("_reason").is_null()).select("id", "path")
        parts = [
            scratch.read("signatures", p, {"node": pl.String}) for p in range(scratch.partitions)
        ]
        sigs = pl.concat(parts).rename({"node": "id"})
        kept = kept.join(sigs, on="id").sort("id")
        write_index(self.config.write_index, kept["id"].to_list(), kept["path"].to_list(),
                    kept["signature"].to_numpy(), self.config)  # fmt: skip
