"""Near-duplicate detection, phase by phase:

    normalize -> shingle -> signature -> band -> candidates -> verify -> cluster -> representative

`near_duplicate_clusters` calls them in that order on one machine, each under a timer;
the dedup stage calls the same functions partition by partition (`curation.dedup.phases`).
Signatures follow datasketch's `affine32` MinHash scheme bit for bit (its permutations, its
update), computed for many documents at once with numpy instead of one `update` per shingle.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from curation.code_regions import strip_comments, strip_license_header
from curation.dedup.config import DedupConfig

_WHITESPACE = re.compile(r"\s+")
_IDENTIFIER = re.compile(r"\b[A-Za-z_][A-Za-z0-9_]*\b")
_WORD = re.compile(r"\w+|[^\w\s]")
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def normalize(text: str, config: DedupConfig, language: str | None = None) -> str:
    """Whitespace runs to one space (re-indented copies match); for code (by its language)
    without its licence header, optionally without comments; optionally with every
    identifier as `v`."""
    if config.strip_license_header:
        text = strip_license_header(text, language)
    if config.strip_comments:
        text = strip_comments(text, language)
    text = _WHITESPACE.sub(" ", text).strip()
    if config.normalize_identifiers:
        text = _IDENTIFIER.sub("v", text)
    return text


# MurmurHash3 finalizer constants per width: (shift1, multiplier1, shift2, multiplier2, shift3)
_FMIX = {
    64: tuple(map(np.uint64, (33, 0xFF51AFD7ED558CCD, 33, 0xC4CEB9FE1A85EC53, 33))),
    32: tuple(map(np.uint32, (16, 0x85EBCA6B, 13, 0xC2B2AE35, 16))),
}


def _fmix(h: np.ndarray, width: int) -> np.ndarray:
    """MurmurHash3's finalizer, the avalanching bijection datasketch's affine32 scheme
    pre-mixes with (width 32); width 64 mixes band values into bucket keys."""
    s1, m1, s2, m2, s3 = _FMIX[width]
    h = (h ^ (h >> s1)) * m1
    h = (h ^ (h >> s2)) * m2
    return h ^ (h >> s3)


def shingle_hashes(text: str, config: DedupConfig) -> np.ndarray:
    """The distinct 32-bit hashes of a normalized text's shingles.

    Character n-grams (n <= 8 bytes) are packed into one integer each, so they hash with
    a few vector operations and no per-shingle Python (datasketch's sha1 per shingle was
    most of its time); word n-grams go through blake2b.
    """
    if config.shingle == "word":
        words = _WORD.findall(text)
        grams = [
            " ".join(words[i : i + config.ngram])
            for i in range(max(1, len(words) - config.ngram + 1))
        ]
        digests = b"".join(hashlib.blake2b(g.encode(), digest_size=4).digest() for g in grams)
        return np.unique(np.frombuffer(digests, dtype=np.uint32))
    data = np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.uint64)
    n = min(config.ngram, len(data))
    if n == 0:
        return np.zeros(1, dtype=np.uint32)
    count = len(data) - n + 1
    packed = data[:count].copy()
    for k in range(1, n):
        packed |= data[k : k + count] << np.uint64(8 * k)
    # Multiplicative hashing: the top 32 bits of packed * golden ratio. datasketch's
    # affine32 scheme pre-mixes with fmix32 anyway, so two operations suffice here.
    return np.unique(((packed * _GOLDEN) >> np.uint64(32)).astype(np.uint32))


def permutations(config: DedupConfig) -> tuple[np.ndarray, np.ndarray]:
    """datasketch's own affine32 permutation parameters for this num_perm and seed."""
    from datasketch import MinHash

    a, b = MinHash(num_perm=config.num_perm, seed=config.seed, scheme="affine32").permutations
    return a.astype(np.uint32), b.astype(np.uint32)


def signatures(hashes: Sequence[np.ndarray], a: np.ndarray, b: np.ndarray,
               block: int = 8192) -> np.ndarray:  # fmt: skip
    """MinHash signatures (docs x num_perm, uint32) of many shingle-hash sets at once.

    The same arithmetic as datasketch's `MinHash.update_batch` (affine32): pre-mix, then
    a * h + b modulo 2^32, minimum per permutation. The shingles of all docs are walked in
    blocks small enough for the CPU cache (8K shingles x num_perm measured fastest, 20x
    one big temporary); `reduceat` takes the minimum per doc inside a block and docs that
    span blocks are merged with `minimum`.
    """
    out = np.full((len(hashes), len(a)), np.iinfo(np.uint32).max, dtype=np.uint32)
    if not len(hashes):
        return out
    mixed = _fmix(np.concatenate(hashes), 32)
    starts = np.concatenate(([0], np.cumsum([len(h) for h in hashes])[:-1]))
    buffer = np.empty((len(a), block), dtype=np.uint32)
    for begin in range(0, len(mixed), block):
        end = min(begin + block, len(mixed))
        permuted = buffer[:, : end - begin]
        np.multiply(a[:, None], mixed[None, begin:end], out=permuted)
        np.add(permuted, b[:, None], out=permuted)
        first = int(np.searchsorted(starts, begin, side="right")) - 1
        last = int(np.searchsorted(starts, end - 1, side="right")) - 1
        segments = np.maximum(starts[first : last + 1], begin) - begin
        block_min = np.minimum.reduceat(permuted, segments, axis=1).T
        np.minimum(out[first : last + 1], block_min, out=out[first : last + 1])
    return out


def band_hashes(sigs: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """One 64-bit hash per (doc, band) of the band's `rows` signature values."""
    out = np.zeros((len(sigs), bands), dtype=np.uint64)
    for band in range(bands):
        h = np.full(len(sigs), np.uint64(band), dtype=np.uint64)
        for value in sigs[:, band * rows : (band + 1) * rows].T.astype(np.uint64):
            h = _fmix(h ^ value, 64) + _GOLDEN
        out[:, band] = h
    return out


def band_rows(nodes: pl.Series, bands: np.ndarray) -> pl.DataFrame:
    """(band, bucket, node) rows: one per node and band, the shape LSH buckets group on."""
    count, per_node = bands.shape
    return pl.DataFrame(
        {
            "band": np.tile(np.arange(per_node, dtype=np.uint16), count),
            "bucket": bands.reshape(-1),
            "node": nodes.gather(np.repeat(np.arange(count), per_node)),
        }
    )


def bucket_links(rows: pl.DataFrame) -> pl.DataFrame:
    """(doc, root) candidate pairs: each node of an LSH bucket linked to the bucket's smallest.

    Linking to the smallest member, not every pair in a bucket, keeps this linear in the
    bucket size; the components come out the same. Every row of a bucket must be in `rows`.
    """
    linked = rows.with_columns(root=pl.col("node").min().over("band", "bucket"))
    return linked.filter(pl.col("node") != pl.col("root")).select(doc="node", root="root").unique()


def estimated_jaccard(sigs: np.ndarray, pairs: pl.DataFrame) -> np.ndarray:
    """Share of equal signature values per pair: the MinHash estimate of Jaccard."""
    doc, root = pairs["doc"].to_numpy(), pairs["root"].to_numpy()
    return (sigs[doc] == sigs[root]).mean(axis=1)


def exact_jaccard(hashes: Mapping[int, np.ndarray], pairs: pl.DataFrame) -> np.ndarray:
    """Jaccard of the shingle-hash sets per pair."""
    out = np.empty(pairs.height)
    for i, (d, r) in enumerate(pairs.iter_rows()):
        common = len(np.intersect1d(hashes[d], hashes[r], assume_unique=True))
        out[i] = common / (len(hashes[d]) + len(hashes[r]) - common)
    return out


def both_ways(edges: pl.DataFrame) -> pl.DataFrame:
    """(u, v) rows with each edge in both directions: every node's full neighbourhood."""
    return pl.concat([edges.select("u", "v"), edges.select(u="v", v="u")])


def large_star(adjacent: pl.DataFrame) -> pl.DataFrame:
    """Large-star step: each larger neighbour of u linked to the smallest node of u's
    neighbourhood (u included). `adjacent` holds every neighbour of each of its u."""
    low = pl.min_horizontal(pl.col("v").min().over("u"), pl.col("u"))
    linked = adjacent.with_columns(low=low).filter(pl.col("v") > pl.col("u"))
    return linked.select(u="v", v="low").unique()


def small_star(edges: pl.DataFrame) -> pl.DataFrame:
    """Small-star step over (u, v) edges with v < u, all of each u's: u and each of its
    smaller neighbours linked to the smallest of them."""
    linked = edges.with_columns(low=pl.col("v").min().over("u"))
    ends = pl.concat([linked.select(node="v", low="low"), linked.select(node="u", low="low")])
    return ends.filter(pl.col("node") != pl.col("low")).select(u="node", v="low").unique()


def star_components(edges: pl.DataFrame) -> pl.DataFrame:
    """(node, label) per linked node, the label being its component's smallest node.

    Alternating large-star and small-star steps (Kiveris et al., 2014) until the edges stop
    changing, when every component is a star around its smallest node: the algorithm the
    dedup stage runs partition by partition on an engine, here on one partition.
    """
    edges = edges.select(u="doc", v="root")  # doc > root: bucket_links' orientation
    while True:
        linked = small_star(large_star(both_ways(edges)))
        if linked.sort("u", "v").equals(edges.sort("u", "v")):
            return edges.select(node="u", label="v")
        edges = linked


@dataclass
class Clusters:
    """Per doc: its component label (a doc index) and shingle hashes; phase timings."""

    labels: np.ndarray
    hashes: list[np.ndarray]
    pairs: int
    verified_pairs: int
    seconds: dict[str, float] = field(default_factory=dict)


def near_duplicate_clusters(texts: Sequence[str], config: DedupConfig,
                            languages: Sequence[str | None] | None = None) -> Clusters:  # fmt: skip
    """Cluster texts in memory (the stage does the same in batches, keeping only signatures)."""
    seconds: dict[str, float] = {}

    def timed(phase: str, fn, *args):
        start = time.perf_counter()
        result = fn(*args)
        seconds[phase] = seconds.get(phase, 0.0) + time.perf_counter() - start
        return result

    languages = languages or [None] * len(texts)
    normalized = timed(
        "normalize",
        lambda: [normalize(t, config, lang) for t, lang in zip(texts, languages, strict=True)],
    )
    hashes = timed("shingle", lambda: [shingle_hashes(t, config) for t in normalized])
    a, b = permutations(config)
    sigs = timed("signature", signatures, hashes, a, b)
    bands = timed("band", band_hashes, sigs, *config.lsh())
    docs = pl.Series("node", np.arange(len(sigs), dtype=np.int64))
    pairs = timed("candidates", lambda: bucket_links(band_rows(docs, bands)))
    verified = timed("verify", verify, pairs, sigs, dict(enumerate(hashes)), config)
    linked = timed("cluster", star_components, verified)
    labels = np.arange(len(sigs), dtype=np.int64)
    labels[linked["node"].to_numpy()] = linked["label"].to_numpy()
    return Clusters(labels, hashes, pairs.height, verified.height, seconds)


def verify(pairs: pl.DataFrame, sigs: np.ndarray, hashes: Mapping[int, np.ndarray],
           config: DedupConfig) -> pl.DataFrame:  # fmt: skip
    """Candidate pairs whose similarity reaches the threshold.

    `exact` compares shingle sets where both docs have them in `hashes` (index entries
    carry only signatures, so their pairs fall back to the estimate).
    """
    if config.verify == "none" or pairs.is_empty():
        return pairs
    similarity = estimated_jaccard(sigs, pairs)
    if config.verify == "exact":
        known = list(hashes)
        mask = np.isin(pairs["doc"].to_numpy(), known) & np.isin(pairs["root"].to_numpy(), known)
        if mask.any():
            similarity[mask] = exact_jaccard(hashes, pairs.filter(pl.Series(mask)))
    return pairs.filter(pl.Series(similarity >= config.threshold))


def scan_clusters(
    names: Sequence[str],
    texts: Sequence[str],
    config: DedupConfig,
    languages: Sequence[str | None] | None = None,
) -> list[list[dict]]:
    """Clusters of 2+ near-duplicate texts, largest first; each member with its exact
    Jaccard to the cluster's first member. `languages` (None for prose) tell where comments
    are, for `strip_comments`."""
    clusters = near_duplicate_clusters(texts, config, languages)
    hashes = dict(enumerate(clusters.hashes))
    members: dict[int, list[int]] = {}
    for doc, label in enumerate(clusters.labels):
        members.setdefault(int(label), []).append(doc)
    out = []
    for label, docs in members.items():
        if len(docs) < 2:
            continue
        pairs = pl.DataFrame(
            {"doc": docs, "root": [label] * len(docs)}, schema={"doc": pl.UInt32, "root": pl.UInt32}
        )
        similarity = exact_jaccard(hashes, pairs)
        out.append(
            [
                {"path": names[d], "jaccard": round(float(j), 3)}
                for d, j in zip(docs, similarity, strict=True)
            ]
        )
    return sorted(out, key=lambda c: (-len(c), c[0]["path"]))
