"""The stage registry: the one place that names the pipeline's stages.

Each entry says where the stage class and its config model live (as "module:Class", imported
only when a config is read or the stage is built: a stage may need an extra), where the
stage runs, which run settings its constructor takes, and where its story is told
(`curation.story`: what `curate status`, the run report and a version's lineage say of it).
`codecurate.config` makes one `curate.toml` table per entry and checks `stages` against it;
the pipeline builds the configured stages from it. Adding a stage is one `register(...)`
line here.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module
from typing import TYPE_CHECKING, Any

from curation.errors import ConfigError
from curation.story import Story, StoryContext, settings_by_name

if TYPE_CHECKING:
    from pydantic import BaseModel

    from curation.runner import Manifest, Stage

# What a stage's constructor may ask for besides its config table, by keyword.
RUN_SETTINGS = ("workdir", "clone_root", "auto_review", "count_tokens")


@dataclass(frozen=True)
class StageEntry:
    """One stage: `stage` and `config` are "module:Class"; stages run by ascending `position`.
    `default` stages run when `stages` is not set; a `source` stage reads the input, comes
    first, and its table is required; `takes` names the RUN_SETTINGS its constructor wants;
    `story` is "module:function", `function(manifest, StoryContext) -> Story`; a stage
    without one is told by its counts and its settings by name; `redactor` is "module:Class",
    built from the stage's table, which cleans what the runner quarantines when the stage is
    configured (curation.quarantine)."""

    name: str
    stage: str
    config: str
    position: int
    default: bool = True
    source: bool = False
    takes: tuple[str, ...] = ()
    story: str | None = None
    redactor: str | None = None


REGISTRY: dict[str, StageEntry] = {}


def register(entry: StageEntry) -> StageEntry:
    """Add a stage; its name and position must be new and it may take only RUN_SETTINGS."""
    if entry.name in REGISTRY:
        raise ConfigError(f"stage {entry.name!r} is registered already")
    taken = {other.position: other.name for other in REGISTRY.values()}
    if entry.position in taken:
        raise ConfigError(
            f"stage {entry.name!r}: position {entry.position} is {taken[entry.position]!r}'s"
        )
    unknown = set(entry.takes) - set(RUN_SETTINGS)
    if unknown:
        raise ConfigError(
            f"stage {entry.name!r} takes {sorted(unknown)[0]!r}; run settings are: "
            f"{', '.join(RUN_SETTINGS)}"
        )
    REGISTRY[entry.name] = entry
    return entry


def registered() -> tuple[StageEntry, ...]:
    """Every registered stage, in the order stages run."""
    return tuple(sorted(REGISTRY.values(), key=lambda entry: entry.position))


def stage_names() -> list[str]:
    """The registered stage names, in the order stages run."""
    return [entry.name for entry in registered()]


def load(target: str) -> Any:
    """The object a "module:Class" string names (importing its module)."""
    module, _, name = target.partition(":")
    return getattr(import_module(module), name)


def config_model(entry: StageEntry) -> type[BaseModel]:
    """The config model of a stage's `curate.toml` table."""
    model: type[BaseModel] = load(entry.config)
    return model


def build(entry: StageEntry, table: BaseModel, settings: dict[str, Any]) -> Stage:
    """The stage from its config table, with the run settings (RUN_SETTINGS) it takes."""
    stage_class = load(entry.stage)
    stage: Stage = stage_class(table, **{name: settings[name] for name in entry.takes})
    return stage


def story_of(manifest: Manifest, ctx: StoryContext) -> Story:
    """What the stage that wrote `manifest` tells of its run. A manifest whose stage is no
    longer registered, or whose config or numbers changed shape since (its story raises
    reading a key), is told by its settings by name."""
    entry = REGISTRY.get(manifest.stage)
    fallback = Story(settings=settings_by_name(manifest.config))
    if entry is None or entry.story is None:
        return fallback
    try:
        story: Story = load(entry.story)(manifest, ctx)
    except (KeyError, TypeError, ValueError):
        return fallback
    return story


register(
    StageEntry(
        "ingest", "curation.ingest:IngestStage", "curation.ingest:IngestConfig", position=10,
        source=True, takes=("clone_root",), story="curation.ingest:story",
    )
)  # fmt: skip
register(
    StageEntry(
        "filters", "curation.filters:FilterStage", "curation.filters:FilterConfig", position=20,
        takes=("count_tokens",), story="curation.filters:story",
    )
)  # fmt: skip
register(
    StageEntry(
        "pii", "curation.pii:PIIStage", "curation.pii.config:PIIConfig", position=30,
        story="curation.pii.story:story", redactor="curation.pii.stage:QuarantineRedactor",
    )
)  # fmt: skip
register(
    StageEntry(
        "dedup", "curation.dedup:DedupStage", "curation.dedup.config:DedupConfig", position=40,
        story="curation.dedup.story:story",
    )
)  # fmt: skip
# verify needs the [verify] extra (tree-sitter, duckdb, ladybug), so it runs only when listed
register(
    StageEntry(
        "verify", "curation.verify:VerifyStage", "curation.verify.config:VerifyConfig",
        position=45, default=False, story="curation.verify.story:story",
    )
)  # fmt: skip
register(
    StageEntry(
        "annotate", "annotators.stage:AnnotateStage", "annotators.config:AnnotateConfig",
        position=50, takes=("workdir",), story="annotators.story:story",
    )
)  # fmt: skip
# review needs an Argilla server, so it runs only when listed
register(
    StageEntry(
        "review", "argilla_setup.stage:ReviewStage", "argilla_setup.config:ReviewConfig",
        position=60, default=False, takes=("workdir", "auto_review"),
        story="argilla_setup.story:story",
    )
)  # fmt: skip
