"""Near-duplicate detection, phase by phase:

    normalize -> shingle -> signature -> band -> candidates -> verify -> cluster -> representative

`near_duplicate_clusters` calls them in that order, each under a timer. Signatures follow
datasketch's `affine32` MinHash scheme bit for bit (its permutations, its update), computed
for many documents at once with numpy instead of one `update` per shingle.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from curation.code_regions import strip_comments
from curation.dedup.config import DedupConfig

_WHITESPACE = re.compile(r"\s+")
_IDENTIFIER = re.compile(r"\b[A-Za-z_][A-Za-z0-9_]*\b")
_WORD = re.compile(r"\w+|[^\w\s]")
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def normalize(text: str, config: DedupConfig, language: str | None = None) -> str:
    """Whitespace runs to one space (re-indented copies match); optionally without
    comments (for code, by its language) and with every identifier as `v`."""
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


def candidate_pairs(bands: np.ndarray) -> pl.DataFrame:
    """(doc, root) pairs: each doc in an LSH bucket linked to the bucket's smallest doc.

    Linking to the smallest member, not every pair in a bucket, keeps this linear in the
    bucket size; the components come out the same. One band at a time bounds memory.
    """
    docs = np.arange(len(bands), dtype=np.uint32)
    parts = [pl.DataFrame(schema={"doc": pl.UInt32, "root": pl.UInt32})]
    for band in range(bands.shape[1]):
        frame = pl.DataFrame({"doc": docs, "bucket": bands[:, band]})
        linked = frame.with_columns(root=pl.col("doc").min().over("bucket"))
        parts.append(linked.filter(pl.col("doc") != pl.col("root")).select("doc", "root"))
    return pl.concat(parts).unique().sort("doc", "root")


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


def connected_components(n: int, pairs: pl.DataFrame) -> np.ndarray:
    """Component label per doc (its smallest member), by min-label propagation with
    pointer jumping: vectorised, and the same algorithm a distributed run uses."""
    labels = np.arange(n, dtype=np.int64)
    if pairs.is_empty():
        return labels
    u = pairs["doc"].to_numpy().astype(np.int64)
    v = pairs["root"].to_numpy().astype(np.int64)
    while True:
        low = np.minimum(labels[u], labels[v])
        before = labels.copy()
        np.minimum.at(labels, u, low)
        np.minimum.at(labels, v, low)
        labels = labels[labels]
        if np.array_equal(labels, before):
            return labels


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
    bands = timed("band", band_hashes, sigs, config.bands, config.rows)
    pairs = timed("candidates", candidate_pairs, bands)
    verified = timed("verify", verify, pairs, sigs, dict(enumerate(hashes)), config)
    labels = timed("cluster", connected_components, len(sigs), verified)
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
    names: Sequence[str], texts: Sequence[str], config: DedupConfig
) -> list[list[dict]]:
    """Clusters of 2+ near-duplicate texts, largest first; each member with its exact
    Jaccard to the cluster's first member."""
    clusters = near_duplicate_clusters(texts, config)
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
