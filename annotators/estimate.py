"""Cost before spending: exact prompt tokens, a completion-token range, dated prices."""

from __future__ import annotations

import os
from datetime import date

import polars as pl

from annotators.config import AnnotateConfig, ModelPrice, PriceTable, load_prices
from annotators.providers import resolve_protocol
from annotators.tasks import TASK_KINDS, load_task
from annotators.tokens import chat_overhead, count_tokens, encoding_for_model
from curation.engines import BatchFunction, Engine, LocalEngine

ESTIMATE_BATCH = 5_000  # records per batch an engine worker counts


def chat_tokens(messages: list[dict[str, str]], model: str) -> int:
    """Prompt tokens of one chat request as the API counts them."""
    contents = [m["content"] for m in messages]
    per_message, per_reply = chat_overhead(model)
    return sum(n + per_message for n in count_tokens(contents, model)) + per_reply


def prompt_tokens(records: pl.DataFrame, task: str, model: str, protocol: str) -> pl.Series:
    """Exact prompt tokens per record as the chat API counts them, with the messages that
    the answer `protocol` sends.

    Messages repeated across records (the system prompt) are encoded once; the rest in one
    batch, with a thread per core (tiktoken's default of 8 was slower on 2 cores).
    """
    encoding, _ = encoding_for_model(model)
    per_message, per_reply = chat_overhead(model)
    loaded = load_task(task)
    per_record = [
        [m["content"] for m in loaded.messages(r, protocol)] for r in records.iter_rows(named=True)
    ]
    distinct = list(dict.fromkeys(content for contents in per_record for content in contents))
    lengths = dict(zip(distinct, map(len, encoding.encode_ordinary_batch(
        distinct, num_threads=os.cpu_count() or 1)), strict=True))  # fmt: skip
    return pl.Series(
        "prompt_tokens",
        [sum(lengths[c] + per_message for c in contents) + per_reply for contents in per_record],
        dtype=pl.Int64,
    )  # fmt: skip


def cost_range(
    prompt_tokens: int, config: AnnotateConfig, price: ModelPrice
) -> tuple[float, float, float]:
    """Cost of `prompt_tokens` with completions at the low, expected and high ratio."""
    low, high = config.completion_range
    return tuple(  # type: ignore[return-value]
        price.cost(prompt_tokens, round(prompt_tokens * ratio), batch=config.batch)
        for ratio in (low, config.completion_ratio, high)
    )


class PromptTokens(BatchFunction):
    """Prompt tokens per record of a batch for one task; the encoding loads once per worker."""

    def __init__(self, task: str, model: str, protocol: str) -> None:
        self.task = task
        self.model = model
        self.protocol = protocol

    def setup(self) -> None:
        encoding_for_model(self.model)

    def __call__(self, batch: pl.DataFrame) -> pl.DataFrame:
        return prompt_tokens(batch, self.task, self.model, self.protocol).to_frame()


def estimate(
    records: pl.LazyFrame,
    config: AnnotateConfig,
    prices: PriceTable | None = None,
    engine: Engine | None = None,
) -> pl.DataFrame:
    """Per task: records, exact prompt tokens, completion tokens and cost (low, expected, high).

    Tokens are counted on `engine` (default: this process, where tiktoken uses every core),
    for the messages of the protocol the run will use.
    """
    config = resolve_protocol(config)
    price = (prices or load_prices(config.prices)).price(config.model)
    _, exact = encoding_for_model(config.model)
    engine = engine or LocalEngine(workers=1)
    rows = []
    for task in config.tasks:
        chosen = records.filter(pl.col("kind") == TASK_KINDS[task])
        counts = engine.map_batches(
            chosen, PromptTokens(task, config.model, config.protocol), batch_size=ESTIMATE_BATCH
        )
        prompt = sum(int(batch["prompt_tokens"].sum()) for batch in counts)
        row = {"task": task, "model": config.model,
               "records": chosen.select(pl.len()).collect().item(),
               "prompt_tokens": prompt, "exact_tokens": exact}  # fmt: skip
        costs = cost_range(prompt, config, price)
        for label, cost in zip(("low", "expected", "high"), costs, strict=True):
            row[f"cost_{label}"] = round(cost, 6)
        rows.append(row)
    return pl.DataFrame(rows)


def prices_age_warning(as_of: date, today: date | None = None) -> str | None:
    """A warning when a price table dated `as_of` is more than 90 days old."""
    age = ((today or date.today()) - as_of).days
    if age > 90:
        return f"prices are from {as_of} ({age} days ago): check them and edit your price table"
    return None
