"""Signature indexes: what earlier runs kept, or a held-out eval set, to dedup against."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from curation.dedup.config import DedupConfig
from curation.errors import ConfigError

# Settings that change signatures: an index is only comparable under the same ones.
SIGNATURE_SETTINGS = ("num_perm", "seed", "shingle", "ngram", "normalize_identifiers",
                      "strip_comments")  # fmt: skip
METADATA_KEY = b"codecurate.dedup"


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
    settings = json.loads(raw)
    for key in SIGNATURE_SETTINGS:
        if settings.get(key) != getattr(config, key):
            raise ConfigError(
                f"{path}: built with dedup.{key} = {settings.get(key)!r}, this run uses "
                f"{getattr(config, key)!r}; signatures are only comparable with equal settings"
            )
    frame = pl.from_arrow(table)
    sigs = np.asarray(table.column("signature").combine_chunks().flatten(), dtype=np.uint32)
    return SignatureIndex(
        name=path.name.removesuffix(".parquet"),
        ids=frame["id"].to_list(),
        paths=frame["path"].to_list(),
        signatures=sigs.reshape(len(frame), config.num_perm),
    )
