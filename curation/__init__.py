"""Curation stages: the record schema, sources, quality filters and the stage runner."""

from curation.errors import (
    ConfigError,
    CurateError,
    MissingDependency,
    SchemaError,
    SourceError,
    StageError,
    WorkdirError,
)
from curation.filters import FilterConfig, FilterStage
from curation.ingest import IngestConfig, IngestStage
from curation.runner import Manifest, Runner, Stage, StageContext, kept, stage_frame
from curation.schema import RECORD_SCHEMA, conform, record_id, to_records, validate

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
