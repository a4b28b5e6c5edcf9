"""The annotation runner: concurrent requests under rate limits and a hard budget, retried
with backoff, cached by content, and booked in the ledger as they return."""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

from annotators.budget import Budget, OverBudget
from annotators.config import AnnotateConfig, ModelPrice
from annotators.estimate import chat_tokens
from annotators.ledger import Ledger, RequestRow
from annotators.limits import RateLimiter
from annotators.providers import Params, Prompt, Provider, ProviderError, Reply, Retryable
from annotators.tasks import MalformedOutput, Task, load_task
from annotators.tokens import encoding_for_model

RETRY_CAP_S = 60.0
# Prompt tokens counted with a borrowed encoding (Gemini, local models) are reserved with
# this margin, so that a model that counts more tokens still cannot cross the cap.
INEXACT_MARGIN = 1.25


def cache_key(provider: str, model: str, messages: list[dict[str, str]], params: Params) -> str:
    """Content hash of everything that decides an answer."""
    payload = json.dumps(
        [provider, model, messages, params.max_tokens, params.temperature, params.json_mode],
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def params_of(config: AnnotateConfig) -> Params:
    return Params(config.max_tokens, config.temperature, config.json_mode)


@dataclass
class Outcome:
    """What annotating one record came to; `answer` holds the task's fields when it worked."""

    record_id: str
    task: str
    status: str  # ok | cached | malformed | skipped | failed | over_budget | <last retry status>
    answer: dict[str, str] | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    error: str | None = None
    replies: list[Reply] = field(default_factory=list, repr=False)


class AnnotationRunner:
    """Annotates prompts with one provider; every request passes the budget, the rate
    limiter and the ledger, in that order."""

    def __init__(
        self,
        provider: Provider,
        config: AnnotateConfig,
        price: ModelPrice,
        ledger: Ledger,
        budget: Budget,
        run_id: str,
        on_done: Callable[[Outcome], None] | None = None,
        retry_base_s: float = 1.0,
    ) -> None:
        self.provider = provider
        self.config = config
        self.price = price
        self.ledger = ledger
        self.budget = budget
        self.run_id = run_id
        self.params = params_of(config)
        self.limiter = RateLimiter(config.rpm, config.tpm)
        self.on_done = on_done
        self.retry_base_s = retry_base_s
        self.stopped: str | None = None  # why no more requests are sent
        self._tasks: dict[str, Task] = {}
        self._margin = 1.0 if encoding_for_model(config.model)[1] else INEXACT_MARGIN

    def task(self, name: str) -> Task:
        if name not in self._tasks:
            self._tasks[name] = load_task(name)
        return self._tasks[name]

    def book(self, row: RequestRow) -> None:
        self.ledger.record(self.run_id, self.config.dataset, self.provider.name,
                           self.config.model, row)  # fmt: skip

    async def run(self, prompts: Iterable[Prompt]) -> list[Outcome]:
        """Annotate every prompt; once the budget is reached the rest are `over_budget`."""
        pending = iter(prompts)
        outcomes: list[Outcome] = []

        async def worker() -> None:
            for prompt in pending:  # workers share one iterator: each prompt goes once
                outcome = await self.annotate(prompt)
                outcomes.append(outcome)
                if self.on_done is not None:
                    self.on_done(outcome)

        await asyncio.gather(*(worker() for _ in range(self.config.concurrency)))
        return outcomes

    async def annotate(self, prompt: Prompt) -> Outcome:
        """One record: from the cache, or one request and at most one retry for bad JSON."""
        task = self.task(prompt.task)
        hit = self.ledger.cached(prompt.key)
        if hit is not None:
            self.book(RequestRow(prompt.record_id, prompt.task, "cached", 0.0, prompt.key,
                                 mode="cache"))  # fmt: skip
            return Outcome(prompt.record_id, prompt.task, "cached", task.parse(hit.text),
                           hit.prompt_tokens, hit.completion_tokens, replies=[hit])  # fmt: skip
        outcome = Outcome(prompt.record_id, prompt.task, "over_budget")
        if self.stopped:
            outcome.error = self.stopped
            return outcome
        messages, estimated = prompt.messages, prompt.prompt_tokens
        for attempt in range(2):
            try:
                reply = await self.request(prompt, messages, estimated)
            except OverBudget as e:
                self.stopped = outcome.error = str(e)
                return outcome
            except ProviderError as e:
                outcome.status, outcome.error = e.status, str(e)
                return outcome
            outcome.replies.append(reply)
            outcome.prompt_tokens += reply.prompt_tokens
            outcome.completion_tokens += reply.completion_tokens
            outcome.cost_usd += self.price.cost(reply.prompt_tokens, reply.completion_tokens)
            try:
                outcome.answer = task.parse(reply.text)
            except MalformedOutput as e:
                outcome.status, outcome.error = "malformed", str(e)
                if attempt == 0:
                    messages = task.retry_messages(prompt.messages, reply.text, str(e))
                    estimated = chat_tokens(messages, self.config.model)
                continue
            self.ledger.cache(prompt.key, self.config.model, reply)
            outcome.status, outcome.error = "ok", None
            return outcome
        return outcome

    async def request(
        self, prompt: Prompt, messages: list[dict[str, str]], estimated: int
    ) -> Reply:
        """One request, retried on 429/5xx/timeouts; each attempt reserves its worst case."""
        worst = self.price.cost(round(estimated * self._margin), self.params.max_tokens)
        sent = replace(prompt, messages=messages)
        for attempt in range(self.config.max_retries + 1):
            await self.budget.reserve(worst)
            await self.limiter.acquire(estimated + self.params.max_tokens)
            started = time.monotonic()
            row = RequestRow(prompt.record_id, prompt.task, "ok", 0.0, prompt.key, estimated,
                             reserved_usd=worst)  # fmt: skip
            try:
                reply = await self.provider.complete(sent, self.params)
            except Retryable as e:
                # a timed-out request may have been billed: it is booked at its worst case
                charged = worst if e.charged else 0.0
                await self.budget.settle(worst, charged)
                self.book(replace(row, status=e.status, cost_usd=charged, error=str(e),
                                  latency_s=time.monotonic() - started))  # fmt: skip
                if attempt == self.config.max_retries:
                    raise
                await self._wait(attempt, e.retry_after)
                continue
            except ProviderError as e:
                await self.budget.settle(worst, 0.0)
                self.book(replace(row, status=e.status, error=str(e)))
                raise
            cost = self.price.cost(reply.prompt_tokens, reply.completion_tokens)
            await self.budget.settle(worst, cost)
            self.book(replace(row, cost_usd=cost, prompt_tokens=reply.prompt_tokens,
                              completion_tokens=reply.completion_tokens,
                              latency_s=time.monotonic() - started))  # fmt: skip
            return reply
        raise AssertionError("unreachable: the last attempt raises or returns")

    async def _wait(self, attempt: int, retry_after: float | None) -> None:
        """The server's Retry-After when it gave one (for every request), else exponential
        backoff with full jitter."""
        if retry_after is not None:
            self.limiter.pause(retry_after)
            await asyncio.sleep(retry_after)
        else:
            await asyncio.sleep(random.uniform(0, min(RETRY_CAP_S, self.retry_base_s * 2**attempt)))
