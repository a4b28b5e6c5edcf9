"""Curation stages: the record schema, sources, quality filters and the stage runner."""

from importlib import import_module
from typing import TYPE_CHECKING, Any

from curation.errors import (
    ConfigError,
    CurateError,
    MissingDependency,
    SchemaError,
    SourceError,
    StageError,
    WorkdirError,
)

if TYPE_CHECKING:
    from curation.filters import FilterConfig, FilterStage
    from curation.ingest import IngestConfig, IngestStage
    from curation.runner import Manifest, Runner, Stage, StageContext, kept, stage_frame
    from curation.schema import RECORD_SCHEMA, conform, record_id, to_records, validate

# These load Polars and PyArrow, so they are imported on first use (PEP 562): importing
# curation.errors, as every package does, must not cost `curate --help` a second.
_LAZY = {
    "FilterConfig": "curation.filters",
    "FilterStage": "curation.filters",
    "IngestConfig": "curation.ingest",
    "IngestStage": "curation.ingest",
    "Manifest": "curation.runner",
    "Runner": "curation.runner",
    "Stage": "curation.runner",
    "StageContext": "curation.runner",
    "kept": "curation.runner",
    "stage_frame": "curation.runner",
    "RECORD_SCHEMA": "curation.schema",
    "conform": "curation.schema",
    "record_id": "curation.schema",
    "to_records": "curation.schema",
    "validate": "curation.schema",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'curation' has no attribute {name!r}")
    return getattr(import_module(_LAZY[name]), name)


__all__ = [
    "RECORD_SCHEMA",
    "ConfigError",
    "CurateError",
    "FilterConfig",
    "FilterStage",
    "IngestConfig",
    "IngestStage",
    "Manifest",
    "MissingDependency",
    "Runner",
    "SchemaError",
    "SourceError",
    "Stage",
    "StageContext",
    "StageError",
    "WorkdirError",
    "conform",
    "kept",
    "record_id",
    "stage_frame",
    "to_records",
    "validate",
]
