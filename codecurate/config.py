"""`curate.toml`: the pipeline config, validated on load with errors that name the key."""

from __future__ import annotations

import tomllib
from importlib.resources import files
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from annotators.config import AnnotateConfig
from argilla_setup.config import ReviewConfig
from curation import ConfigError, FilterConfig, IngestConfig
from curation.dedup import DedupConfig
from curation.engines import EngineConfig
from curation.pii import PIIConfig
from curation.sources.files import is_local_repo
from curation.verify import VerifyConfig
from finetune.release.config import ExportConfig

STAGE_ORDER = ("ingest", "filters", "pii", "dedup", "verify", "annotate", "review")
SOURCE_TYPES = ("dir", "git", "github", "hf")


class PipelineConfig(BaseModel):
    """The whole `curate.toml`: where stage files go, and one table per stage."""

    model_config = ConfigDict(extra="forbid")
    workdir: Path = Path("work")
    # review needs an Argilla server and verify the [verify] extra, so they run only when listed
    stages: list[Literal[*STAGE_ORDER]] = Field(  # type: ignore[valid-type]
        default=[name for name in STAGE_ORDER if name not in ("verify", "review")]
    )
    ingest: IngestConfig
    filters: FilterConfig = Field(default_factory=FilterConfig)
    pii: PIIConfig = Field(default_factory=PIIConfig)
    dedup: DedupConfig = Field(default_factory=DedupConfig)
    verify: VerifyConfig = Field(default_factory=VerifyConfig)
    annotate: AnnotateConfig = Field(default_factory=AnnotateConfig)
    review: ReviewConfig = Field(default_factory=ReviewConfig)
    export: ExportConfig = Field(default_factory=ExportConfig)
    engine: EngineConfig = Field(default_factory=EngineConfig)

    @model_validator(mode="after")
    def _stages_in_order(self) -> PipelineConfig:
        if not self.stages or self.stages[0] != "ingest":
            raise ValueError("the first stage must be 'ingest'")
        order = [STAGE_ORDER.index(name) for name in self.stages]
        if order != sorted(set(order)):
            raise ValueError(f"stages must be unique and in this order: {', '.join(STAGE_ORDER)}")
        return self


def template() -> str:
    """The commented `curate.toml` that `curate init` writes."""
    return files("codecurate").joinpath("templates/curate.toml").read_text()


def _key(loc: tuple[Any, ...]) -> str:
    """A pydantic error location as the TOML key a user would look for."""
    key = ""
    for part in loc:
        if isinstance(part, int):
            key += f"[{part}]"
        elif part in SOURCE_TYPES and key.endswith("]"):
            continue  # the union tag pydantic adds after a source's index
        else:
            key += f".{part}" if key else str(part)
    return key or "(top level)"


def _format_errors(path: Path, error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        message = item["msg"].removeprefix("Value error, ")
        given = item.get("input")
        shown = "" if isinstance(given, dict | list) or given is None else f" (got {given!r})"
        lines.append(f"{path}: {_key(item['loc'])}: {message}{shown}")
    return "\n".join(lines)


def _resolve_paths(config: PipelineConfig, base: Path) -> PipelineConfig:
    """Relative paths in the file are relative to the file, not to where curate runs."""

    def resolve(path: Path) -> Path:
        path = path.expanduser()
        return path if path.is_absolute() else (base / path).resolve()

    config.workdir = resolve(config.workdir)
    if config.annotate.prices is not None:
        config.annotate.prices = resolve(config.annotate.prices)
    if config.annotate.ledger is not None:
        config.annotate.ledger = resolve(config.annotate.ledger)
    if config.review.roster is not None:
        config.review.roster = resolve(config.review.roster)
    config.export.root = resolve(config.export.root)
    config.dedup.against = [resolve(path) for path in config.dedup.against]
    if config.dedup.write_index is not None:
        config.dedup.write_index = resolve(config.dedup.write_index)
    for key in ("sql_fixture", "cypher_fixture"):
        if getattr(config.verify, key) is not None:
            setattr(config.verify, key, resolve(getattr(config.verify, key)))
    if config.engine.scratch is not None and "://" not in config.engine.scratch:
        config.engine.scratch = str(resolve(Path(config.engine.scratch)))
    for source in config.ingest.sources:
        if source.type == "git":
            local = resolve(Path(source.url))
            if "://" not in source.url and is_local_repo(str(local)):
                source.url = str(local)
        else:
            source.path = resolve(source.path)
    return config


def parse_config(data: dict[str, Any], path: Path) -> PipelineConfig:
    """Validate a config mapping; paths are made relative to `path`'s folder."""
    try:
        config = PipelineConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_format_errors(path, e)) from None
    return _resolve_paths(config, path.parent.resolve())


def load_config(path: Path) -> PipelineConfig:
    """Read and validate `curate.toml`."""
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file; create one with: curate init {path}")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    return parse_config(data, path)
