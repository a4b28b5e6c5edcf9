"""`[verify]` settings: what runs, under which limits, against which fixtures."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class VerifyConfig(BaseModel):
    """Run each code or pair record's code in a sandbox and record whether it holds up."""

    model_config = ConfigDict(extra="forbid")
    # Generated answers and snippets verify in well under a second; 5 s of CPU lets real
    # doctests finish and stops an endless loop quickly.
    cpu_seconds: int = Field(default=5, ge=1, le=600)
    # Wall clock: a task that sleeps or blocks uses no CPU; twice the CPU time plus start-up.
    wall_seconds: float = Field(default=15, gt=0, le=1200)
    # Address space, not resident memory: the interpreter and an embedded database reserve
    # ~400 MB before the task starts; 1 GB refuses a runaway allocation long before the
    # machine (shared by several workers) feels it.
    memory_mb: int = Field(default=1024, ge=256, le=65536)
    # Largest file the task may write in its scratch folder (the graph fixture's files).
    file_mb: int = Field(default=64, ge=1, le=4096)
    workers: int = Field(default=2, ge=1, le=64)  # sandboxes at once
    # SQL answers run against this script (CREATE TABLE + INSERT); Cypher answers against a
    # graph built from this one (CREATE NODE/REL TABLE + CREATE). Without one, SQL is only
    # parsed and Cypher is not verified.
    sql_fixture: Path | None = None
    sql_engine: Literal["sqlite", "duckdb"] = "sqlite"
    cypher_fixture: Path | None = None
    # Records that fail keep flowing, flagged `not_verified` for reviewers; true drops them.
    drop_failed: bool = False
    batch_size: int = Field(default=500, gt=0)
