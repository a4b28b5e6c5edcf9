"""The annotate stage: instructions for the kept records, written by the configured provider
under the budget, with every request booked in the ledger."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any, ClassVar

import polars as pl

from annotators.budget import Budget
from annotators.config import FREE, AnnotateConfig, load_prices
from annotators.estimate import cost_range, prompt_tokens
from annotators.judge import instruction_judge_prompts, judge_scores
from annotators.ledger import Ledger, new_run_id
from annotators.providers import Prompt, make_provider, resolve_protocol
from annotators.quality import duplicated, quality_flags
from annotators.replies import replies_to_keep
from annotators.runner import AnnotationRunner, Outcome, cache_key, params_of
from annotators.tasks import TASK_KINDS, load_task
from curation.runner import Stage, StageContext, package_version

LEDGER_NAME = "annotations.sqlite"
ANNOTATION_COLUMNS = {
    "instruction": pl.String, "response": pl.String, "task": pl.String,
    "annotator": pl.String, "prompt_tokens": pl.Int64, "completion_tokens": pl.Int64,
    "cost_usd": pl.Float64, "quality_flags": pl.List(pl.String), "judge_score": pl.Float64,
}  # fmt: skip
# outcomes that are the provider's or the input's fault, set aside with their reason
QUARANTINED = ("failed", "malformed", "rate_limited", "server_error", "timeout",
               "connection_error", "empty_reply")  # fmt: skip


def ledger_path(config: AnnotateConfig, workdir: Path) -> Path:
    return config.ledger or workdir / LEDGER_NAME


def select_records(records: pl.LazyFrame, config: AnnotateConfig) -> pl.DataFrame:
    """The records the configured tasks read: one per near-duplicate cluster, by id order,
    at most `limit`."""
    kinds = [TASK_KINDS[task] for task in config.tasks]
    chosen = (
        records.filter(pl.col("kind").is_in(kinds), pl.col("is_cluster_rep").fill_null(True))
        .sort("id")
        .collect()
    )
    return chosen.head(config.limit) if config.limit else chosen


def build_prompts(records: pl.DataFrame, config: AnnotateConfig) -> list[Prompt]:
    """One prompt per record, its tokens counted exactly and its cache key computed, in the
    messages of the config's answer protocol (`auto` is resolved first)."""
    config = resolve_protocol(config)
    params = params_of(config)
    prompts = []
    for task_name in config.tasks:
        task = load_task(task_name)
        chosen = records.filter(pl.col("kind") == task.kind)
        tokens = (
            prompt_tokens(chosen, task_name, config.model, config.protocol) if chosen.height else []
        )
        for row, count in zip(chosen.iter_rows(named=True), tokens, strict=True):
            messages = task.messages(row, config.protocol)
            key = cache_key(config.provider, config.model, messages, params)
            record = {k: row[k] for k in ("content_clean", "language", "path", "source")}
            prompts.append(Prompt(key, row["id"], task_name, messages, int(count), record))
    return prompts


class AnnotateStage(Stage):
    """Annotates the kept records; a rerun after a crash pays for nothing twice (the ledger's
    cache), and the budget stops the run before a request that could cross it."""

    name: ClassVar[str] = "annotate"
    code: ClassVar[tuple[str, ...]] = ("annotators",)

    def __init__(self, config: AnnotateConfig, workdir: Path) -> None:
        self.config = config
        self.ledger_path = ledger_path(config, workdir)

    def versions(self) -> dict[str, str]:
        names = {"openai": "openai", "gemini": "google-genai", "offline": "codecurate"}
        return {"tiktoken": package_version("tiktoken"),
                self.config.provider: package_version(names[self.config.provider])}  # fmt: skip

    def run(self, records: pl.LazyFrame | None, ctx: StageContext) -> pl.DataFrame:
        assert records is not None, "annotate reads the records of the stage before"
        config = resolve_protocol(self.config)
        prompts = build_prompts(select_records(records, config), config)
        price = (
            FREE if config.provider == "offline" else load_prices(config.prices).price(config.model)
        )
        ledger = Ledger(self.ledger_path)
        run_id = new_run_id()
        try:
            budget = Budget(config.budget_usd, config.dataset_budget_usd,
                            ledger.dataset_spent(config.dataset))  # fmt: skip
            provider, model = config.annotator.split(":", 1)
            ledger.start_run(
                run_id, dataset=config.dataset, provider=provider, model=model,
                mode="batch" if config.batch else "online", records=len(prompts),
                budget_usd=config.budget_usd,
                # what this run should spend: answers already in the cache cost nothing
                estimate=cost_range(sum(p.prompt_tokens for p in prompts
                                        if ledger.cached(p.key) is None), config, price),
            )  # fmt: skip
            with ctx.progress(f"annotate ({config.annotator})", len(prompts)) as advance:
                runner = AnnotationRunner(make_provider(config), config, price, ledger, budget,
                                          run_id, on_done=lambda _: advance())  # fmt: skip
                outcomes, verdicts = asyncio.run(self._annotate(runner, prompts))
            ledger.finish_run(run_id, "stopped" if runner.stopped else "finished")
            by_id = {p.record_id: p for p in prompts}
            annotations = self._annotations(outcomes, by_id, judge_scores(verdicts))
            flags = dict(zip(annotations["id"], annotations["quality_flags"].to_list(),
                             strict=True))  # fmt: skip
            ledger.keep_replies(run_id, replies_to_keep(outcomes, by_id, flags))
        finally:
            ledger.close()
        for outcome in outcomes:
            if outcome.status in QUARANTINED:
                record = by_id[outcome.record_id].record
                ctx.quarantine(f"annotation_{outcome.status}", source=record["source"],
                               path=record["path"], record_id=outcome.record_id,
                               detail=outcome.error)  # fmt: skip
        ctx.extra.update(self._summary(run_id, config, outcomes, budget, runner.stopped))
        return records.collect().update(annotations, on="id", how="left", include_nulls=False)

    @staticmethod
    async def _annotate(
        runner: AnnotationRunner, prompts: list[Prompt]
    ) -> tuple[list[Outcome], list[Outcome]]:
        """The annotations, then (with `annotate.judge`) the judge's verdicts on them, sent
        through the same runner: the same budget, limits and ledger."""
        try:
            outcomes = await runner.run(prompts)
            if not runner.config.judge:
                return outcomes, []
            runner.on_done = None  # the progress bar counts records, not verdicts
            by_id = {p.record_id: p for p in prompts}
            judged = instruction_judge_prompts(outcomes, by_id, runner.config)
            return outcomes, await runner.run_online(judged)
        finally:
            await runner.provider.aclose()

    def _annotations(
        self, outcomes: list[Outcome], prompts: dict[str, Prompt], scores: dict[str, float]
    ) -> pl.DataFrame:
        """The annotation columns of every answered record, each with its quality flags and
        the judge's score; `duplicate_instruction` is decided here, over all of them."""
        rows = []
        for outcome in outcomes:
            if outcome.answer is None:
                continue
            prompt = prompts[outcome.record_id]
            instruction, response = load_task(outcome.task).columns(outcome.answer, prompt.record)
            is_code = outcome.task == "instruction_for_code"
            code = prompt.record["content_clean"] if is_code else None
            rows.append({
                "id": outcome.record_id, "instruction": instruction, "response": response,
                "task": outcome.task, "annotator": self.config.annotator,
                "prompt_tokens": outcome.prompt_tokens,
                "completion_tokens": outcome.completion_tokens, "cost_usd": outcome.cost_usd,
                "quality_flags": quality_flags(instruction, None if is_code else response, code,
                                               prompt.record["language"], prompt.record["path"]),
                "judge_score": scores.get(outcome.record_id),
            })  # fmt: skip
            if scores.get(outcome.record_id, 5) < self.config.judge_min_score:
                rows[-1]["quality_flags"].append("judge_rejects")
        frame = pl.DataFrame(rows, schema={"id": pl.String, **ANNOTATION_COLUMNS})
        return frame.with_columns(
            quality_flags=pl.when(duplicated(pl.col("instruction")))
            .then(pl.col("quality_flags").list.concat(pl.lit(["duplicate_instruction"])))
            .otherwise(pl.col("quality_flags"))
        )

    def _summary(
        self, run_id: str, config: AnnotateConfig, outcomes: list[Outcome], budget: Budget,
        stopped: str | None,
    ) -> dict[str, Any]:  # fmt: skip
        statuses = Counter(outcome.status for outcome in outcomes)
        return {
            "run_id": run_id,
            "annotator": self.config.annotator,
            "protocol": config.protocol,
            "prompt_hashes": {task: load_task(task).prompt_hash for task in self.config.tasks},
            "ledger": str(self.ledger_path),
            "statuses": dict(sorted(statuses.items())),
            "annotated": sum(outcome.answer is not None for outcome in outcomes),
            "spent_usd": round(budget.spent, 9),
            "budget_usd": self.config.budget_usd,
            "stopped": stopped,
            "prompt_tokens": sum(outcome.prompt_tokens for outcome in outcomes),
            "completion_tokens": sum(outcome.completion_tokens for outcome in outcomes),
        }
