"""Signature indexes: what earlier runs kept, or a held-out eval set, to dedup against."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from curation.dedup.config import DedupConfig
from curation.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np

# Settings that change signatures: an index is only comparable under the same ones.
SIGNATURE_SETTINGS = ("num_perm", "seed", "shingle", "ngram", "normalize_identifiers",
                      "strip_license_header", "strip_comments")  # fmt: skip
# What an index written before a setting existed was built with.
SETTINGS_BEFORE = {"strip_license_header": False}
METADATA_KEY = b"codecurate.dedup"
# Index entries are nodes "~<index>/<id>": "~" sorts after every hex record id, so the
# smallest node of a cluster, which names it, is a record of this run whenever it has one.
INDEX_PREFIX = "~"


@dataclass
class SignatureIndex:
    name: str
    ids: list[str]
    paths: list[str | None]
    signatures: np.ndarray  # (n, num_perm) uint32


def write_index(path: Path, ids: list[str], paths: list[str | None], sigs: np.ndarray,
                config: DedupConfig) -> None:  # fmt: skip
    """Write signatures as Parquet, with the settings that produced them in its metadata."""
    table = pa.table(
        {"id": ids, "path": paths,
         "signature": pa.FixedSizeListArray.from_arrays(pa.array(sigs.reshape(-1)), sigs.shape[1])}
    )  # fmt: skip
    settings = {key: getattr(config, key) for key in SIGNATURE_SETTINGS}
    table = table.replace_schema_metadata({METADATA_KEY: json.dumps(settings).encode()})
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(table, tmp, compression="zstd")
    tmp.replace(path)


def read_index(path: Path, config: DedupConfig) -> SignatureIndex:
    """Read an index, refusing one built with settings that make signatures incomparable."""
    if not path.is_file():
        raise ConfigError(f"dedup.against: no signature index at {str(path)!r}")
    table = pq.read_table(path)
    raw = (table.schema.metadata or {}).get(METADATA_KEY)
    if raw is None:
        raise ConfigError(f"{path}: not a codecurate signature index (no settings metadata)")
    settings = SETTINGS_BEFORE | json.loads(raw)
    for key in SIGNATURE_SETTINGS:
        if settings.get(key) != getattr(config, key):
            raise ConfigError(
                f"{path}: built with dedup.{key} = {settings.get(key)!r}, this run uses "
                f"{getattr(config, key)!r}; signatures are only comparable with equal settings"
            )
    import numpy as np

    frame = pl.from_arrow(table)
    sigs = np.asarray(table.column("signature").combine_chunks().flatten(), dtype=np.uint32)
    return SignatureIndex(
        name=path.name.removesuffix(".parquet"),
        ids=frame["id"].to_list(),
        paths=frame["path"].to_list(),
        signatures=sigs.reshape(len(frame), config.num_perm),
    )


def index_nodes(indexes: list[SignatureIndex]) -> tuple[pl.Series, np.ndarray] | None:
    """Held-out entries as nodes `~<index>/<id>`, with their signatures."""
    if not indexes:
        return None
    import numpy as np

    nodes = [f"{INDEX_PREFIX}{index.name}/{i}" for index in indexes for i in index.ids]
    sigs = np.vstack([index.signatures for index in indexes])
    return pl.Series("node", nodes, dtype=pl.String), sigs
