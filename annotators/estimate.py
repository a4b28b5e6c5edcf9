"""Cost before spending: exact prompt tokens, a completion-token range, dated prices."""

from __future__ import annotations

import os
import tomllib
from datetime import date
from importlib.resources import files
from pathlib import Path

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from annotators.tasks import TASK_KINDS, load_task
from annotators.tokens import encoding_for_model
from curation.errors import ConfigError

# OpenAI's chat format: every message costs 3 tokens beyond its content, and the reply is
# primed with 3 more (the count the API reports as prompt_tokens).
TOKENS_PER_MESSAGE = 3
TOKENS_PER_REPLY = 3


class ModelPrice(BaseModel):
    model_config = ConfigDict(extra="forbid")
    input_per_mtok: float = Field(ge=0)
    output_per_mtok: float = Field(ge=0)
    batch_discount: float = Field(default=0.0, ge=0, lt=1)


class PriceTable(BaseModel):
    """A dated table of prices per million tokens."""

    model_config = ConfigDict(extra="forbid")
    as_of: date
    currency: str = "USD"
    models: dict[str, ModelPrice]

    def price(self, model: str) -> ModelPrice:
        if model not in self.models:
            raise ConfigError(
                f"no price for model {model!r} in the price table ({', '.join(self.models)}); "
                "add it to your copy of the table and set [annotate].prices"
            )
        return self.models[model]


def load_prices(path: Path | None = None) -> PriceTable:
    """The price table at `path`, or the one shipped with codecurate."""
    text = path.read_text() if path else files("annotators").joinpath("prices.toml").read_text()
    try:
        return PriceTable.model_validate(tomllib.loads(text))
    except (ValidationError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"price table {path or 'prices.toml'}: {e}") from None


class AnnotateConfig(BaseModel):
    """`[annotate]`: which tasks run on which model, and what completions are expected to cost."""

    model_config = ConfigDict(extra="forbid")
    model: str = "gpt-4o-mini"
    tasks: list[str] = Field(default=["instruction_for_code", "qa_from_issue"])
    # Completion tokens per prompt token: the expected value and a range, to be refined by
    # a sample run (the ledger will supply the measured ratio).
    completion_ratio: float = Field(default=0.1, gt=0)
    completion_range: tuple[float, float] = (0.03, 0.4)
    batch: bool = False  # price at the provider's batch discount
    prices: Path | None = None

    @model_validator(mode="after")
    def _check(self) -> AnnotateConfig:
        unknown = [t for t in self.tasks if t not in TASK_KINDS]
        if unknown:
            raise ConfigError(
                f"annotate.tasks: unknown task {unknown[0]!r}; tasks: {', '.join(TASK_KINDS)}"
            )
        low, high = self.completion_range
        if not low <= self.completion_ratio <= high:
            raise ConfigError("annotate.completion_range must contain annotate.completion_ratio")
        return self


def prompt_tokens(records: pl.DataFrame, task: str, model: str) -> pl.Series:
    """Exact prompt tokens per record as the chat API counts them.

    Messages repeated across records (the system prompt) are encoded once; the rest in one
    batch, with a thread per core (tiktoken's default of 8 was slower on 2 cores).
    """
    encoding, _ = encoding_for_model(model)
    loaded = load_task(task)
    per_record = [[m["content"] for m in loaded.messages(r)] for r in records.iter_rows(named=True)]
    distinct = list(dict.fromkeys(content for contents in per_record for content in contents))
    lengths = dict(zip(distinct, map(len, encoding.encode_ordinary_batch(
        distinct, num_threads=os.cpu_count() or 1)), strict=True))  # fmt: skip
    return pl.Series(
        "prompt_tokens",
        [sum(lengths[c] + TOKENS_PER_MESSAGE for c in contents) + TOKENS_PER_REPLY
         for contents in per_record],
        dtype=pl.Int64,
    )  # fmt: skip


def estimate(
    records: pl.LazyFrame, config: AnnotateConfig, prices: PriceTable | None = None
) -> pl.DataFrame:
    """Per task: records, exact prompt tokens, completion tokens and cost (low, expected, high)."""
    price = (prices or load_prices(config.prices)).price(config.model)
    discount = 1 - price.batch_discount if config.batch else 1.0
    _, exact = encoding_for_model(config.model)
    rows = []
    for task in config.tasks:
        chosen = records.filter(pl.col("kind") == TASK_KINDS[task]).collect()
        prompt = int(prompt_tokens(chosen, task, config.model).sum()) if chosen.height else 0
        row = {"task": task, "model": config.model, "records": chosen.height,
               "prompt_tokens": prompt, "exact_tokens": exact}  # fmt: skip
        low, high = config.completion_range
        for label, ratio in (("low", low), ("expected", config.completion_ratio), ("high", high)):
            completion = round(prompt * ratio)
            cost = (prompt * price.input_per_mtok + completion * price.output_per_mtok) / 1e6
            row[f"completion_tokens_{label}"] = completion
            row[f"cost_{label}"] = round(cost * discount, 6)
        rows.append(row)
    return pl.DataFrame(rows)


def prices_age_warning(as_of: date, today: date | None = None) -> str | None:
    """A warning when a price table dated `as_of` is more than 90 days old."""
    age = ((today or date.today()) - as_of).days
    if age > 90:
        return f"prices are from {as_of} ({age} days ago): check them and edit your price table"
    return None
