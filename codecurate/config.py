"""`curate.toml`: the pipeline config, validated on load with errors that name the key."""

from __future__ import annotations

import tempfile
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
from finetune.release.config import ExportConfig

STAGE_ORDER = ("ingest", "filters", "pii", "dedup", "annotate", "review")
SOURCE_TYPES = ("dir", "git", "github", "hf", "pair")


class PipelineConfig(BaseModel):
    """The whole `curate.toml`: where stage files go, and one table per stage."""

    model_config = ConfigDict(extra="forbid")
    workdir: Path = Path("work")
    # review needs an Argilla server, so it runs only when listed
    stages: list[Literal[*STAGE_ORDER]] = Field(default=list(STAGE_ORDER[:-1]))  # type: ignore[valid-type]
    ingest: IngestConfig
    filters: FilterConfig = Field(default_factory=FilterConfig)
    pii: PIIConfig = Field(default_factory=PIIConfig)
    dedup: DedupConfig = Field(default_factory=DedupConfig)
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
    if config.review.gold is not None:
        config.review.gold = resolve(config.review.gold)
    config.export.root = resolve(config.export.root)
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
    config = _resolve_paths(config, path.parent.resolve())
    try:
        config.ingest.check_sources()
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
    return config


def load_config(path: Path) -> PipelineConfig:
    """Read and validate `curate.toml`."""
    if path.is_dir():
        raise ConfigError(f"{path} is a folder; pass the config file, e.g. {path / 'curate.toml'}")
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file; create one with: curate init {path}")
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as e:
        raise ConfigError(f"{path}: cannot read it ({e.strerror})") from None
    except UnicodeDecodeError as e:
        raise ConfigError(
            f"{path}: not UTF-8 (byte {e.object[e.start]:#04x} at offset {e.start}); "
            "save it as UTF-8"
        ) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    return parse_config(data, path)


def prepare_workdir(workdir: Path) -> None:
    """Create the workdir and check that files can be written there, before any stage runs."""
    try:
        workdir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=workdir):
            pass
    except OSError as e:
        raise ConfigError(
            f"workdir {str(workdir)!r}: cannot write there ({e.strerror}); set 'workdir' in "
            "the config to a folder you can write"
        ) from None
