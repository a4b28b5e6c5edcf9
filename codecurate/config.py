"""`curate.toml`: the pipeline config, validated on load with errors that name the key."""

from __future__ import annotations

import functools
import tempfile
import tomllib
from importlib.resources import files
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, field_validator

from codecurate import stages as registry
from curation import ConfigError
from curation.engines import EngineConfig
from curation.ingest import SOURCE_TYPES
from finetune.release.config import ExportConfig


def _default_stages() -> list[str]:
    return [entry.name for entry in registry.registered() if entry.default]


class PipelineConfig(BaseModel):
    """The whole `curate.toml`: where stage files go, and one table per registered stage
    (`[ingest]`, `[filters]`...), added by `pipeline_config_model`."""

    model_config = ConfigDict(extra="forbid")
    workdir: Path = Path("work")
    stages: list[str] = Field(default_factory=_default_stages)
    export: ExportConfig = Field(default_factory=ExportConfig)
    engine: EngineConfig = Field(default_factory=EngineConfig)

    @field_validator("stages")
    @classmethod
    def _stages_known_and_in_order(cls, stages: list[str]) -> list[str]:
        entries = registry.registered()
        names = [entry.name for entry in entries]
        for name in stages:
            if name not in names:
                raise ValueError(f"unknown stage {name!r}; stages are: {', '.join(names)}")
        sources = [entry.name for entry in entries if entry.source]
        if not stages or stages[0] not in sources:
            raise ValueError(f"the first stage must be {' or '.join(map(repr, sources))}")
        order = [names.index(name) for name in stages]
        if order != sorted(set(order)):
            raise ValueError(f"stages must be unique and in this order: {', '.join(names)}")
        return stages


def pipeline_config_model() -> type[PipelineConfig]:
    """`PipelineConfig` with one table per stage now registered."""
    return _config_model(registry.registered())


@functools.cache
def _config_model(entries: tuple[registry.StageEntry, ...]) -> type[PipelineConfig]:
    tables: dict[str, Any] = {}
    for entry in entries:
        model = registry.config_model(entry)
        # a source's table says what to read, so it has no default
        tables[entry.name] = (model, ...) if entry.source else (model, Field(default_factory=model))
    return create_model("PipelineConfig", __base__=PipelineConfig, **tables)


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
    tables = [getattr(config, name) for name in registry.stage_names()]
    for table in [*tables, *config.ingest.sources, config.export]:
        for key in type(table).model_fields:
            value = getattr(table, key)
            if isinstance(value, Path):
                setattr(table, key, resolve(value))
            elif isinstance(value, list) and value and all(isinstance(v, Path) for v in value):
                setattr(table, key, [resolve(v) for v in value])
    if config.engine.scratch is not None and "://" not in config.engine.scratch:
        config.engine.scratch = str(resolve(Path(config.engine.scratch)))
    return config


def parse_config(data: dict[str, Any], path: Path) -> PipelineConfig:
    """Validate a config mapping; paths are made relative to `path`'s folder."""
    try:
        # `base` lets a source resolve what is not a Path field (a git source's local clone)
        base = path.parent.resolve()
        config = pipeline_config_model().model_validate(data, context={"base": base})
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
