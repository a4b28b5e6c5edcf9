"""`[dedup]` settings, with LSH bands and rows derived once from the threshold."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from curation.errors import ConfigError, MissingDependency


class DedupConfig(BaseModel):
    """Near-duplicate detection: MinHash over shingles, LSH banding, verified clusters."""

    model_config = ConfigDict(extra="forbid")
    threshold: float = Field(default=0.7, gt=0, lt=1)  # Jaccard similarity of duplicates
    num_perm: int = Field(default=256, ge=16, le=1024)
    shingle: Literal["char", "word"] = "char"
    ngram: int = Field(default=5, ge=1, le=8)  # char n-grams hash exactly up to 8 bytes
    normalize_identifiers: bool = False  # catch renamed copies, at the price of precision
    # Leading licence/copyright blocks are boilerplate: counted, a shared Apache header
    # chained ~50 unrelated Arrow headers into one cluster. Only the header goes by default,
    # not every comment: on 2,333 real files (benchmarks/dedup.py) 140 of 140 drops were
    # true near-duplicates, 143 of 145 without comments, 143 of 199 counting the header.
    strip_license_header: bool = True
    strip_comments: bool = False  # compare code without any of its comments
    # LSH is tuned to miss few pairs; the verify step then removes its false positives.
    false_negative_weight: float = Field(default=0.9, gt=0, lt=1)
    verify: Literal["exact", "estimate", "none"] = "exact"
    representative: Literal["longest", "shortest", "newest", "oldest", "first"] = "longest"
    drop_duplicates: bool = True  # mark members `near_duplicate`; false keeps them, marked
    seed: int = 1
    batch_size: int = Field(default=2000, gt=0)
    # Partitions of each intermediate phase (the unit of parallel work and of memory per
    # task); 0 = one per 25,000 records. The clusters do not depend on it.
    partitions: int = Field(default=0, ge=0)
    # Signature indexes of datasets held elsewhere (earlier exports, held-out evals): a record
    # near one of them is dropped as `near_duplicate_of:<index name>` (decontamination).
    against: list[Path] = Field(default_factory=list)
    # Where to write this run's kept signatures, for later runs to dedup against.
    write_index: Path | None = None
    # LSH banding; 0 = derived from threshold, num_perm and the weights (`lsh()`)
    bands: int = Field(default=0, ge=0)
    rows: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _check(self) -> DedupConfig:
        if self.shingle == "word" and self.normalize_identifiers:
            raise ConfigError("dedup.normalize_identifiers applies to shingle = 'char' only")
        if bool(self.bands) != bool(self.rows):
            raise ConfigError("dedup: set both bands and rows, or neither")
        if self.bands * self.rows > self.num_perm:
            raise ConfigError(f"dedup: bands * rows must be <= num_perm ({self.num_perm})")
        return self

    def lsh(self) -> tuple[int, int]:
        """(bands, rows): as set, or datasketch's optimum for the threshold. Derived when
        first asked for, not on load: datasketch pulls in scipy, and loading the config is
        every command's first step (`curate status` included)."""
        if self.bands:
            return self.bands, self.rows
        return lsh_params(self.threshold, self.num_perm, self.false_negative_weight)


@functools.cache
def lsh_params(threshold: float, num_perm: int, false_negative_weight: float) -> tuple[int, int]:
    """(bands, rows) minimising weighted false positives and negatives, as datasketch does."""
    try:
        from datasketch import MinHashLSH
    except ImportError as e:
        raise MissingDependency("datasketch", "dedup", "Near-dedup") from e
    weights = (1 - false_negative_weight, false_negative_weight)
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm, weights=weights)
    return lsh.b, lsh.r
