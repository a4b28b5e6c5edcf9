"""`[review]` in curate.toml: where reviews happen and how they become the dataset."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class ReviewConfig(BaseModel):
    """The Argilla dataset reviewers work in. With ARGILLA_API_URL and ARGILLA_API_KEY set,
    that server is used; otherwise the local one `curate argilla up` starts."""

    model_config = ConfigDict(extra="forbid")
    dataset: str = "code-instructions"
    workspace: str = "codecurate"
    min_submitted: int = Field(default=1, ge=1)  # reviewers per record (overlap)
    batch_size: int = Field(default=256, ge=1)
    roster: Path | None = None  # users and workspaces (YAML), for `curate argilla users apply`
    gold: Path | None = None  # gold records (JSON Lines) that score each annotator: gold.py
    # the local server: its data under <workdir>/argilla, its virtualenv shared by projects
    port: int = Field(default=6900, ge=1, le=65535)
    server_venv: Path | None = None  # default ~/.cache/codecurate/argilla-server
