"""Builds the configured stages and runs them with the curation runner."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from codecurate.config import STAGE_ORDER, PipelineConfig, prepare_workdir
from curation import ConfigError, FilterStage, IngestStage, Manifest, Runner, Stage
from curation.engines import make_engine
from curation.pii import PIIConfig, load_engine
from curation.pii.stage import redact_many

if TYPE_CHECKING:
    from curation.pii.engine import PIIEngine


class QuarantineRedactor:
    """The pii stage's redaction for the runner's quarantine and failure messages. Its engine
    loads on first use: most runs quarantine no text, and spaCy takes seconds to load."""

    def __init__(self, config: PIIConfig) -> None:
        self.config = config
        self.engine: PIIEngine | None = None

    def __call__(self, texts: list[str]) -> list[str]:
        if self.engine is None:
            self.engine = load_engine(self.config)
        # as prose (no language): a quarantined line or message is not a source file
        return [clean for clean, _ in redact_many(self.engine, texts, [None] * len(texts))]


def build_stages(config: PipelineConfig, auto_review: bool = False) -> list[Stage]:
    """The stages named in `config.stages`, each built from its own table. A stage's module
    is imported only when the stage is configured: each may need an extra."""

    def pii() -> Stage:
        from curation.pii import PIIStage

        return PIIStage(config.pii)

    def dedup() -> Stage:
        from curation.dedup import DedupStage

        return DedupStage(config.dedup)

    def annotate() -> Stage:
        from annotators.stage import AnnotateStage

        return AnnotateStage(config.annotate, config.workdir)

    def review() -> Stage:
        from argilla_setup.stage import ReviewStage

        return ReviewStage(config.review, config.workdir, auto_review)

    builders: dict[str, Callable[[], Stage]] = {
        "ingest": lambda: IngestStage(config.ingest, clone_root=config.workdir / "clones"),
        "filters": lambda: FilterStage(config.filters),
        "pii": pii,
        "dedup": dedup,
        "annotate": annotate,
        "review": review,
    }
    return [builders[name]() for name in config.stages]


def run_pipeline(
    config: PipelineConfig,
    until: str | None = None,
    force: Iterable[str] = (),
    console: Console | None = None,
    on_stage_done: Callable[[Manifest], None] | None = None,
    auto_review: bool = False,
) -> list[Manifest]:
    """Run the configured stages (up to and including `until`), resuming finished ones.

    `auto_review` (demo only) has a machine reviewer accept every suggestion; the review
    stage then always reruns.
    """
    if auto_review:
        force = [*force, "review"]
    names = list(config.stages)
    if until is not None:
        if until not in names:
            raise ConfigError(f"--until {until!r}: not a configured stage ({', '.join(names)})")
        names = names[: names.index(until) + 1]
    # only the stages that run are built: a run through filters needs no extra installed
    stages = build_stages(config.model_copy(update={"stages": names}), auto_review)
    unknown = set(force) - set(STAGE_ORDER)
    if unknown:
        raise ConfigError(f"--force {sorted(unknown)[0]!r}: not a stage ({', '.join(STAGE_ORDER)})")
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

    # Without the pii stage, quarantined text is kept as a hash (see curation.quarantine).
    redact = QuarantineRedactor(config.pii) if "pii" in config.stages else None
    with make_engine(config.engine) as engine:
        runner = Runner(config.workdir, progress_factory=progress, on_stage_done=on_stage_done,
                        engine=engine, redact=redact)  # fmt: skip
        return runner.run(stages, force=force)
