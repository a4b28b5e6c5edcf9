"""Running the pipeline: init, run, ingest, status, the run report, and GitHub exports."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from codecurate.cli.common import ConfigOption, console, err_console, friendly_errors, load_config
from curation.errors import CurateError

if TYPE_CHECKING:
    from codecurate.config import PipelineConfig
    from curation import Manifest

app = typer.Typer()
github_app = typer.Typer(help="Read GitHub issues and commits.", no_args_is_help=True)


@app.command()
@friendly_errors
def init(
    path: Annotated[Path, typer.Argument(help="Where to write the config.")] = Path("curate.toml"),
    force: Annotated[bool, typer.Option(help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented curate.toml to start from.

    Example: curate init my-dataset/curate.toml
    """
    from codecurate.config import template

    if path.exists() and not force:
        raise CurateError(f"{path} exists; pass --force to overwrite it")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(template())
    console.print(f"wrote {path}: edit [ingest.sources], then run: curate run -c {path}",
                  markup=False)  # fmt: skip


def print_summary(manifests: list[Manifest], config: Path, workdir: Path, title: str) -> None:
    """The funnel, failed stages, the reasons, each stage's own tables and the first
    quarantined inputs."""
    from codecurate.summary import (
        failures_table,
        quarantine_table,
        read_failures,
        reasons_table,
        stage_table,
        story_tables,
    )
    from curation.story import StoryContext

    console.print(stage_table(manifests, title=title))
    told = story_tables(manifests, StoryContext(workdir, config.resolve().parent))
    tables = (failures_table(read_failures(workdir)), reasons_table(manifests), *told,
              quarantine_table(workdir))  # fmt: skip
    for table in tables:
        if table is not None:
            console.print(table)


def _run(config_path: Path, until: str | None, force: list[str]) -> None:
    run_and_summarize(config_path, load_config(config_path), until, force)


def run_and_summarize(
    path: Path, config: PipelineConfig, until: str | None, force: list[str],
    auto_review: bool = False,
) -> None:  # fmt: skip
    """Run the pipeline (`curate run`, and `annotate` and `argilla sync` up to their stage),
    then print the summary and write the run report."""
    from codecurate.pipeline import run_pipeline
    from codecurate.report import write_run_report

    manifests = run_pipeline(
        config, until=until, force=force, console=err_console, auto_review=auto_review
    )
    engine = "" if config.engine.kind == "local" else f", engine {config.engine.kind}"
    print_summary(manifests, path, config.workdir, f"curate run ({config.workdir}{engine})")
    console.print(f"report: {write_run_report(config, path)}")


@app.command()
@friendly_errors
def run(
    config: ConfigOption = Path("curate.toml"),
    until: Annotated[str | None, typer.Option(help="Stop after this stage.")] = None,
    force: Annotated[
        list[str] | None, typer.Option(help="Rerun this stage even if it is done (repeatable).")
    ] = None,
    auto_review: Annotated[
        bool,
        typer.Option(
            help="Demo only: a machine reviewer accepts every suggestion in Argilla; "
            "its records are labelled machine_reviewed."
        ),
    ] = False,
    engine: Annotated[
        str | None,
        typer.Option(help="Where stages run: local or ray (default: [engine].kind)."),
    ] = None,
    ray_address: Annotated[
        str | None,
        typer.Option(
            help="With --engine ray: 'local' starts Ray here, 'auto' joins this machine's "
            "cluster, or ray://head:10001 (default: [engine].address)."
        ),
    ] = None,
) -> None:
    """Run the configured stages; finished stages with unchanged config and input are skipped.
    The engine does not change any output, so switching it resumes finished stages.

    Example: curate run -c curate.toml --force filters
    Example: curate run -c curate.toml --engine ray --ray-address auto
    """
    from curation.engines import EngineConfig

    pipeline = load_config(config)
    overrides = {"kind": engine, "address": ray_address}
    if engine not in (None, "local", "ray"):
        raise CurateError(f"--engine {engine!r}: expected local or ray")
    settings = EngineConfig.model_validate(
        pipeline.engine.model_dump() | {k: v for k, v in overrides.items() if v is not None}
    )
    if ray_address is not None and settings.kind != "ray":
        raise CurateError('--ray-address needs --engine ray (or [engine] kind = "ray")')
    pipeline = pipeline.model_copy(update={"engine": settings})
    run_and_summarize(config, pipeline, until, force or [], auto_review)


@app.command()
@friendly_errors
def ingest(config: ConfigOption = Path("curate.toml")) -> None:
    """Run only the ingest stage: read every source into records.

    Example: curate ingest -c curate.toml
    """
    _run(config, "ingest", [])


@app.command()
@friendly_errors
def status(config: ConfigOption = Path("curate.toml")) -> None:
    """Show what each stage of the workdir holds: rows in/out and counts per reason.

    Example: curate status -c curate.toml
    """
    from codecurate.summary import read_failures, read_manifests

    workdir = load_config(config).workdir
    manifests = read_manifests(workdir)
    if not manifests and not read_failures(workdir):
        console.print(f"{workdir}: no stage has run yet; start with: curate run -c {config}")
        return
    print_summary(manifests, config, workdir, f"curate status ({workdir})")


@github_app.command("fetch")
@friendly_errors
def github_fetch(
    repo: Annotated[str, typer.Argument(help="owner/name")],
    out: Annotated[Path, typer.Option(help="Folder for issues.jsonl and commits.jsonl.")],
    since: Annotated[str | None, typer.Option(help="Only items updated since (ISO 8601).")] = None,
    api_url: Annotated[str, typer.Option(help="GitHub API root.")] = "https://api.github.com",
) -> None:
    """Export a repository's issues (with comments) and commits for a `github` source.

    The token is read from GITHUB_TOKEN. Example: curate github fetch pola-rs/polars --out gh/
    """
    from curation.sources.github_api import GitHubClient, export_repo

    counts = export_repo(GitHubClient(api_url=api_url), repo, out, since=since)
    console.print(f"wrote {counts['issues']} issues and {counts['commits']} commits to {out}")


@app.command()
@friendly_errors
def report(config: ConfigOption = Path("curate.toml")) -> None:
    """Write the run report: one self-contained HTML page (funnel, drop reasons, PII, clusters,
    annotation cost, review, dataset versions) and its PNG plots, under <workdir>/reports/.

    Example: curate report -c curate.toml
    """
    from codecurate.report import write_run_report
    from codecurate.summary import read_manifests

    pipeline = load_config(config)
    if not read_manifests(pipeline.workdir):
        raise CurateError(f"{pipeline.workdir}: no stage has run yet; run: curate run -c {config}")
    console.print(f"report: {write_run_report(pipeline, config)}")
