"""The dedup stage: cluster near-duplicates, keep one representative per cluster."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import ClassVar

import numpy as np
import polars as pl

from curation.dedup.config import DedupConfig
from curation.dedup.index import read_index, write_index
from curation.dedup.minhash import (
    band_hashes,
    candidate_pairs,
    connected_components,
    normalize,
    permutations,
    shingle_hashes,
    signatures,
    verify,
)
from curation.runner import Stage, StageContext, package_version

# Which member represents its cluster: a sort order over (size_bytes, created_at, id).
REPRESENTATIVE_ORDER = {
    "longest": ([pl.col("size_bytes"), pl.col("id")], [True, False]),
    "shortest": ([pl.col("size_bytes"), pl.col("id")], [False, False]),
    "newest": ([pl.col("created_at"), pl.col("id")], [True, False]),
    "oldest": ([pl.col("created_at"), pl.col("id")], [False, False]),
    "first": ([pl.col("id")], [False]),
}

TEXT = pl.coalesce("content_clean", "content")  # after PII when that stage ran
VERIFY_CHUNK = 5000  # candidate pairs whose shingles or signatures are held at once


class DedupStage(Stage):
    """Near-duplicate clusters over the text that later stages will see.

    Only signatures (num_perm x 4 bytes per record) stay in memory; texts are read in
    batches, and again only for the candidate pairs that `exact` verification checks.
    """

    name: ClassVar[str] = "dedup"
    code: ClassVar[tuple[str, ...]] = ("curation.dedup", "curation.code_regions")

    def __init__(self, config: DedupConfig) -> None:
        self.config = config
        self.indexes = [read_index(path, config) for path in config.against]

    def versions(self) -> dict[str, str]:
        return {"datasketch": package_version("datasketch"), "numpy": package_version("numpy")}

    def run(self, records: pl.LazyFrame | None, ctx: StageContext) -> Iterator[pl.DataFrame]:
        assert records is not None, "dedup reads the records of the stage before"
        config = self.config
        ids, sigs = self._signatures(records, ctx)
        all_sigs = np.vstack([sigs, *(index.signatures for index in self.indexes)])
        pairs = candidate_pairs(band_hashes(all_sigs, config.bands, config.rows))
        verified = self._verify(records, ids, pairs, all_sigs)
        labels = connected_components(len(all_sigs), verified)
        clusters = self._cluster_frame(records, ids, labels)
        ctx.extra.update(self._summary(clusters, pairs.height, verified.height))
        if config.write_index is not None:
            self._write_index(sigs, clusters)
        clusters = clusters.drop("label", "path")
        return self._with_clusters(records, clusters)

    def _with_clusters(
        self, records: pl.LazyFrame, clusters: pl.DataFrame
    ) -> Iterator[pl.DataFrame]:
        """Records with their cluster columns, joined batch by batch so only one batch of
        content is in memory (a lazy join materialised them all)."""
        for batch in records.collect_batches(chunk_size=self.config.batch_size):
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

    def _signatures(self, records: pl.LazyFrame, ctx: StageContext) -> tuple[list[str], np.ndarray]:
        """Signatures of every record, in id order so the smallest id names its cluster."""
        a, b = permutations(self.config)
        # Sorting texts by id would hold them all in memory; sort ids and signatures after.
        frame = records.select("id", "language", text=TEXT)
        total = records.select(pl.len()).collect().item()
        ids: list[str] = []
        sigs = np.empty((total, self.config.num_perm), dtype=np.uint32)
        batches = frame.collect_batches(chunk_size=self.config.batch_size)
        for batch in ctx.track(batches, "dedup: signatures", -(-total // self.config.batch_size)):
            hashes = [
                shingle_hashes(normalize(text, self.config, language), self.config)
                for text, language in zip(batch["text"], batch["language"], strict=True)
            ]
            sigs[len(ids) : len(ids) + len(hashes)] = signatures(hashes, a, b)
            ids.extend(batch["id"].to_list())
        order = pl.Series(ids, dtype=pl.String).arg_sort().to_numpy()
        return [ids[i] for i in order], sigs[order]

    def _verify(self, records: pl.LazyFrame, ids: list[str], pairs: pl.DataFrame,
                sigs: np.ndarray) -> pl.DataFrame:  # fmt: skip
        """Verified pairs, one chunk at a time: exact verification loads that chunk's shingles,
        so memory stays bounded however many records have near-copies."""
        if self.config.verify == "none" or pairs.is_empty():
            return pairs
        kept = []
        for chunk in pairs.iter_slices(VERIFY_CHUNK):
            hashes = {}
            if self.config.verify == "exact":
                docs = np.union1d(chunk["doc"].to_numpy(), chunk["root"].to_numpy())
                hashes = self._hashes(records, ids, [int(d) for d in docs if d < len(ids)])
            kept.append(verify(chunk, sigs, hashes, self.config))
        return pl.concat(kept)

    def _hashes(
        self, records: pl.LazyFrame, ids: list[str], needed: list[int]
    ) -> dict[int, np.ndarray]:
        """Shingle hashes of the docs in candidate pairs: the only texts read twice."""
        if not needed:
            return {}
        position = {ids[i]: i for i in needed}
        wanted = records.filter(pl.col("id").is_in(list(position)))
        frame = wanted.select("id", "language", text=TEXT).collect()
        return {
            position[row_id]: shingle_hashes(normalize(text, self.config, language), self.config)
            for row_id, language, text in frame.iter_rows()
        }

    def _cluster_frame(
        self, records: pl.LazyFrame, ids: list[str], labels: np.ndarray
    ) -> pl.DataFrame:
        """Per local record: cluster id, size, whether it represents it, and the drop reason.

        Index entries follow the local records in `labels`; a cluster that holds one has
        no representative here: its records are already in that index.
        """
        index_names = [index.name for index in self.indexes for _ in index.ids]
        docs = pl.DataFrame(
            {"doc": np.arange(len(labels)), "label": labels,
             "id": ids + [i for index in self.indexes for i in index.ids],
             "index": [None] * len(ids) + index_names},
            schema_overrides={"index": pl.String, "id": pl.String},
        )  # fmt: skip
        per_cluster = docs.group_by("label").agg(
            _cluster_id=pl.col("id").sort_by("doc").first(),  # the label is its smallest doc
            _cluster_size=pl.len().cast(pl.Int64),
            index=pl.col("index").drop_nulls().first(),
        )
        order, descending = REPRESENTATIVE_ORDER[self.config.representative]
        local = (
            docs.head(len(ids))
            .drop("index")
            .join(per_cluster, on="label")
            .join(records.select("id", "path", "size_bytes", "created_at").collect(), on="id")
            .sort(order, descending=descending, nulls_last=True)
        )
        is_rep = (pl.col("id") == pl.col("id").first().over("label")) & pl.col("index").is_null()
        reason = (
            pl.when(pl.col("index").is_not_null())
            .then(pl.format("near_duplicate_of:{}", pl.col("index")))
            .when(~is_rep & pl.lit(self.config.drop_duplicates))
            .then(pl.lit("near_duplicate"))
        )
        return local.select(
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
            "bands": self.config.bands,
            "rows": self.config.rows,
            "candidate_pairs": candidates,
            "verified_pairs": verified,
            "clusters_with_duplicates": len(sizes),
            "cluster_size_histogram": {
                str(k): v for k, v in sorted(Counter(sizes.to_list()).items())
            },
            "largest_clusters": largest.rename({"_cluster_id": "cluster_id"}).to_dicts(),
        }

    def _write_index(self, sigs: np.ndarray, clusters: pl.DataFrame) -> None:
        """Signatures of what this run keeps, for later runs' `against`."""
        kept = clusters.with_row_index("row").filter(pl.col("_reason").is_null())
        rows = kept["row"].to_numpy()
        write_index(self.config.write_index, kept["id"].to_list(), kept["path"].to_list(),
                    sigs[rows], self.config)  # fmt: skip
