"""Near-dedup as file-based phases that an engine runs in parallel, partition by partition:

    signatures -> candidates -> roots -> texts -> verify -> components (star rounds)

Every phase writes Parquet parts under a scratch folder (a path or an fsspec URL),
partitioned by a hash of the key the next phase groups or joins on, so a task holds one
partition and never the corpus. A phase records this run's key when it finishes and is
not redone after a crash. The signatures themselves are computed before, once per input
part (`SignatureRows`, the stage's part summaries), and the first phase only files them.
The phase functions are minhash.py's; the engine only decides where they run.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from fsspec.core import url_to_fs

from curation.dedup.config import DedupConfig
from curation.dedup.minhash import (
    band_hashes,
    band_rows,
    both_ways,
    bucket_links,
    large_star,
    normalize,
    permutations,
    shingle_hashes,
    signatures,
    small_star,
    verify,
)
from curation.engines import BatchFunction
from curation.errors import StageError
from curation.filters import compared_text
from curation.runner import StageContext
from curation.schema import RECORD_SCHEMA

# after PII when that stage ran; a pair's instruction with its code (curation.filters)
TEXT = compared_text(pl.coalesce("content_clean", "content"))
VERIFY_CHUNK = 5000  # candidate pairs whose texts are held at once by exact verification
MAX_ROUNDS = 64  # star rounds grow with log^2 of the longest chain; 64 is never reached


@dataclass(frozen=True)
class Scratch:
    """This run's work files: `<url>/<folder>/p=<partition>/<part>.parquet`."""

    url: str
    partitions: int

    @property
    def fs(self) -> Any:
        return url_to_fs(self.url)[0]

    def path(self, *parts: str) -> str:
        return "/".join([self.url.rstrip("/"), *parts])

    def write(self, frame: pl.DataFrame, folder: str, key: str, name: str) -> None:
        """Write `frame` split by the hash of column `key` into the folder's partitions."""
        with_partition = frame.with_columns(_p=pl.col(key).hash(seed=0) % self.partitions)
        self.write_to(with_partition, folder, "_p", name)

    def write_to(self, frame: pl.DataFrame, folder: str, column: str, name: str) -> None:
        """Write `frame` into the partitions its integer column `column` names."""
        for (partition,), part in frame.partition_by(column, as_dict=True).items():
            self._write_file(
                part.drop(column), self.path(folder, f"p={partition}", f"{name}.parquet")
            )

    def _write_file(self, frame: pl.DataFrame, path: str) -> None:
        fs = self.fs
        fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        with fs.open(path + ".tmp", "wb") as f:
            frame.write_parquet(f)
        fs.mv(path + ".tmp", path)  # a torn part is never read as a whole one

    def read(self, folder: str, partition: int, schema: dict[str, Any]) -> pl.DataFrame:
        """Every part of one partition of a folder (empty, with `schema`, if none)."""
        fs = self.fs
        files = sorted(fs.glob(self.path(folder, f"p={partition}", "*.parquet")))
        frames = [pl.read_parquet(fs.open(f, "rb")) for f in files]
        return pl.concat(frames) if frames else pl.DataFrame(schema=schema)

    def phase(self, name: str, key: str, work: Callable[[], Any],
              writes: tuple[str, ...] = ()) -> Any:  # fmt: skip
        """`work()`'s result, from the phase's marker when it already ran under this key.
        `writes` are the folders it fills (default: the one named like the phase)."""
        fs = self.fs
        marker = self.path("_done", f"{name}.json")
        if fs.exists(marker):
            done = json.loads(fs.cat_file(marker))
            if done["key"] == key:
                return done["result"]
        for folder in writes or (name,):
            if fs.exists(self.path(folder)):
                fs.rm(self.path(folder), recursive=True)  # a phase cut short starts over
        result = work()
        fs.makedirs(self.path("_done"), exist_ok=True)
        fs.pipe_file(marker, json.dumps({"key": key, "result": result}).encode())
        return result

    def remove(self) -> None:
        if self.fs.exists(self.url):
            self.fs.rm(self.url, recursive=True)


def write_signatures(scratch: Scratch, nodes: pl.Series, sigs: np.ndarray,
                     config: DedupConfig) -> None:  # fmt: skip
    """A part of signatures (partitioned by node) and of band rows (by bucket)."""
    name = hashlib.blake2b("\n".join(nodes).encode(), digest_size=12).hexdigest()
    nodes = nodes.rename("node")
    scratch.write(pl.DataFrame([nodes, pl.Series("signature", sigs)]), "signatures", "node", name)
    bands = band_rows(nodes, band_hashes(sigs, *config.lsh()))
    scratch.write(bands, "bands", "bucket", name)


# A record's signature and what picks its cluster's representative: an input part's summary
SUMMARY_FIELDS = ("id", "source", "path", "size_bytes", "created_at")


def summary_schema(config: DedupConfig) -> dict[str, pl.DataType]:
    """An input part's summary: SUMMARY_FIELDS, the signature, and the error of a record
    whose text raised (which has no signature)."""
    return {**{name: RECORD_SCHEMA[name] for name in SUMMARY_FIELDS},
            "signature": pl.Array(pl.UInt32, config.num_perm),
            "error_type": pl.String, "error": pl.String}  # fmt: skip


class SignatureRows(BatchFunction):
    """Per record of a batch: its MinHash signature, with SUMMARY_FIELDS."""

    def __init__(self, config: DedupConfig) -> None:
        self.config = config
        self.perms: tuple[np.ndarray, np.ndarray] | None = None

    def setup(self) -> None:
        self.perms = permutations(self.config)

    def __call__(self, batch: pl.DataFrame) -> pl.DataFrame:
        assert self.perms is not None, "SignatureRows used before setup()"
        texts = batch.select(text=TEXT, language="language")
        hashes = [
            shingle_hashes(normalize(text, self.config, language), self.config)
            for text, language in texts.iter_rows()
        ]
        sigs = signatures(hashes, *self.perms)
        return batch.select(SUMMARY_FIELDS).with_columns(
            signature=pl.Series(sigs, dtype=pl.Array(pl.UInt32, self.config.num_perm))
        )


def signatures_task(scratch: Scratch, config: DedupConfig, summary: Path) -> int:
    """The signatures of one input part's summary as scratch parts."""
    rows = pl.read_parquet(summary, columns=["id", "signature"]).drop_nulls("signature")
    write_signatures(scratch, rows["id"], rows["signature"].to_numpy(), config)
    return rows.height


NODE_PAIRS = {"doc": pl.String, "root": pl.String}
EDGES = {"u": pl.String, "v": pl.String}


def fingerprint(edges: pl.DataFrame) -> list[int]:
    """[count, hash sum] of an edge set: equal sets, equal fingerprints, in any partitioning."""
    hashes = edges.select(pl.struct("u", "v").hash(seed=0) % (1 << 32)).to_series()
    return [edges.height, int(hashes.sum())]


def candidates_task(scratch: Scratch, partition: int) -> int:
    """LSH buckets of one band partition -> (doc, root) pairs, partitioned by root."""
    rows = scratch.read("bands", partition, {"band": pl.UInt16, "bucket": pl.UInt64,
                                             "node": pl.String})  # fmt: skip
    pairs = bucket_links(rows)
    scratch.write(pairs, "candidates", "root", f"from-{partition}")
    return pairs.height


def roots_task(scratch: Scratch, partition: int) -> int:
    """Distinct candidate pairs of one root partition, with the root's signature attached,
    re-partitioned by doc (a shuffle join: each signature is read by one task); and where
    each of their nodes' texts is wanted (`wanted`: node, and the doc partition `at`)."""
    pairs = scratch.read("candidates", partition, NODE_PAIRS).unique()
    if pairs.is_empty():
        return 0
    sigs = scratch.read("signatures", partition, {"node": pl.String})
    joined = pairs.join(sigs.rename({"node": "root", "signature": "root_signature"}), on="root")
    scratch.write(joined, "pairs", "doc", f"from-{partition}")
    at = pl.col("doc").hash(seed=0) % scratch.partitions  # Scratch.write's partition of doc
    wanted = pl.concat([pairs.select(node="doc", at=at), pairs.select(node="root", at=at)])
    scratch.write(wanted.unique(), "wanted", "node", f"from-{partition}")
    return pairs.height


class TextShuffle(BatchFunction):
    """The texts of a batch of records that candidate pairs need, written to the doc
    partitions that verify them: exact verification then reads its partition's texts once,
    instead of scanning the stage for each chunk of pairs."""

    def __init__(self, scratch: Scratch) -> None:
        self.scratch = scratch
        self.wanted: pl.DataFrame | None = None

    def setup(self) -> None:
        # nodes of candidate pairs only: a share of the records, and no text
        schema = {"node": pl.String, "at": pl.UInt64}
        self.wanted = pl.concat(
            [self.scratch.read("wanted", p, schema) for p in range(self.scratch.partitions)]
        ).unique()  # a node two root partitions want in one doc partition is written once

    def __call__(self, batch: pl.DataFrame) -> pl.DataFrame:
        assert self.wanted is not None, "TextShuffle used before setup()"
        texts = batch.select(node="id", text=TEXT, language="language").join(self.wanted, on="node")
        if texts.height:
            name = hashlib.blake2b("\n".join(batch["id"]).encode(), digest_size=12).hexdigest()
            self.scratch.write_to(texts, "texts", "at", name)
        return pl.DataFrame({"rows": [texts.height]})


def verify_task(scratch: Scratch, config: DedupConfig, partition: int) -> list[int]:
    """Pairs of one doc partition that reach the threshold, as the first star round's
    edges (both ways, by node). Returns the verified edges' fingerprint."""
    pairs = scratch.read("pairs", partition, NODE_PAIRS)
    sigs = scratch.read("signatures", partition, {"node": pl.String})
    if not pairs.is_empty():
        pairs = pairs.join(sigs.rename({"node": "doc", "signature": "doc_signature"}), on="doc")
        pairs = pairs.sort("doc", "root")
        verified = _verified(pairs, config, scratch, partition)
    else:
        verified = pl.DataFrame(schema=NODE_PAIRS)
    edges = verified.select(u="doc", v="root")
    scratch.write(both_ways(edges), "edges-0", "u", f"from-{partition}")
    return fingerprint(edges)


def _verified(
    pairs: pl.DataFrame, config: DedupConfig, scratch: Scratch, partition: int
) -> pl.DataFrame:
    """minhash.verify over this partition's pairs, VERIFY_CHUNK at a time: exact
    verification holds the partition's texts and one chunk's shingle sets."""
    if config.verify == "none":
        return pairs.select("doc", "root")
    texts: dict[str, tuple[str, str | None]] = {}
    if config.verify == "exact":
        schema = {"node": pl.String, "text": pl.String, "language": pl.String}
        found = scratch.read("texts", partition, schema)
        texts = {node: (text, language) for node, text, language in found.iter_rows()}
    return pl.concat(
        _verified_chunk(chunk, config, texts) for chunk in pairs.iter_slices(VERIFY_CHUNK)
    )


def _verified_chunk(
    pairs: pl.DataFrame, config: DedupConfig, texts: dict[str, tuple[str, str | None]]
) -> pl.DataFrame:
    """The pairs that reach the threshold, their nodes numbered locally for minhash.verify
    (index entries have no text: their pairs fall back to the signature estimate)."""
    n = pairs.height
    numbered = pl.DataFrame({"doc": np.arange(n), "root": np.arange(n, 2 * n)},
                            schema={"doc": pl.Int64, "root": pl.Int64})  # fmt: skip
    sigs = np.vstack([pairs["doc_signature"].to_numpy(), pairs["root_signature"].to_numpy()])
    hashes: dict[int, np.ndarray] = {}
    if config.verify == "exact":
        nodes = pl.concat([pairs["doc"], pairs["root"]])
        by_id = {  # a bucket's root is in many pairs: each text is hashed once
            node: shingle_hashes(normalize(texts[node][0], config, texts[node][1]), config)
            for node in nodes.unique()
            if node in texts
        }
        hashes = {i: by_id[node] for i, node in enumerate(nodes) if node in by_id}
    kept = verify(numbered, sigs, hashes, config)["doc"].to_numpy()
    return pairs.select("doc", "root")[kept]


def large_star_task(scratch: Scratch, round_: int, partition: int) -> None:
    """Large-star over one node partition; its edges go to the small-star of the round."""
    adjacent = scratch.read(f"edges-{round_}", partition, EDGES)
    scratch.write(large_star(adjacent), f"large-{round_}", "u", f"from-{partition}")


def small_star_task(scratch: Scratch, round_: int, partition: int) -> list[int]:
    """Small-star over one node partition; its edges, both ways, start the next round."""
    edges = small_star(scratch.read(f"large-{round_}", partition, EDGES))
    scratch.write(both_ways(edges), f"edges-{round_ + 1}", "u", f"from-{partition}")
    return fingerprint(edges)


def total(fingerprints: list[list[int]]) -> list[int]:
    return [sum(f[0] for f in fingerprints), sum(f[1] for f in fingerprints) % (1 << 63)]


@dataclass
class Linked:
    """What the phases found: the pair counts, and the rounds whose last edges label the
    linked nodes (see read_labels)."""

    candidates: int
    verified: int
    rounds: int
    seconds: dict[str, float]  # per phase; star rounds summed under "large" and "edges"


def cluster_phases(ctx: StageContext, scratch: Scratch, summaries: list[Path],
                   records: pl.LazyFrame, config: DedupConfig, key: str,
                   index: tuple[pl.Series, np.ndarray] | None = None) -> Linked:  # fmt: skip
    """Run every phase on the context's engine (each skipped when done under `key`).
    `summaries`: the signatures of `records`, a file per input part (see
    SignatureRows); `index`: nodes and signatures of held-out entries, clustered with them.
    """
    parts = range(scratch.partitions)
    seconds: dict[str, float] = {}

    def phase(name: str, work: Callable[[], Any], writes: tuple[str, ...] = ()) -> Any:
        start = time.perf_counter()
        result = scratch.phase(name, key, work, writes)
        step = name.split("-")[0]  # star rounds add up under "large" and "edges"
        seconds[step] = round(seconds.get(step, 0.0) + time.perf_counter() - start, 3)
        return result

    def tasks(fn: Callable[..., Any], *args: Any) -> Callable[[], list]:
        return lambda: ctx.engine.run_tasks(partial(fn, scratch, *args), parts)

    def signatures_phase() -> list[int]:
        if index is not None and len(index[0]):
            write_signatures(scratch, *index, config)
        return ctx.engine.run_tasks(partial(signatures_task, scratch, config), summaries)

    def texts_phase() -> int:
        batches = ctx.engine.map_batches(
            records, TextShuffle(scratch), batch_size=config.batch_size, kept_from=ctx.input_path
        )
        return sum(int(b["rows"].sum()) for b in batches)

    phase("signatures", signatures_phase, writes=("signatures", "bands"))
    phase("candidates", tasks(candidates_task))
    candidates = sum(phase("roots", tasks(roots_task), writes=("pairs", "wanted")))
    if config.verify == "exact" and candidates:
        phase("texts", texts_phase)
    edges = total(phase("verify", tasks(verify_task, config), writes=("edges-0",)))
    verified, round_ = edges[0], 0
    while edges[0]:
        if round_ == MAX_ROUNDS:
            raise StageError(f"dedup: connected components did not settle in {MAX_ROUNDS} rounds")
        phase(f"large-{round_}", tasks(large_star_task, round_))
        linked = total(phase(f"edges-{round_ + 1}", tasks(small_star_task, round_)))
        round_ += 1
        if linked == edges:
            break  # every component is a star around its smallest node
        edges = linked
    return Linked(candidates, verified, round_, seconds)


def read_labels(scratch: Scratch, rounds: int) -> pl.DataFrame:
    """(node, label) of every linked node, from the edges of the phases' last round."""
    parts = range(scratch.partitions)
    edges = pl.concat([scratch.read(f"edges-{rounds}", part, EDGES) for part in parts])
    return edges.filter(pl.col("u") > pl.col("v")).select(node="u", label="v")
