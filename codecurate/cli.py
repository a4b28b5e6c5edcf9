"""The `curate` command line: thin wrappers over library calls (STYLE.md #11)."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import polars as pl
import typer
from rich.console import Console
from rich.markup import escape

from codecurate.config import PipelineConfig, load_config, template
from codecurate.pipeline import run_pipeline
from codecurate.summary import (
    annotation_table,
    clusters_table,
    counts_text,
    estimate_table,
    failures_table,
    findings_table,
    quarantine_table,
    read_failures,
    read_manifests,
    reasons_table,
    review_table,
    spend_table,
    stage_table,
)
from curation import CurateError, Manifest, kept
from curation.engines import EngineConfig, make_engine

app = typer.Typer(
    help="Curate code datasets for LLMs: ingest, filter, strip PII, dedup, annotate, review, "
    "export.\n\nExample: curate init && curate run",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
github_app = typer.Typer(help="Read GitHub issues and commits.", no_args_is_help=True)
app.add_typer(github_app, name="github")
dedup_app = typer.Typer(
    help="Look for near-duplicates without running the pipeline.", no_args_is_help=True
)
app.add_typer(dedup_app, name="dedup")
cost_app = typer.Typer(help="What annotation cost, from the ledger.", no_args_is_help=True)
app.add_typer(cost_app, name="cost")
argilla_app = typer.Typer(
    help="Human review in Argilla: the local server, users, sync.", no_args_is_help=True
)
app.add_typer(argilla_app, name="argilla")
users_app = typer.Typer(help="Argilla users and workspaces.", no_args_is_help=True)
argilla_app.add_typer(users_app, name="users")
datasets_app = typer.Typer(help="Exported dataset versions.", no_args_is_help=True)
app.add_typer(datasets_app, name="datasets")
pii_app = typer.Typer(
    help="Look for PII in files without running the pipeline.", no_args_is_help=True
)
app.add_typer(pii_app, name="pii")

console = Console()
err_console = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])

ConfigOption = Annotated[
    Path, typer.Option("--config", "-c", help="Pipeline config file.", show_default=True)
]


def friendly_errors(command: F) -> F:
    """Turn codecurate's own errors into one line on stderr and exit code 2."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except CurateError as e:
            # one line however narrow the terminal; the message is text, not markup
            err_console.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False,
                              soft_wrap=True)  # fmt: skip
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


@app.command()
@friendly_errors
def init(
    path: Annotated[Path, typer.Argument(help="Where to write the config.")] = Path("curate.toml"),
    force: Annotated[bool, typer.Option(help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented curate.toml to start from.

    Example: curate init my-dataset/curate.toml
    """
    if path.exists() and not force:
        raise CurateError(f"{path} exists; pass --force to overwrite it")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(template())
    console.print(f"wrote {path}: edit [ingest.sources], then run: curate run -c {path}")


def print_summary(manifests: list[Manifest], workdir: Path, title: str) -> None:
    """The funnel, failed stages, the reasons and the first quarantined inputs."""
    console.print(stage_table(manifests, title=title))
    tables = (failures_table(read_failures(workdir)), reasons_table(manifests),
              findings_table(manifests), clusters_table(manifests),
              annotation_table(manifests), review_table(manifests),
              quarantine_table(workdir))  # fmt: skip
    for table in tables:
        if table is not None:
            console.print(table)


def _run(config_path: Path, until: str | None, force: list[str]) -> None:
    _run_pipeline(load_config(config_path), until, force)


def _run_pipeline(
    config: PipelineConfig, until: str | None, force: list[str], auto_review: bool = False
) -> None:
    from codecurate.report import write_run_report

    manifests = run_pipeline(
        config, until=until, force=force, console=err_console, auto_review=auto_review
    )
    engine = "" if config.engine.kind == "local" else f", engine {config.engine.kind}"
    print_summary(manifests, config.workdir, f"curate run ({config.workdir}{engine})")
    console.print(f"report: {write_run_report(config)}")


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
    _run_pipeline(pipeline, until, force or [], auto_review)


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
    workdir = load_config(config).workdir
    manifests = read_manifests(workdir)
    if not manifests and not read_failures(workdir):
        console.print(f"{workdir}: no stage has run yet; start with: curate run -c {config}")
        return
    print_summary(manifests, workdir, f"curate status ({workdir})")


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


PathsArgument = Annotated[list[str], typer.Argument(help="Files, folders, or - for stdin.")]
ModeOption = Annotated[str, typer.Option(help="placeholder (<EMAIL>) or pseudonym (<EMAIL_1>).")]
NerOption = Annotated[bool, typer.Option(help="Find PERSON names with spaCy NER.")]


def _pii_engine(mode: str, ner: bool) -> Any:
    from curation.pii import PIIConfig, load_engine

    return load_engine(PIIConfig(mode=mode, ner=ner, workers=1))


@pii_app.command("scan")
@friendly_errors
def pii_scan(paths: PathsArgument, ner: NerOption = True) -> None:
    """List the PII found in files: type, line and a masked preview, never the value.

    Example: curate pii scan src/ notes.md
    """
    from rich.table import Table

    from curation.pii.scan import line_number, mask
    from curation.sources.paths import read_inputs

    engine = _pii_engine("placeholder", ner)  # scanning shows no replacements
    table = Table(title="PII found")
    for column in ("file", "line", "type", "preview", "recognizer"):
        table.add_column(column)
    for name, text, language in read_inputs(paths):
        for f in engine.analyze([text], [language])[0]:
            value = text[f.start : f.end]
            table.add_row(name, str(line_number(text, f.start)), f.type, mask(value), f.recognizer)
    console.print(table if table.row_count else "no PII found")


@pii_app.command("redact")
@friendly_errors
def pii_redact(
    paths: PathsArgument, mode: ModeOption = "placeholder", ner: NerOption = True
) -> None:
    """Print files with their PII replaced, as the pii stage would write them.

    Example: cat issue.md | curate pii redact - --mode pseudonym
    """
    from curation.sources.paths import read_inputs

    engine = _pii_engine(mode, ner)
    inputs = list(read_inputs(paths))
    for name, text, language in inputs:
        clean, _ = engine.redact(text, engine.analyze([text], [language])[0])
        if len(inputs) > 1:
            typer.echo(f"==> {name} <==")
        typer.echo(clean, nl=not clean.endswith("\n"))


@dedup_app.command("scan")
@friendly_errors
def dedup_scan(
    paths: PathsArgument,
    threshold: Annotated[
        float | None,
        typer.Option(help="Jaccard similarity of near-duplicates (default: the stage's)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print clusters as JSON.")] = False,
) -> None:
    """List near-duplicate clusters among files, compared as the dedup stage compares them
    (its defaults: leading licence headers ignored): each member with its Jaccard to the first.

    Example: curate dedup scan src/ vendor/ --threshold 0.85
    """
    from curation.dedup import DedupConfig, check_dependencies
    from curation.sources.paths import read_inputs

    check_dependencies()
    from curation.dedup.minhash import scan_clusters

    config = DedupConfig() if threshold is None else DedupConfig(threshold=threshold)
    names, texts, languages = [], [], []
    for name, text, language in read_inputs(paths):
        names.append(name)
        texts.append(text)
        languages.append(language)
    clusters = scan_clusters(names, texts, config, languages)
    if as_json:
        typer.echo(json.dumps(clusters, indent=2))
        return
    if not clusters:
        console.print(
            f"no near-duplicates among {len(texts)} files at threshold {config.threshold}"
        )
    for number, cluster in enumerate(clusters, start=1):
        console.print(f"cluster {number} ({len(cluster)} files)")
        for member in cluster:
            console.print(f"  {member['jaccard']:.2f}  {member['path']}", highlight=False)


@dedup_app.command("index-benchmark")
@friendly_errors
def dedup_index_benchmark(
    names: Annotated[list[str], typer.Argument(help="Benchmarks to index (humaneval).")],
    out: Annotated[Path, typer.Option(help="Folder for <name>.parquet.")] = Path("indexes"),
    config: ConfigOption = Path("curate.toml"),
) -> None:
    """Write signature indexes of public benchmarks under [dedup]'s settings; list them in
    [dedup].against to drop near-copies as near_duplicate_of:<name> (decontamination).

    Example: curate dedup index-benchmark humaneval --out data/indexes
    """
    from curation.dedup import check_dependencies
    from curation.dedup.benchmarks import build_benchmark_index

    check_dependencies()
    settings = load_config(config).dedup
    for name in names:
        console.print(f"written: {build_benchmark_index(name, out, settings)}")


@app.command()
@friendly_errors
def annotate(
    config: ConfigOption = Path("curate.toml"),
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only estimate the cost; send nothing.")
    ] = False,
    provider: Annotated[
        str | None, typer.Option(help="offline, openai or gemini (default: [annotate].provider).")
    ] = None,
    model: Annotated[str | None, typer.Option(help="Model (default: [annotate].model).")] = None,
    batch: Annotated[bool | None, typer.Option(help="Use the provider's batch API.")] = None,
    limit: Annotated[int | None, typer.Option(help="Annotate at most this many records.")] = None,
    budget: Annotated[float | None, typer.Option(help="Hard cap for this run, in USD.")] = None,
) -> None:
    """Annotate the pipeline's kept records under the budget, or with --dry-run show what that
    would cost: exact prompt tokens per task, a completion range (measured from earlier
    answers in the ledger when there are enough), and the price table's date.

    Example: curate annotate -c curate.toml --dry-run --model gpt-4o-mini --batch
    """
    from annotators.config import AnnotateConfig

    pipeline = load_config(config)
    overrides = {"provider": provider, "model": model, "batch": batch, "limit": limit,
                 "budget_usd": budget}  # fmt: skip
    settings = AnnotateConfig.model_validate(
        pipeline.annotate.model_dump() | {k: v for k, v in overrides.items() if v is not None}
    )
    pipeline = pipeline.model_copy(update={"annotate": settings})
    if "annotate" not in pipeline.stages:
        raise CurateError(f'{config}: add "annotate" to stages to annotate')
    if dry_run:
        before = pipeline.stages[pipeline.stages.index("annotate") - 1]
        manifests = run_pipeline(pipeline, until=before, console=err_console)
        _print_estimate(pipeline.workdir / f"{manifests[-1].tag}.parquet", settings, pipeline)
        return
    _run_pipeline(pipeline, "annotate", [])


def _print_estimate(stage_output: Path, settings: Any, pipeline: PipelineConfig) -> None:
    from annotators.config import load_prices
    from annotators.estimate import estimate, prices_age_warning
    from annotators.ledger import Ledger
    from annotators.report import refined
    from annotators.stage import ledger_path, select_records

    path = ledger_path(settings, pipeline.workdir)
    samples = 0
    if path.exists():
        ledger = Ledger(path)
        try:
            settings, samples = refined(settings, ledger)
        finally:
            ledger.close()
    prices = load_prices(settings.prices)
    chosen = select_records(kept(stage_output), settings).lazy()
    with make_engine(pipeline.engine) as engine:
        result = estimate(chosen, settings, prices, engine)
    console.print(estimate_table(result, settings, prices.as_of, stage_output.stem, samples))
    if not result["exact_tokens"].all():
        console.print(
            f"~ {settings.model} is not an OpenAI model: counted with o200k_base, approximate"
        )
    warning = prices_age_warning(prices.as_of)
    if warning:
        err_console.print(f"[yellow]warning:[/] {warning}")


@cost_app.command("report")
@friendly_errors
def cost_report(
    config: ConfigOption = Path("curate.toml"),
    by: Annotated[str, typer.Option(help="Group spend by run, task, model or day.")] = "run",
    out: Annotated[
        Path | None, typer.Option(help="Folder for cost-report.html/.png (default: workdir).")
    ] = None,
) -> None:
    """What annotation cost: spend by run, task, model or day from the ledger, each run's
    estimate against its actual, and an HTML page with a plot.

    Example: curate cost report -c curate.toml --by day
    """
    from annotators.ledger import Ledger
    from annotators.report import BY, spend, write_report
    from annotators.stage import ledger_path

    if by not in BY:
        raise CurateError(f"--by {by!r}: one of {', '.join(BY)}")
    pipeline = load_config(config)
    path = ledger_path(pipeline.annotate, pipeline.workdir)
    if not path.exists():
        raise CurateError(f"{path}: no ledger yet; annotate first: curate annotate -c {config}")
    ledger = Ledger(path)
    try:
        console.print(spend_table(spend(ledger, by), by))
        page = write_report(ledger, out or pipeline.workdir / "reports")
    finally:
        ledger.close()
    console.print(f"report: {page}")


@app.command()
@friendly_errors
def report(config: ConfigOption = Path("curate.toml")) -> None:
    """Write the run report: one self-contained HTML page (funnel, drop reasons, PII, clusters,
    annotation cost, review, dataset versions) and its PNG plots, under <workdir>/reports/.

    Example: curate report -c curate.toml
    """
    from codecurate.report import write_run_report

    pipeline = load_config(config)
    if not read_manifests(pipeline.workdir):
        raise CurateError(f"{pipeline.workdir}: no stage has run yet; run: curate run -c {config}")
    console.print(f"report: {write_run_report(pipeline)}")


@argilla_app.command("up")
@friendly_errors
def argilla_up(config: ConfigOption = Path("curate.toml")) -> None:
    """Start the local Argilla (the real argilla-server, SQLite, Redis) on 127.0.0.1; the
    first start creates its virtualenv. Reviewers log in at the printed URL.

    Example: curate argilla up -c curate.toml
    """
    from argilla_setup import local_server

    pipeline = load_config(config)
    server = local_server(pipeline.review, pipeline.workdir)
    err_console.print("starting argilla-server (the first start installs it, ~1 min)...")
    state = server.up()
    console.print(f"Argilla is up: {state.url}  (owner key in {server.secrets_path})")
    _print_logins(server.home)


def _print_logins(home: Path) -> None:
    """The local users whose passwords were generated (not the demo's machine reviewer)."""
    from argilla_setup.review import AUTO_REVIEWER

    for path in sorted((home / "passwords").glob("*.password")):
        if path.stem != AUTO_REVIEWER:
            console.print(f"  login: {path.stem} / {path.read_text().strip()}", highlight=False)


@argilla_app.command("down")
@friendly_errors
def argilla_down(config: ConfigOption = Path("curate.toml")) -> None:
    """Stop the local Argilla; its data stays in <workdir>/argilla.

    Example: curate argilla down -c curate.toml
    """
    from argilla_setup import local_server

    pipeline = load_config(config)
    stopped = local_server(pipeline.review, pipeline.workdir).down()
    console.print("Argilla stopped" if stopped else "Argilla was not running")


@argilla_app.command("status")
@friendly_errors
def argilla_status(config: ConfigOption = Path("curate.toml")) -> None:
    """Whether the local Argilla runs, where, and the logins of the roster's local users.

    Example: curate argilla status -c curate.toml
    """
    from argilla_setup import local_server

    pipeline = load_config(config)
    server = local_server(pipeline.review, pipeline.workdir)
    state = server.state()
    if state is None:
        console.print(f"Argilla is not running; start it with: curate argilla up -c {config}")
        raise typer.Exit(1)
    console.print(f"Argilla is up: {state.url}  (data in {server.home})")
    _print_logins(server.home)


@users_app.command("apply")
@friendly_errors
def argilla_users_apply(
    config: ConfigOption = Path("curate.toml"),
    roster: Annotated[
        Path | None, typer.Argument(help="Roster YAML (default: [review].roster).")
    ] = None,
) -> None:
    """Create the roster's workspaces and users (owner, admin, annotator) and their
    memberships; applying again changes nothing. Passwords come from the variables the roster
    names, or are generated into <workdir>/argilla/passwords/. API keys are never printed.

    Example: curate argilla users apply -c curate.toml team.yaml
    """
    from argilla_setup import connect
    from argilla_setup.users import apply_roster, load_roster

    pipeline = load_config(config)
    path = roster or pipeline.review.roster
    if path is None:
        raise CurateError("no roster: pass a YAML file or set [review].roster")
    client = connect(pipeline.review, pipeline.workdir)
    changes = apply_roster(client, load_roster(path), pipeline.workdir / "argilla" / "passwords")
    for change in changes or ["nothing to change"]:
        console.print(change)


@argilla_app.command("sync")
@friendly_errors
def argilla_sync(config: ConfigOption = Path("curate.toml")) -> None:
    """Push new and changed annotations to Argilla and pull every decision so far into the
    review stage's Parquet (review_status, reviewers, final_instruction).

    Example: curate argilla sync -c curate.toml
    """
    pipeline = load_config(config)
    if "review" not in pipeline.stages:
        raise CurateError(f'{config}: add "review" to stages to review in Argilla')
    _run_pipeline(pipeline, "review", ["review"])


@app.command("export")
@friendly_errors
def export_dataset(
    config: ConfigOption = Path("curate.toml"),
    bump: Annotated[str, typer.Option(help="Which part of the version to bump.")] = "minor",
    version: Annotated[
        str | None, typer.Option(help="This exact version instead of a bump.")
    ] = None,
    min_clusters: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="Clusters each split needs at least ([export].min_clusters; "
            "0 lets a small export leave a split empty).",
        ),
    ] = None,
    push: Annotated[
        bool, typer.Option(help="Also upload it to [export].hub_repo, tagged v<version>.")
    ] = False,
) -> None:
    """Export the accepted and corrected records as the next version of the dataset:
    train/validation/test split by near-duplicate cluster (a record keeps its split in every
    later version), Parquet, a dataset card, the lineage and every file's sha256. The latest
    version is verified first; an export identical to it writes nothing.

    Example: curate export -c curate.toml --bump minor
    """
    from codecurate.lineage import lineage
    from finetune.release import export

    if bump not in ("major", "minor", "patch"):
        raise CurateError(f"--bump {bump!r}: one of major, minor, patch")
    pipeline = load_config(config)
    settings = pipeline.export
    if min_clusters is not None:
        settings = settings.model_copy(update={"min_clusters": min_clusters})
    manifests = read_manifests(pipeline.workdir)
    if not manifests or manifests[-1].stage not in ("review", "annotate"):
        raise CurateError(f"nothing reviewed in {pipeline.workdir}: run the pipeline through "
                          "review (curate argilla sync) first")  # fmt: skip
    records = pl.read_parquet(pipeline.workdir / f"{manifests[-1].tag}.parquet")
    run = lineage(records, manifests, config.resolve().parent)
    result = export(records, settings, run, version, bump)  # type: ignore[arg-type]
    state = "exported" if result.created else "unchanged since"
    counts = counts_text(result.counts)
    console.print(f"{state} {result.name}@{result.version}: {counts}\n  {result.folder}")
    if push:
        import os

        from finetune.release import push_to_hub

        if pipeline.export.hub_repo is None:
            raise CurateError("--push needs [export].hub_repo")
        url = push_to_hub(result.folder, pipeline.export.hub_repo, os.environ.get("HF_TOKEN"))
        console.print(f"pushed: {url}")


@app.command()
@friendly_errors
def pull(
    ref: Annotated[str, typer.Argument(help="name@version, or name for the latest.")],
    config: ConfigOption = Path("curate.toml"),
    out: Annotated[
        Path | None,
        typer.Option(
            help="Also save it here for datasets.load_from_disk, with its card and lineage."
        ),
    ] = None,
) -> None:
    """Find a dataset version and verify every file against its sha256 (and copy it for
    load_from_disk with --out); prints how to load it with plain `datasets`.

    Example: curate pull code-instructions@1.1.0 --out /data/ci-1.1.0
    """
    from finetune.release import open_version

    version = open_version(load_config(config).export.root, ref)
    if out is not None:
        from finetune.release import pull as pull_version

        pull_version(version, out)
        console.print(f"saved to {out}: datasets.load_from_disk({str(out)!r})")
    console.print(f"{version.ref} verified: {version.folder}\n"
                  f"  datasets.load_dataset({str(version.folder)!r})")  # fmt: skip


@datasets_app.command("list")
@friendly_errors
def datasets_list(config: ConfigOption = Path("curate.toml")) -> None:
    """Every exported dataset with its versions, counts and dates.

    Example: curate datasets list -c curate.toml
    """
    from finetune.release import dataset_names, read_registry

    root = load_config(config).export.root
    names = dataset_names(root)
    if not names:
        console.print(f"no datasets under {root}; create one with: curate export")
    for name in names:
        for entry in read_registry(root, name):
            counts = counts_text(entry["counts"])
            digest = (entry["content_hash"] or "unknown")[:12]
            console.print(f"{name}@{entry['version']}  {entry['created_at']}  {counts}  "
                          f"sha256 {digest}", highlight=False)  # fmt: skip


@datasets_app.command("show")
@friendly_errors
def datasets_show(
    ref: Annotated[str, typer.Argument(help="name@version, or name for the latest.")],
    config: ConfigOption = Path("curate.toml"),
) -> None:
    """A verified version's counts, parent, diff, review (people and machines), sources and
    settings (its lineage).

    Example: curate datasets show code-instructions@1.0.0
    """
    from finetune.release import describe_version, open_version

    version = open_version(load_config(config).export.root, ref)
    console.print(f"{version.ref}  ({version.folder})", highlight=False)
    for label, value in describe_version(version):
        console.print(f"  {label:16} {value}", highlight=False, markup=False, soft_wrap=True)


@datasets_app.command("diff")
@friendly_errors
def datasets_diff(
    old: Annotated[str, typer.Argument(help="name@version")],
    new: Annotated[str, typer.Argument(help="name@version")],
    config: ConfigOption = Path("curate.toml"),
) -> None:
    """Record by record, what changed between two verified versions: added and removed
    records, instructions before and after, status and split changes, and a summary.

    Example: curate datasets diff code-instructions@1.0.0 code-instructions@1.1.0
    """
    from finetune.release import diff_versions, open_version, render_diff

    root = load_config(config).export.root
    diff = diff_versions(open_version(root, old), open_version(root, new))
    for line in render_diff(diff):
        console.print(line, highlight=False, markup=False, soft_wrap=True)


@app.command()
@friendly_errors
def finetune(
    dataset: Annotated[str, typer.Option(help="name@version of an exported dataset.")],
    config: ConfigOption = Path("curate.toml"),
    model: Annotated[
        str | None, typer.Option(help="Base model: a folder, a Hub id, or smollm2.")
    ] = None,
    settings: Annotated[
        Path | None, typer.Option("--finetune-config", help="finetune.toml (LoRA, steps...).")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Adapter folder.")] = None,
    max_steps: Annotated[int | None, typer.Option(help="Stop after this many steps.")] = None,
    force: Annotated[bool, typer.Option(help="Train again over an existing adapter.")] = False,
) -> None:
    """QLoRA (4-bit NF4 on CUDA) or LoRA (CPU) SFT of a base model on a dataset version;
    writes the adapter, tokenizer, training config, metrics and a model card.

    Example: curate finetune --dataset code-instructions@1.0.0 --model smollm2 --max-steps 50
    """
    import os

    from finetune.release import open_version
    from finetune.train import load_finetune_config, train, trained_already

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    pipeline = load_config(config)
    folder = open_version(pipeline.export.root, dataset).folder
    settings_ = load_finetune_config(settings)
    updates = {k: v for k, v in {"model": model, "max_steps": max_steps}.items() if v is not None}
    settings_ = settings_.model_copy(update=updates)
    target = out or pipeline.workdir / "adapters" / f"{folder.parent.name}-{folder.name}"
    ref = f"{folder.parent.name}@{folder.name}"
    if not force and trained_already(target, settings_, ref):
        console.print(f"adapter exists for {ref} with these settings: {target} (--force retrains)")
        return
    metrics = train(folder, settings_, target, ref).metrics
    loss, speed = metrics["train_loss"], metrics["tokens_per_second"]
    console.print(f"adapter: {target}\n  steps {metrics['steps']}, train loss {loss:.4f}, "
                  f"{speed} tokens/s")  # fmt: skip


@app.command()
@friendly_errors
def evaluate(
    dataset: Annotated[str, typer.Option(help="name@version of an exported dataset.")],
    adapter: Annotated[Path, typer.Option(help="The adapter folder curate finetune wrote.")],
    config: ConfigOption = Path("curate.toml"),
    max_new_tokens: Annotated[int, typer.Option(help="Generation length.")] = 128,
    limit: Annotated[int | None, typer.Option(help="Evaluate at most this many.")] = None,
    judge: Annotated[
        bool,
        typer.Option(
            help="Also ask [annotate]'s provider which answer is better (it costs: "
            "the estimate is shown first, the run is under the budget)."
        ),
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", help="Judge without asking.")] = False,
) -> None:
    """Base model vs adapter on the test split: loss, perplexity, exact match, chrF, the
    Python parse rate and, for SQL/Cypher with a [verify] fixture, execution accuracy;
    written to <adapter>/eval_metrics.json.

    Example: curate evaluate --dataset code-instructions@1.0.0 --adapter adapters/ci-1.0.0
    """
    from finetune.evaluate import evaluate as run_evaluation
    from finetune.release import open_version

    pipeline = load_config(config)
    folder = open_version(pipeline.export.root, dataset).folder
    execute = _fixture_queries(pipeline)
    metrics = run_evaluation(folder, adapter, max_new_tokens=max_new_tokens, limit=limit,
                             execute=execute)  # fmt: skip
    for name, scores in (("base", metrics["base"]), ("adapter", metrics["adapter"])):
        console.print(f"{name:8} " + "  ".join(f"{k} {v}" for k, v in scores.items()))
    if judge:
        metrics["judge"] = _judge(load_config(config), adapter, yes)
        console.print("judge    " + "  ".join(f"{k} {v}" for k, v in metrics["judge"].items()))
        (adapter / "eval_metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    console.print(f"written: {adapter / 'eval_metrics.json'}")


def _fixture_queries(pipeline: PipelineConfig) -> Any:
    """SQL/Cypher execution against `[verify]`'s fixtures, when it names any."""
    if pipeline.verify.sql_fixture is None and pipeline.verify.cypher_fixture is None:
        return None
    from curation.verify.checks import FixtureQueries

    return FixtureQueries(pipeline.verify)


def _judge(pipeline: PipelineConfig, adapter: Path, yes: bool) -> dict[str, Any]:
    """LLM-as-judge over the generations evaluate wrote, after showing what it will cost."""
    from annotators.judge import Pair, estimate_judging, judge, judge_prompts
    from annotators.ledger import Ledger
    from annotators.stage import ledger_path

    settings = pipeline.annotate
    rows = [json.loads(line) for line in (adapter / "generations.jsonl").read_text().splitlines()]
    pairs = [Pair(r["id"], r["instruction"], r["reference"], r["base"], r["adapter"]) for r in rows]
    prompts = judge_prompts(pairs, settings)
    low, expected, high = estimate_judging(prompts, settings)
    console.print(f"judging {len(pairs)} pairs with {settings.annotator}: about {expected:.4f} USD "
                  f"({low:.4f}-{high:.4f}), budget {settings.budget_usd:g}")  # fmt: skip
    if not yes and not typer.confirm("go on?"):
        raise typer.Exit(1)
    ledger = Ledger(ledger_path(settings, pipeline.workdir))
    try:
        return judge(pairs, prompts, settings, ledger)
    finally:
        ledger.close()


def main() -> None:
    app()
