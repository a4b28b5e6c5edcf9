"""`[engine]` settings: where the stages run."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class EngineConfig(BaseModel):
    """Local processes (the default) or a Ray cluster; the outputs are the same."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["local", "ray"] = "local"
    # ray: "local" starts Ray on this machine; "auto" joins the cluster this machine is
    # part of; "ray://head:10001" connects to a remote one.
    address: str = "local"
    num_cpus: int = Field(default=0, ge=0)  # ray, address "local": CPUs to use; 0 = all
    workers: int = Field(default=0, ge=0)  # parallel copies of a map; 0 = one per CPU
    # Where dedup writes its intermediate files (a folder, or an fsspec URL such as
    # s3://bucket/run on a cluster, where every worker must reach it); default: workdir.
    scratch: str | None = None
    # Rows per part of each stage's output, about: the unit that resume and new input
    # recompute, and that one worker maps at a time.
    part_rows: int = Field(default=10_000, ge=1)
