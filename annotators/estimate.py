"""Cost before spending: exact prompt tokens, a completion-token range capped at `max_tokens`,
the answers asked for again, dated prices."""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import date
from functools import cache

import polars as pl

from annotators.config import AnnotateConfig, ModelPrice, PriceTable, load_prices
from annotators.providers import resolve_protocol
from annotators.tasks import TASK_KINDS, load_task, task_kind
from annotators.tokens import (
    TOKENS_PER_NAME,
    TOKENS_PER_REPLY,
    chat_overhead,
    count_tokens,
    encoding_for_model,
    model_folder,
)
from curation.engines import BatchFunction, Engine, LocalEngine
from curation.errors import ConfigError

ESTIMATE_BATCH = 5_000  # records per batch an engine worker counts
# Prompt tokens counted with a borrowed encoding (Gemini, local models) are taken with this
# margin, so that a model that counts more tokens still cannot cross a cap or its context.
INEXACT_MARGIN = 1.25
# What a typical malformed answer is told when it is asked for again, to size that request.
REASK_ERROR = "not JSON: Expecting value at char 0"


def _billed_texts(messages: list[dict[str, str]], model: str) -> list[str]:
    """The texts of a chat that count as tokens: OpenAI bills each message's role, content
    and name (its cookbook); a local model's chat template renders the roles itself, which
    its per-message overhead holds."""
    if model_folder(model) is not None:
        return [message["content"] for message in messages]
    return [value for message in messages for value in message.values()]


def _overhead(messages: list[dict[str, str]], model: str) -> int:
    per_message, per_reply = chat_overhead(model)
    names = sum("name" in message for message in messages)
    return per_message * len(messages) + TOKENS_PER_NAME * names + per_reply


def chat_tokens(messages: list[dict[str, str]], model: str) -> int:
    """Prompt tokens of one chat request as the API counts them."""
    return sum(count_tokens(_billed_texts(messages, model), model)) + _overhead(messages, model)


def prompt_tokens(records: pl.DataFrame, task: str, model: str, protocol: str) -> pl.Series:
    """Exact prompt tokens per record as the chat API counts them, with the messages that
    the answer `protocol` sends.

    Texts repeated across records (the system prompt, the roles) are encoded once; the rest
    in one batch, with a thread per core (tiktoken's default of 8 was slower on 2 cores).
    """
    encoding, _ = encoding_for_model(model)
    loaded = load_task(task)
    per_record = [loaded.messages(r, protocol) for r in records.iter_rows(named=True)]
    distinct = list(dict.fromkeys(t for m in per_record for t in _billed_texts(m, model)))
    lengths = dict(zip(distinct, map(len, encoding.encode_ordinary_batch(
        distinct, num_threads=os.cpu_count() or 1)), strict=True))  # fmt: skip
    return pl.Series(
        "prompt_tokens",
        [
            sum(lengths[t] for t in _billed_texts(m, model)) + _overhead(m, model)
            for m in per_record
        ],
        dtype=pl.Int64,
    )


@cache
def reask_tokens(task: str, model: str, protocol: str) -> int:
    """Prompt tokens a request that asks again adds to the first one's, besides the bad answer
    itself: the assistant turn and the request to fix it."""
    added = load_task(task).retry_messages([], "", REASK_ERROR, protocol)
    return chat_tokens(added, model) - TOKENS_PER_REPLY


def prompt_limit(config: AnnotateConfig, price: ModelPrice) -> int | None:
    """The most prompt tokens a request may have: `max_prompt_tokens`, else the model's
    context less `max_tokens`; None where neither is known (and for the offline annotator)."""
    if config.provider == "offline":
        return None
    if config.max_prompt_tokens is not None:
        return config.max_prompt_tokens
    if price.context_tokens is None:
        return None
    limit = price.context_tokens - config.max_tokens
    if limit < 1:
        raise ConfigError(
            f"annotate.max_tokens = {config.max_tokens} leaves no room for a prompt in the "
            f"{price.context_tokens:,}-token context of {config.model}"
        )
    return limit


def margin(model: str) -> float:
    """1 for counts that are exact for `model`, INEXACT_MARGIN for borrowed ones."""
    return 1.0 if encoding_for_model(model)[1] else INEXACT_MARGIN


def too_long(tokens: pl.Series, limit: int | None, model: str) -> pl.Series:
    """Which prompts exceed `limit` (with the margin of a borrowed encoding)."""
    if limit is None:
        return pl.Series("too_long", [False] * len(tokens))
    return (tokens * margin(model)).round() > limit


def cost_range(
    prompt_tokens: Sequence[int] | pl.Series, task: str, config: AnnotateConfig, price: ModelPrice
) -> tuple[float, float, float]:
    """USD (low, expected, high) of sending prompts of these sizes for `task`.

    Each answer has the low, expected or high completion ratio, capped at `max_tokens`; that
    share of answers (`reask_range`, `reask_rate`) is malformed and asked for once more, with
    the first answer in the prompt.
    """
    tokens = pl.Series(prompt_tokens, dtype=pl.Int64)
    prompt = int(tokens.sum())
    extra = reask_tokens(task, config.model, config.protocol) * len(tokens)
    (ratio_low, ratio_high), (rate_low, rate_high) = config.completion_range, config.reask_range
    costs = []
    for ratio, rate in ((ratio_low, rate_low), (config.completion_ratio, config.reask_rate),
                        (ratio_high, rate_high)):  # fmt: skip
        completion = int((tokens * ratio).round().clip(upper_bound=config.max_tokens).sum())
        first = price.cost(prompt, completion, batch=config.batch)
        again = price.cost(prompt + completion + extra, completion, batch=config.batch)
        costs.append(first + rate * again)
    return costs[0], costs[1], costs[2]


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
    """Per task: records, those whose prompt is too long (skipped, not priced), exact prompt
    tokens and cost (low, expected, high) of the rest.

    Tokens are counted on `engine` (default: this process, where tiktoken uses every core),
    for the messages of the protocol the run will use.
    """
    config = resolve_protocol(config)
    price = (prices or load_prices(config.prices)).price(config.model)
    _, exact = encoding_for_model(config.model)
    limit = prompt_limit(config, price)
    engine = engine or LocalEngine(workers=1)
    rows = []
    for task in config.tasks:
        chosen = records.filter(task_kind() == TASK_KINDS[task])
        counts = engine.map_batches(
            chosen, PromptTokens(task, config.model, config.protocol), batch_size=ESTIMATE_BATCH
        )
        tokens = pl.concat(
            [batch["prompt_tokens"] for batch in counts] or [pl.Series([], dtype=pl.Int64)]
        )
        skipped = too_long(tokens, limit, config.model)
        sent = tokens.filter(~skipped)
        row = {"task": task, "model": config.model, "records": len(tokens),
               "too_long": int(skipped.sum()), "prompt_tokens": int(sent.sum()),
               "exact_tokens": exact}  # fmt: skip
        costs = cost_range(sent, task, config, price)
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
