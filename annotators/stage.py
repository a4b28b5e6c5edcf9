"""The annotate stage: instructions for the kept records, written by the configured provider
under the budget, with every request booked in the ledger.

The stage runs part by part. Each input part's summary is its records that the tasks read,
with the columns their prompts need; the plan annotates them all in this process (one
budget, ledger and job for the run), and each part joins its own annotations on a worker.
A part whose annotations did not change is kept as it was.

A run is not done while records failed, came back malformed, did not fit the budget or were
never sent: the next run of the pipeline runs the stage again, and only those records cost
anything (the others come from the ledger's cache). All runs over the same records are one
job, whose spend `budget_usd` caps: a resumed run gets what is left, never a fresh cap.
"""

from __future__ import annotations

import asyncio
import hashlib
import signal
from collections import Counter
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

import polars as pl

from annotators.budget import Budget
from annotators.config import FREE, AnnotateConfig, ModelPrice, load_prices
from annotators.estimate import ESTIMATE_BATCH, cost_range, margin, prompt_limit
from annotators.judge import instruction_judge_prompts, judge_scores
from annotators.ledger import Ledger, new_run_id
from annotators.limits import Clock
from annotators.prepare import (
    CODE_TASK,
    PREPARED_SCHEMA,
    PreparedPrompts,
    answer_flags,
    prompts_of,
)
from annotators.providers import Prompt, make_provider, resolve_protocol
from annotators.providers.offline import PREPARED
from annotators.quality import duplicated
from annotators.replies import replies_to_keep
from annotators.report import refined
from annotators.runner import AnnotationRunner, Interrupted, Outcome, ProviderRefused
from annotators.tasks import TASK_KINDS, load_task, task_kind
from curation.engines import Engine
from curation.engines.base import mapped_with_errors, set_aside_errors
from curation.runner import Manifest, Stage, StageContext, package_version

LEDGER_NAME = "annotations.sqlite"
ANNOTATION_COLUMNS = {
    "instruction": pl.String, "response": pl.String, "task": pl.String,
    "annotator": pl.String, "prompt_tokens": pl.Int64, "completion_tokens": pl.Int64,
    "cost_usd": pl.Float64, "quality_flags": pl.List(pl.String), "judge_score": pl.Float64,
}  # fmt: skip
ANNOTATIONS_SCHEMA = {"id": pl.String, **ANNOTATION_COLUMNS}
# What a prompt and its outcome read of a record (Task.messages, Prompt.record, task_kind).
PROMPT_COLUMNS = ("id", "kind", "instruction", "content_clean", "language", "path", "source")
# Outcomes a rerun would only repeat: answers (cached), records the offline annotator has
# nothing to say about, prompts over the limit. Every other record is retried by the next run.
DONE = ("ok", "cached", "skipped", "prompt_too_long")
# Outcomes set aside in the quarantine with their reason: all but answers, records the
# offline annotator skips, and records only waiting for budget or a rerun.
NOT_QUARANTINED = ("ok", "cached", "skipped", "over_budget", "not_sent", "batch_pending")


def ledger_path(config: AnnotateConfig, workdir: Path) -> Path:
    return config.ledger or workdir / LEDGER_NAME


def read_by_tasks(records: pl.LazyFrame, config: AnnotateConfig) -> pl.LazyFrame:
    """The records the configured tasks read (one per near-duplicate cluster), with only the
    columns their prompts need."""
    kinds = [TASK_KINDS[task] for task in config.tasks]
    return records.filter(
        task_kind().is_in(kinds), pl.col("is_cluster_rep").fill_null(True)
    ).select(PROMPT_COLUMNS)


def select_records(records: pl.LazyFrame, config: AnnotateConfig) -> pl.DataFrame:
    """The records the configured tasks read: one per near-duplicate cluster, by id order,
    at most `limit`."""
    return first_by_id(read_by_tasks(records, config), config.limit)


def first_by_id(records: pl.LazyFrame, limit: int | None) -> pl.DataFrame:
    """The records in id order, at most `limit` of them (a run with a limit annotates the
    first ones)."""
    ordered = records.sort("id")
    return (ordered.head(limit) if limit else ordered).collect()


def given_pairs(records: pl.LazyFrame) -> int:
    """Pairs left out of annotation because their dataset gave the instruction."""
    given = (pl.col("kind") == "pair") & pl.col("instruction").is_not_null()
    return (
        records.filter(given, pl.col("is_cluster_rep").fill_null(True))
        .select(pl.len())
        .collect()
        .item()
    )


def job_key(dataset: str, prompts: list[Prompt]) -> str:
    """What makes runs one job: the same requests (each prompt's cache key: provider, model,
    messages, parameters) for the same dataset, whatever their budget or speed settings."""
    digest = hashlib.sha256(dataset.encode())
    for key in sorted(prompt.key for prompt in prompts):
        digest.update(key.encode())
    return digest.hexdigest()


def over_limit(prompts: list[Prompt], config: AnnotateConfig, price: ModelPrice) -> list[Outcome]:
    """A `prompt_too_long` outcome for each prompt over the prompt limit."""
    limit = prompt_limit(config, price)
    if limit is None:
        return []
    factor = margin(config.model)
    note = "" if factor == 1 else f" ({factor:g}x: counted with a borrowed tokenizer)"
    return [
        Outcome(p.record_id, p.task, "prompt_too_long", error=f"prompt of {p.prompt_tokens:,} "
                f"tokens{note} is over the {limit:,} allowed (max_prompt_tokens)")
        for p in prompts if round(p.prompt_tokens * factor) > limit
    ]  # fmt: skip


class AnnotateStage(Stage):
    """Annotates the kept records; a rerun after a crash pays for nothing twice (the ledger's
    cache), and the budget stops the run before a request that could cross it."""

    name: ClassVar[str] = "annotate"
    per_part: ClassVar[bool] = True
    planned: ClassVar[bool] = True

    def __init__(self, config: AnnotateConfig, workdir: Path, clock: Clock | None = None) -> None:
        self.config = config
        self.ledger_path = ledger_path(config, workdir)
        self.clock = clock  # the runner's waits; tests pass one that records them

    def versions(self) -> dict[str, str]:
        names = {"openai": "openai", "gemini": "google-genai", "offline": "codecurate"}
        return {"tiktoken": package_version("tiktoken"),
                self.config.provider: package_version(names[self.config.provider])}  # fmt: skip

    def finished(self, manifest: Manifest) -> bool:
        """Records left to retry make the runner run the stage again."""
        return not manifest.extra.get("to_retry")

    @cached_property
    def resolved(self) -> AnnotateConfig:
        """The config with its answer protocol resolved (a compatible server is asked once,
        in the process that plans; the workers' copies of the stage carry the answer)."""
        return resolve_protocol(self.config)

    def summary_config(self) -> Any:
        """What a part's prepared prompts depend on besides its records and the code."""
        config = self.resolved
        return {
            "tasks": config.tasks, "provider": config.provider, "model": config.model,
            "protocol": config.protocol, "max_tokens": config.max_tokens,
            "temperature": config.temperature, "tiktoken": package_version("tiktoken"),
            "prompt_hashes": [load_task(task).prompt_hash for task in config.tasks],
        }  # fmt: skip

    def summarize(self, records: pl.LazyFrame, source: Path, engine: Engine) -> pl.DataFrame:
        """The part's prepared prompts (`annotators.prepare`, on `engine`): all the plan sees
        of a part. A record that raises while it is prepared is a row with its error, which
        the plan sets aside."""
        return mapped_with_errors(
            engine, read_by_tasks(records, self.config), PreparedPrompts(self.resolved),
            PREPARED_SCHEMA, batch_size=ESTIMATE_BATCH,
        )  # fmt: skip

    def plan(self, summaries: list[Path], ctx: StageContext) -> list[pl.DataFrame]:
        """Annotate the chosen records of every part: per part, the annotations of its
        records, by id (only parts whose annotations changed are joined again)."""
        prepared = pl.concat(
            pl.scan_parquet(summary).with_columns(part=pl.lit(index, pl.Int64))
            for index, summary in enumerate(summaries)
        )
        chosen = self._chosen(prepared, ctx)
        annotations = self._annotated(chosen.drop("part"), ctx).join(
            chosen.select("id", "part"), on="id"
        )
        in_part = annotations.sort("id").partition_by("part", as_dict=True, include_key=False)
        none = annotations.drop("part").clear()
        return [in_part.get((index,), none) for index in range(len(summaries))]

    def run(self, records: pl.LazyFrame | None, ctx: StageContext) -> pl.DataFrame:
        """The records with their annotations: the plan's for this part, or (run on its own,
        with no plan) those of annotating them here. A code task's response is the record's
        own code."""
        assert records is not None, "annotate reads the records of the stage before"
        annotations = ctx.plan
        if annotations is None:
            prepared = self.summarize(records, ctx.input_path, ctx.engine).lazy()
            annotations = self._annotated(self._chosen(prepared, ctx), ctx)
        ctx.extra["not_annotated"] = {"instruction_given": given_pairs(records)}
        return (
            records.collect()
            .update(annotations, on="id", how="left", include_nulls=False)
            .with_columns(
                response=pl.when(pl.col("task") == CODE_TASK)
                .then(pl.col("content_clean"))
                .otherwise(pl.col("response"))
            )
        )

    def _chosen(self, prepared: pl.LazyFrame, ctx: StageContext) -> pl.DataFrame:
        """The prepared prompts to annotate, in id order, at most `limit`; the records that
        raised while they were prepared are set aside in `ctx`."""
        ready = set_aside_errors(prepared, ctx.record_failed)
        return first_by_id(ready, self.config.limit)

    def _annotated(self, chosen: pl.DataFrame, ctx: StageContext) -> pl.DataFrame:
        """Annotate the chosen prepared prompts (in id order) under the budget, booking every
        request in the ledger: the annotation columns of those answered. Records that failed
        are quarantined in `ctx`, and what the run did goes to its `extra`."""
        config = self.resolved
        free = config.provider == "offline"
        price = FREE if free else load_prices(config.prices).price(config.model)
        prompts = prompts_of(chosen)
        skipped = over_limit(prompts, config, price)
        long_ids = {outcome.record_id for outcome in skipped}
        sendable = [p for p in prompts if p.record_id not in long_ids]
        ledger = Ledger(self.ledger_path)
        run_id = new_run_id()
        try:
            ledger.mark_killed_runs()
            job = job_key(config.dataset, prompts)
            budget = Budget(
                config.budget_usd, config.dataset_budget_usd,
                dataset_spent=ledger.dataset_spent(config.dataset), run_spent=ledger.job_spent(job),
            )  # fmt: skip
            provider, model = config.annotator.split(":", 1)
            ledger.start_run(
                run_id, dataset=config.dataset, provider=provider, model=model,
                mode="batch" if config.batch else "online", records=len(prompts),
                budget_usd=config.budget_usd, job=job,
                estimate=self._estimate(sendable, ledger, price),
            )  # fmt: skip
            try:
                with ctx.progress(f"annotate ({config.annotator})", len(sendable)) as advance:
                    runner = AnnotationRunner(make_provider(config), config, price, ledger,
                                              budget, run_id, on_done=lambda _: advance(),
                                              clock=self.clock)  # fmt: skip
                    outcomes, verdicts = asyncio.run(self._annotate(runner, sendable))
            except BaseException:
                ledger.finish_run(run_id, "failed")
                raise
            ledger.finish_run(run_id, runner.end_status())
            by_id = {p.record_id: p for p in prompts}
            annotations = self._annotations(outcomes, by_id, judge_scores(verdicts))
            flags = dict(zip(annotations["id"], annotations["quality_flags"].to_list(),
                             strict=True))  # fmt: skip
            ledger.keep_replies(run_id, replies_to_keep(outcomes, by_id, flags, ctx.engine))
        finally:
            ledger.close()
        self._raise_if_halted(runner, outcomes, len(sendable))
        outcomes += skipped
        for outcome in outcomes:
            if outcome.status not in NOT_QUARANTINED:
                record = by_id[outcome.record_id].record
                reason = "stage_error" if outcome.status == "stage_error" else (
                    f"annotation_{outcome.status}"
                )  # fmt: skip
                ctx.quarantine(reason, source=record["source"],
                               path=record["path"], record_id=outcome.record_id,
                               detail=outcome.error)  # fmt: skip
        ctx.extra.update(self._summary(run_id, config, outcomes, budget, runner.stopped))
        return annotations

    def _estimate(
        self, prompts: list[Prompt], ledger: Ledger, price: ModelPrice
    ) -> tuple[float, float, float]:
        """What this run should spend (low, expected, high): answers already in the cache
        cost nothing; completion and re-ask rates measured from the ledger where it can."""
        config, _ = refined(self.config, ledger)
        total = [0.0, 0.0, 0.0]
        for task in config.tasks:
            tokens = [p.prompt_tokens for p in prompts
                      if p.task == task and ledger.cached(p.key) is None]  # fmt: skip
            for i, cost in enumerate(cost_range(tokens, task, config, price)):
                total[i] += cost
        return total[0], total[1], total[2]

    def _raise_if_halted(
        self, runner: AnnotationRunner, outcomes: list[Outcome], sent: int
    ) -> None:
        """A run stopped by a signal or by the provider's refusals ends the pipeline with the
        reason; everything paid for is in the ledger and its cache."""
        resume = "Rerun to resume: answered records come from the ledger's cache."
        annotated = sum(outcome.answer is not None for outcome in outcomes)
        if runner.interrupted is not None:
            name = signal.Signals(runner.interrupted).name
            done = f"{annotated} of {sent} records annotated. {resume}"
            if runner.aborted:
                message = (
                    f"annotation aborted by a second {name}: {runner.abandoned} requests in "
                    "flight were abandoned and booked at their worst case (they may have been "
                    f"billed); {done}"
                )
            else:
                message = (
                    f"annotation interrupted by {name} once the requests in flight had "
                    f"settled: {done}"
                )
            raise Interrupted(message, runner.interrupted)
        if runner.refused is not None:
            variable = self.config.key_variable()
            key = f"the API key in {variable}" if variable else "the API key"
            raise ProviderRefused(
                f"annotation stopped: {self.config.provider} refused the requests "
                f"({runner.refused}). Check {key}, the model's permissions and the account's "
                f"quota; nothing more was sent. {resume}"
            )

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
            record = prompts[outcome.record_id].record
            instruction, response = load_task(outcome.task).columns(outcome.answer, record)
            flags = (
                list(record["quality_flags"]) if PREPARED in record
                else answer_flags(outcome.task, outcome.answer, record)
            )  # fmt: skip
            rows.append({
                "id": outcome.record_id, "instruction": instruction,
                # the code task's is the record's code, which its part fills in (see run)
                "response": None if outcome.task == CODE_TASK else response,
                "task": outcome.task, "annotator": self.config.annotator,
                "prompt_tokens": outcome.prompt_tokens,
                "completion_tokens": outcome.completion_tokens, "cost_usd": outcome.cost_usd,
                "quality_flags": flags, "judge_score": scores.get(outcome.record_id),
            })  # fmt: skip
            if scores.get(outcome.record_id, 5) < self.config.judge_min_score:
                rows[-1]["quality_flags"].append("judge_rejects")
        frame = pl.DataFrame(rows, schema=ANNOTATIONS_SCHEMA)
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
            # with the earlier runs of this job: what budget_usd caps
            "job_spent_usd": round(budget.run_spent_before + budget.spent, 9),
            "budget_usd": self.config.budget_usd,
            "stopped": stopped,
            "to_retry": sum(outcome.status not in DONE for outcome in outcomes),
            "prompt_tokens": sum(outcome.prompt_tokens for outcome in outcomes),
            "completion_tokens": sum(outcome.completion_tokens for outcome in outcomes),
        }
