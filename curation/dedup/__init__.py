"""Near-dedup stage: MinHash (datasketch's affine32 scheme, vectorised) + LSH banding in
Polars + verified connected components; cross-run and held-out indexes.

The config and the stage class import without the `[dedup]` extra (numpy, fsspec,
datasketch) and the stage says so when it is built; in-memory clustering of a list of
texts (`near_duplicate_clusters`, `scan_clusters`) is in `curation.dedup.minhash`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from curation.dedup.config import DedupConfig

if TYPE_CHECKING:
    from curation.dedup.stage import DedupStage, check_dependencies

__all__ = ["DedupConfig", "DedupStage", "check_dependencies"]


def __getattr__(name: str) -> Any:
    # The stage loads pyarrow and the index code; loading a config (every command) needs
    # neither, so they are imported when first asked for.
    if name in ("DedupStage", "check_dependencies"):
        from curation.dedup import stage

        return getattr(stage, name)
    raise AttributeError(f"module 'curation.dedup' has no attribute {name!r}")
