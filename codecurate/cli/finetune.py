"""`curate finetune` and `curate evaluate`: train an adapter on a version and compare it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from codecurate.cli.common import ConfigOption, console, friendly_errors, load_config

if TYPE_CHECKING:
    from codecurate.config import PipelineConfig

app = typer.Typer()


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
