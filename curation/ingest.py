"""The ingest stage: every configured source, read into records of the one schema."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator
from itertools import chain
from pathlib import Path
from typing import Annotated, Any, ClassVar, get_args

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, field_validator

from curation.errors import ConfigError
from curation.languages import canonical_language
from curation.runner import (
    DEFAULT_PART_ROWS,
    Manifest,
    SourceUnit,
    Stage,
    StageContext,
    package_version,
)
from curation.sources.files import (
    Checkout,
    DirSourceConfig,
    GitSourceConfig,
    WalkOptions,
    checkout_units,
    dir_checkout,
    fingerprint_checkout,
    git,
    git_checkout,
    is_local_repo,
    read_checkout,
)
from curation.sources.github import GitHubSourceConfig, fingerprint_export, read_github_export
from curation.sources.hf import (
    HFSourceConfig,
    Shard,
    fingerprint_hf,
    fingerprint_shard,
    hf_shards,
    read_hf_shard,
)
from curation.sources.pairs import PairSourceConfig, fingerprint_pairs, read_pairs
from curation.story import Story, StoryContext

AnySource = (
    DirSourceConfig | GitSourceConfig | GitHubSourceConfig | HFSourceConfig | PairSourceConfig
)
SourceConfig = Annotated[AnySource, Field(discriminator="type")]
# each kind's `type` tag; a new kind is one more model in AnySource
SOURCE_TYPES: tuple[str, ...] = tuple(
    get_args(kind.model_fields["type"].annotation)[0] for kind in get_args(AnySource)
)

DEFAULT_EXCLUDE_DIRS = (
    "node_modules", "bower_components", "vendor", "third_party", "third-party", "dist",
    "build", "target", "out", "__pycache__", "site-packages", "venv", ".venv", "env",
    "Pods", "Carthage", "_build", "coverage", "htmlcov",
)  # fmt: skip

# Files that tools write, known by name alone; content-based checks are in filters.py.
DEFAULT_GENERATED_FILES = (
    r"\.min\.(js|css)$", r"-min\.js$", r"\.bundle\.js$", r"_pb2(_grpc)?\.pyi?$",
    r"\.pb\.(go|cc|h)$", r"\.pb\.gw\.go$", r"_generated\.\w+$", r"\.generated\.\w+$",
    r"(^|/)package-lock\.json$", r"(^|/)yarn\.lock$", r"(^|/)Cargo\.lock$", r"(^|/)go\.sum$",
)  # fmt: skip


class IngestConfig(BaseModel):
    """`[ingest]`: which sources to read and which files become records."""

    model_config = ConfigDict(extra="forbid")
    sources: list[SourceConfig] = Field(min_length=1)
    languages: list[str] = Field(
        default=["c", "cpp", "python", "java", "javascript", "typescript", "go", "rust",
                 "sas", "sql", "cypher", "shell"],
    )  # fmt: skip
    max_file_bytes: int = Field(default=1_000_000, gt=0)
    exclude_dirs: list[str] = Field(default=list(DEFAULT_EXCLUDE_DIRS))
    generated_files: list[str] = Field(default=list(DEFAULT_GENERATED_FILES))
    batch_size: int = Field(default=1000, gt=0)

    @field_validator("languages")
    @classmethod
    def _known_languages(cls, value: list[str]) -> list[str]:
        try:
            return sorted({canonical_language(name) for name in value})
        except ConfigError as e:  # as a ValueError, the message gets the file and key
            raise ValueError(str(e)) from None

    @field_validator("generated_files")
    @classmethod
    def _regexes(cls, value: list[str]) -> list[str]:
        for index, pattern in enumerate(value):
            try:
                re.compile(pattern)
            except re.error as e:
                raise ValueError(f"[{index}] {pattern!r} is not a regular expression: {e}") from e
        return value

    def check_sources(self) -> None:
        """Each source once, and no two folders that would give their records the same
        `source` (call it once paths are final: relative ones are relative to the config)."""
        seen: dict[tuple[str, str], int] = {}
        names: dict[str, int] = {}
        for index, source in enumerate(self.sources):
            key = _source_key(source)
            if key in seen:
                raise ConfigError(
                    f"ingest.sources[{index}] is ingest.sources[{seen[key]}] again "
                    f"({source.type} {key[1]}); list each source once"
                )
            seen[key] = index
            if isinstance(source, DirSourceConfig):
                name = source.name or source.path.expanduser().resolve().name
                if name in names:
                    raise ConfigError(
                        f"ingest.sources[{index}] and ingest.sources[{names[name]}] would both "
                        f"name their records {name!r}; set 'name' on one of them"
                    )
                names[name] = index

    def walk_options(self) -> WalkOptions:
        return WalkOptions(
            languages=frozenset(self.languages),
            max_file_bytes=self.max_file_bytes,
            exclude_dirs=frozenset(self.exclude_dirs),
            generated_files=tuple(self.generated_files),
            batch_size=self.batch_size,
        )


def _source_key(source: AnySource) -> tuple[str, str]:
    """What makes two entries of `sources` the same source."""
    if isinstance(source, GitSourceConfig):
        return "git", f"{source.url} {source.ref or ''}".strip()
    where = str(source.path.expanduser().resolve())
    if isinstance(source, HFSourceConfig) and source.split:
        where += f" split {source.split}"
    return source.type, where


class IngestStage(Stage):
    """Reads every source; files that cannot be read go to quarantine with the reason."""

    name: ClassVar[str] = "ingest"
    is_source: ClassVar[bool] = True

    def __init__(self, config: IngestConfig, clone_root: Path) -> None:
        self.config = config
        self.clone_root = clone_root

    def input_fingerprint(self) -> str:
        digest = hashlib.sha256()
        options = self.config.walk_options()
        for source in self.config.sources:
            digest.update(self._fingerprint(source, options).encode())
        return digest.hexdigest()

    def _fingerprint(self, source: AnySource, options: WalkOptions) -> str:
        if isinstance(source, DirSourceConfig):
            return fingerprint_checkout(dir_checkout(source, options, None))
        if isinstance(source, GitSourceConfig):
            return self._git_fingerprint(source, options)
        if isinstance(source, GitHubSourceConfig):
            return fingerprint_export(source.path)
        if isinstance(source, PairSourceConfig):
            return fingerprint_pairs(source)
        return fingerprint_hf(source)

    def _git_fingerprint(self, source: GitSourceConfig, options: WalkOptions) -> str:
        if is_local_repo(source.url):
            return fingerprint_checkout(git_checkout(source, self.clone_root, options, None))
        # A remote is known by the commit its ref points at, without cloning.
        return git(["ls-remote", source.url, source.ref or "HEAD"]).split("\t", 1)[0]

    def versions(self) -> dict[str, str]:
        return {"pyarrow": package_version("pyarrow")}

    def units(self, ctx: StageContext, target_rows: int) -> list[SourceUnit]:
        """A checkout's files in content-cut groups of about `target_rows`, a dataset's
        Parquet files one a unit; every other source (an export, a pair file) as one."""
        options = self.config.walk_options()
        units = []
        for source in self.config.sources:
            if isinstance(source, DirSourceConfig | GitSourceConfig):
                checkout = (
                    dir_checkout(source, options, ctx)
                    if isinstance(source, DirSourceConfig)
                    else git_checkout(source, self.clone_root, options, ctx)
                )
                units += [
                    SourceUnit(fingerprint_checkout(group), group)
                    for group in checkout_units(checkout, target_rows)
                ]
            elif isinstance(source, HFSourceConfig):
                units += [SourceUnit(fingerprint_shard(s), s) for s in hf_shards(source, ctx)]
            else:
                units.append(SourceUnit(self._fingerprint(source, options), source))
        return units

    def read_unit(self, unit: SourceUnit, ctx: StageContext) -> Iterator[pl.DataFrame]:
        options = self.config.walk_options()
        what, size = unit.what, self.config.batch_size
        if isinstance(what, Checkout):
            batches = read_checkout(what, options, ctx)
        elif isinstance(what, GitHubSourceConfig):
            batches = read_github_export(what, ctx, size)
        elif isinstance(what, PairSourceConfig):
            batches = read_pairs(what, ctx, size)
        else:
            assert isinstance(what, Shard)
            batches = read_hf_shard(what, options.languages, ctx, size)
        return _first_copies(batches, ctx)

    def run(self, records: pl.LazyFrame | None, ctx: StageContext) -> Iterator[pl.DataFrame]:
        """Every unit in turn in this process (the runner reads them on its workers)."""
        units = self.units(ctx, DEFAULT_PART_ROWS)
        return _first_copies(chain.from_iterable(self.read_unit(u, ctx) for u in units), ctx)


def _first_copies(batches: Iterable[pl.DataFrame], ctx: StageContext) -> Iterator[pl.DataFrame]:
    """The batches without a record seen already (a dataset's repeated row), counted."""
    # A Python set: the ids seen so far span every batch, which one frame never holds.
    seen: set[str] = set()
    for frame in batches:
        fresh = []
        for record_id in frame["id"]:
            fresh.append(record_id not in seen)
            seen.add(record_id)
        duplicates = frame.height - sum(fresh)
        if duplicates:
            ctx.skip("duplicate_record", duplicates)
            frame = frame.filter(pl.Series(fresh))
        yield frame


def story(manifest: Manifest, ctx: StoryContext) -> Story:
    """Ingest's settings in words, and where its records were read from."""
    c = manifest.config
    return Story(
        settings=(
            f"languages {', '.join(c['languages'])}; files over {c['max_file_bytes']:,} bytes "
            f"quarantined; folders named {', '.join(c['exclude_dirs'])} skipped as vendored; "
            f"{len(c['generated_files'])} patterns of generated files skipped"
        ),
        lineage={"inputs": [_input(source, ctx) for source in c.get("sources", [])]},
    )


def _input(source: dict[str, Any], ctx: StoryContext) -> dict[str, Any]:
    """A configured source: its type, where it was read from, and its other settings."""
    location = ctx.location(str(source.get("path") or source.get("url") or ""))
    others = {k: v for k, v in source.items() if k not in ("type", "path", "url") and v is not None}
    return {"type": source.get("type"), "location": location, **others}
