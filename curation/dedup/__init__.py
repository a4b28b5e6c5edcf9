"""Near-dedup stage: MinHash (datasketch's affine32 scheme, vectorised) + LSH banding in
Polars + verified connected components; cross-run and held-out indexes.

The config and the stage class import without the `[dedup]` extra (numpy, fsspec,
datasketch) and the stage says so when it is built; in-memory clustering of a list of
texts (`near_duplicate_clusters`, `scan_clusters`) is in `curation.dedup.minhash`.
"""

from curation.dedup.config import DedupConfig
from curation.dedup.stage import DedupStage, check_dependencies

__all__ = ["DedupConfig", "DedupStage", "check_dependencies"]
