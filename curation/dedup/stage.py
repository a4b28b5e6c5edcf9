"""The dedup stage: cluster near-duplicates, keep one representative per cluster."""

from __future__ import annotations

import importlib.util
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import polars as pl

from curation.dedup.config import DedupConfig
from curation.dedup.index import (
    INDEX_PREFIX,
    SIGNATURE_SETTINGS,
    index_nodes,
    read_index,
    write_index,
)
from curation.engines import BatchFunction, Engine
from curation.engines.base import mapped_with_errors, set_aside_errors
from curation.errors import MissingDependency
from curation.parts import kept, record_batches
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


@dataclass(frozen=True)
class ClusterJob:
    """What the cluster frame is built from: the phases' scratch and last round, the input
    parts' summaries, and the records the plan set aside."""

    scratch: Scratch
    rounds: int
    summaries: list[Path]
    set_aside: frozenset[str]


# A plan's rows for the records of a part that are in a cluster with others
PLANNED = {"id": pl.String, "_cluster_id": pl.String, "_cluster_size": pl.Int64,
           "_is_rep": pl.Boolean, "_reason": pl.String}  # fmt: skip


class DedupStage(Stage):
    """Near-duplicate clusters over the text that later stages will see.

    A planned per-part stage: each input part's summary is its records' signatures (kept
    with the part, so a grown corpus signs only its new parts); the plan runs the clustering
    phases over them on the context's engine (`curation.dedup.phases`) and gives each part
    the cluster columns of its records that have near-duplicates, which the part joins on a
    worker. The driver holds no record: only the ids of those with near-duplicates (and,
    with `write_index`, the kept records' signatures).
    """

    name: ClassVar[str] = "dedup"
    per_part: ClassVar[bool] = True
    planned: ClassVar[bool] = True

    def __init__(self, config: DedupConfig) -> None:
        check_dependencies()
        self.config = config
        self.indexes = [read_index(path, config) for path in config.against]
        self._signatures: BatchFunction | None = None

    def __getstate__(self) -> dict[str, Any]:
        # Its tasks (signatures, joins) read no index: only the plan, in the driver, does, and
        # an index of an earlier release would travel in every task.
        return {**self.__dict__, "indexes": [], "_signatures": None}

    def versions(self) -> dict[str, str]:
        return {"datasketch": package_version("datasketch"), "numpy": package_version("numpy")}

    def summary_config(self) -> dict[str, Any]:
        return {name: getattr(self.config, name) for name in SIGNATURE_SETTINGS}

    def summarize(self, records: pl.LazyFrame, source: Path, engine: Engine) -> pl.DataFrame:
        """The part's signatures (`SignatureRows`, on `engine`); a record whose text raises
        is a row with its error and no signature, which the plan sets aside (the runner
        leaves it out of its part)."""
        from curation.dedup.phases import summary_schema  # numpy: [dedup]

        return mapped_with_errors(
            engine, records, self._signer(), summary_schema(self.config),
            batch_size=self.config.batch_size, kept_from=source,
        )  # fmt: skip

    def _signer(self) -> BatchFunction:
        """One SignatureRows for every part, so the engine keeps its workers between parts."""
        from curation.dedup.phases import SignatureRows  # numpy: [dedup]

        if self._signatures is None:
            self._signatures = SignatureRows(self.config)
        return self._signatures

    def plan(self, summaries: list[Path], ctx: StageContext) -> list[pl.DataFrame]:
        """Per input part: the PLANNED columns of its records that have near-duplicates."""
        return self._clusters(summaries, kept(ctx.input_path), ctx)

    def run(self, records: pl.LazyFrame | None, ctx: StageContext) -> Iterator[pl.DataFrame]:
        """The part's records with their cluster columns (a record without near-duplicates
        represents itself). Run on its own (no plan), its input is the one part."""
        assert records is not None, "dedup reads the records of the stage before"
        clusters = ctx.plan if ctx.plan is not None else self._plan_alone(records, ctx)
        for batch in record_batches(records, self.config.batch_size, ctx.input_path):
            yield (
                batch.join(clusters, on="id", how="left", maintain_order="left")
                .with_columns(
                    cluster_id=pl.coalesce("_cluster_id", "id"),
                    cluster_size=pl.col("_cluster_size").fill_null(1),
                    is_cluster_rep=pl.col("_is_rep").fill_null(True),
                    filter_reason=pl.col("_reason"),
                )
                .drop("_cluster_id", "_cluster_size", "_is_rep", "_reason")
            )

    def _plan_alone(self, records: pl.LazyFrame, ctx: StageContext) -> pl.DataFrame:
        """The plan of a run over `records` alone, as the one part."""
        with tempfile.TemporaryDirectory(prefix="codecurate-dedup-") as folder:
            summary = Path(folder) / "summary.parquet"
            self.summarize(records, ctx.input_path, ctx.engine).write_parquet(summary)
            return self._clusters([summary], records, ctx)[0]

    def _clusters(
        self, summaries: list[Path], records: pl.LazyFrame, ctx: StageContext
    ) -> list[pl.DataFrame]:
        """Cluster the summaries' signatures (and the `against` indexes') into each part's
        plan, with the counts for the manifest in `ctx.extra`; the records whose signature
        raised are set aside in `ctx`."""
        from curation.dedup.phases import Scratch, cluster_phases  # numpy, fsspec: [dedup]

        config = self.config
        set_aside_errors(pl.scan_parquet(summaries), ctx.record_failed)
        total = pl.scan_parquet(summaries).select(pl.len()).collect().item()
        partitions = config.partitions or max(1, -(-total // ROWS_PER_PARTITION))
        scratch = Scratch(self._scratch_url(ctx), partitions)
        linked = cluster_phases(
            ctx, scratch, summaries, records, config, key=hash_json([ctx.run_key, partitions]),
            index=index_nodes(self.indexes),
        )  # fmt: skip
        # on a worker: reading the members out of every summary is the plan's largest
        # allocation, and what comes back is only the records with near-duplicates
        job = ClusterJob(scratch, linked.rounds, summaries, frozenset(ctx.failed_ids))
        [clusters] = ctx.engine.run_tasks(self._cluster_table, [job])
        ctx.extra.update(self._summary(clusters, linked.candidates, linked.verified))
        ctx.extra["partitions"], ctx.extra["star_rounds"] = partitions, linked.rounds
        ctx.extra["phase_seconds"] = linked.seconds
        if config.write_index is not None:
            self._write_index(summaries, clusters)
        scratch.remove()  # the parts are the resume point from here on
        in_part = clusters.partition_by("part", as_dict=True)
        none = clusters.clear()
        return [
            in_part.get((index,), none).select(list(PLANNED)) for index in range(len(summaries))
        ]

    def _scratch_url(self, ctx: StageContext) -> str:
        """`<scratch or workdir>/<tag>.work`; a temporary folder for a stage run outside a
        workdir (removed with the rest of the scratch when the stage is done)."""
        root = ctx.engine.scratch or ctx.workdir
        if root is None:
            return tempfile.mkdtemp(prefix=f"codecurate-{ctx.tag}-")
        return f"{str(root).rstrip('/')}/{ctx.tag}.work"

    def _cluster_table(self, job: ClusterJob) -> pl.DataFrame:
        """The cluster frame of the phases' labels (a task of the plan's engine)."""
        from curation.dedup.phases import read_labels  # numpy, fsspec: [dedup]

        labels = read_labels(job.scratch, job.rounds)
        return self._cluster_frame(self._members(job.summaries, labels, job.set_aside), labels)

    def _members(
        self, summaries: list[Path], labels: pl.DataFrame, set_aside: frozenset[str]
    ) -> pl.DataFrame:
        """What picks a representative, of the records in a cluster with others (the
        linked nodes, and the labels that name their clusters), with their part's index;
        records the plan set aside (they leave the output) are no members."""
        linked = pl.concat([labels["node"], labels["label"]]).unique()
        left_out = pl.Series(sorted(set_aside), dtype=pl.String)
        linked = linked.filter(~linked.is_in(left_out.implode()))
        # one summary at a time, filtered as it is read: a semi-join held every summary's
        # rows at once (100 MB of the driver's peak at a million records), one lazy query
        # over them all their id and path columns (33 MB, against 20 MB this way)
        wanted = pl.col("id").is_in(linked.implode())
        return pl.concat(
            pl.scan_parquet(file)
            .select("id", "path", "size_bytes", "created_at")
            .filter(wanted)
            .with_columns(part=pl.lit(index, pl.Int32))
            .collect()
            for index, file in enumerate(summaries)
        )

    def _cluster_frame(self, members: pl.DataFrame, labels: pl.DataFrame) -> pl.DataFrame:
        """Per record of a cluster: cluster id, size, whether it represents it, the drop
        reason, and the part it is in.

        A cluster's label is its smallest node, a record whenever it holds one (index nodes
        sort last). A cluster that holds an index entry has no representative here: its
        records are already in that index.
        """
        nodes_here = members.select(node="id").join(labels, on="node", how="left")
        nodes_here = nodes_here.with_columns(label=pl.col("label").fill_null(pl.col("node")))
        held_out = labels.filter(pl.col("node").str.starts_with(INDEX_PREFIX))
        nodes = pl.concat([
            nodes_here.with_columns(index=pl.lit(None, pl.String)),
            held_out.with_columns(index=pl.col("node").str.slice(1).str.split("/").list.first()),
        ])  # fmt: skip
        per_cluster = nodes.group_by("label").agg(
            _cluster_size=pl.len().cast(pl.Int64), index=pl.col("index").min()
        )
        order, descending = REPRESENTATIVE_ORDER[self.config.representative]
        ranked = (
            nodes_here.join(per_cluster, on="label")
            .join(members, left_on="node", right_on="id")
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
            "id", "path", "part", "_cluster_id", "_cluster_size", "label",
            _is_rep=is_rep, _reason=reason,
        ).sort("id")  # fmt: skip

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

    def _write_index(self, summaries: list[Path], clusters: pl.DataFrame) -> None:
        """Signatures of what this run keeps, for later runs' `against`."""
        dropped = clusters.filter(pl.col("_reason").is_not_null()).select("id")
        kept_rows = (
            pl.scan_parquet(summaries)
            .filter(pl.col("signature").is_not_null())
            .join(dropped.lazy(), on="id", how="anti")
            .select("id", "path", "signature")
            .sort("id")
            .collect()
        )
        write_index(self.config.write_index, kept_rows["id"].to_list(),
                    kept_rows["path"].to_list(), kept_rows["signature"].to_numpy(),
                    self.config)  # fmt: skip
