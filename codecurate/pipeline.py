"""Builds the configured stages and runs them with the curation runner."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from codecurate import stages as registry
from codecurate.config import PipelineConfig, prepare_workdir
from curation import ConfigError, Manifest, Runner, Stage
from curation.engines import make_engine
from curation.quarantine import Redactor


def quarantine_redactor(config: PipelineConfig) -> Redactor | None:
    """The redaction of the first configured stage that offers one (the pii stage's); None
    keeps quarantined text as a hash (see curation.quarantine)."""
    for name in config.stages:
        entry = registry.REGISTRY[name]
        if entry.redactor is not None:
            redactor: Redactor = registry.load(entry.redactor)(getattr(config, name))
            return redactor
    return None


def token_counter(config: PipelineConfig) -> Callable[[list[str]], list[int]] | None:
    """Tokens as the [annotate] model counts them, for the filters' token limits."""
    if not config.filters.counts_tokens:
        return None
    from annotators.tokens import count_tokens

    model = config.annotate.model
    return lambda texts: count_tokens(texts, model)


def build_stages(config: PipelineConfig, auto_review: bool = False) -> list[Stage]:
    """The stages named in `config.stages`, each built from its own table. A stage's module
    is imported only when the stage is configured: each may need an extra."""
    settings = {
        "workdir": config.workdir, "clone_root": config.workdir / "clones",
        "auto_review": auto_review, "count_tokens": token_counter(config),
    }  # fmt: skip
    return [
        registry.build(registry.REGISTRY[name], getattr(config, name), settings)
        for name in config.stages
    ]


def run_pipeline(
    config: PipelineConfig,
    until: str | None = None,
    force: Iterable[str] = (),
    console: Console | None = None,
    on_stage_done: Callable[[Manifest], None] | None = None,
    auto_review: bool = False,
) -> list[Manifest]:
    """Run the configured stages (up to and including `until`), resuming finished ones.

    `auto_review` (demo only) has a machine reviewer accept every suggestion.
    """
    names = list(config.stages)
    if until is not None:
        if until not in names:
            raise ConfigError(f"--until {until!r}: not a configured stage ({', '.join(names)})")
        names = names[: names.index(until) + 1]
    # only the stages that run are built: a run through filters needs no extra installed
    stages = build_stages(config.model_copy(update={"stages": names}), auto_review)
    known = registry.stage_names()
    unknown = set(force) - set(known)
    if unknown:
        raise ConfigError(f"--force {sorted(unknown)[0]!r}: not a stage ({', '.join(known)})")
    console = console or Console(stderr=True)
    prepare_workdir(config.workdir)

    def progress() -> Progress:
        return Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
            disable=not console.is_terminal,
        )

    redact = quarantine_redactor(config)
    with make_engine(config.engine) as engine:
        runner = Runner(config.workdir, progress_factory=progress, on_stage_done=on_stage_done,
                        engine=engine, redact=redact,
                        part_rows=config.engine.part_rows)  # fmt: skip
        return runner.run(stages, force=force)
