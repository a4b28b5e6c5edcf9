"""Near-dedup stage: MinHash (datasketch's affine32 scheme, vectorised) + LSH banding in
Polars + verified connected components; cross-run and held-out indexes. Needs `[dedup]`."""

from curation.dedup.config import DedupConfig
from curation.dedup.minhash import Clusters, near_duplicate_clusters, scan_clusters
from curation.dedup.stage import DedupStage

__all__ = ["Clusters", "DedupConfig", "DedupStage", "near_duplicate_clusters", "scan_clusters"]
