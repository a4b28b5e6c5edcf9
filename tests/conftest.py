"""Shared helpers: tiny trees of files and a stage context that collects what stages report."""

from __future__ import annotations

import socket
from pathlib import Path

import polars as pl
import pytest

from curation import IngestConfig, IngestStage, Manifest, Runner, stage_frame

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample"


def write_tree(root: Path, files: dict[str, str | bytes]) -> Path:
    """Create files under `root` from a {relative path: text or bytes} mapping."""
    for relative, content in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return root


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now, for a server a test starts."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ingest(tmp_path: Path, **config: object) -> tuple[pl.DataFrame, Manifest, pl.DataFrame]:
    """Run only the ingest stage; return its records, manifest and quarantine."""
    workdir = tmp_path / "work"
    stage = IngestStage(IngestConfig.model_validate(config), clone_root=workdir / "clones")
    [manifest] = Runner(workdir).run([stage])
    records = stage_frame(workdir / "01_ingest").collect()
    return records, manifest, pl.read_parquet(workdir / "quarantine.parquet")


@pytest.fixture
def sample() -> Path:
    return SAMPLE
