"""The annotation runner: concurrent requests under rate limits and a hard budget, retried
with backoff, cached by content, and booked in the ledger before they are sent.

It fails safe: requests the provider refuses for the account (a bad key, no quota) stop the
run after a few in a row; SIGINT or SIGTERM stops sending and lets the requests in flight
settle, a second one abandons them (booked at their worst case, as they may have been
billed); a malformed answer is booked as such.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import signal
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, TypeVar

from annotators.budget import Budget, OverBudget
from annotators.config import AnnotateConfig, ModelPrice
from annotators.estimate import chat_tokens, margin
from annotators.ledger import SENT, Ledger, RequestRow
from annotators.limits import Clock, RateLimiter
from annotators.providers import (
    Params,
    Prompt,
    Provider,
    ProviderError,
    Refused,
    Reply,
    Retryable,
)
from annotators.tasks import MalformedOutput, Task, load_task
from curation.errors import ConfigError, CurateError

if TYPE_CHECKING:
    from annotators.batch import BatchClient, BatchPoll

T = TypeVar("T")
# a batch request: the prompt, the messages sent (a retry adds two), their estimated tokens
BatchRequest = tuple[Prompt, list[dict[str, str]], int]
RETRY_CAP_S = 60.0
RETRY_SUFFIX = ":retry"  # the key of a batch request that asks again after a malformed answer
# Refusals in a row (bad key, no permission, quota spent) that stop a run: one could be a
# proxy's hiccup, three are the account.
REFUSALS_TO_STOP = 3


class ProviderRefused(CurateError):
    """The provider refused the run's requests for the account (key, permission, quota)."""


class Interrupted(CurateError):
    """The run was stopped by a signal; everything paid for is in the ledger."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.exit_code = 128 + signum  # as a shell reports a process the signal ended


class Halted(Exception):
    """The run halted (interrupted, or refused) before this request went out."""


def cache_key(provider: str, model: str, messages: list[dict[str, str]], params: Params) -> str:
    """Content hash of everything that decides an answer."""
    payload = json.dumps(
        [provider, model, messages, params.max_tokens, params.temperature, params.protocol],
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def params_of(config: AnnotateConfig) -> Params:
    return Params(config.max_tokens, config.temperature, config.protocol)


@dataclass
class Outcome:
    """What annotating one record came to; `answer` holds the task's fields when it worked."""

    record_id: str
    task: str
    # ok | cached | malformed | skipped | failed | over_budget | not_sent | <last error status>
    status: str
    answer: dict[str, str] | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    error: str | None = None
    reply: str | None = None  # the last raw reply, kept for failures and flagged answers


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
        clock: Clock | None = None,
    ) -> None:
        self.provider = provider
        self.config = config
        self.price = price
        self.ledger = ledger
        self.budget = budget
        self.run_id = run_id
        self.params = params_of(config)
        self.clock = clock or Clock()
        # the offline annotator costs nothing and calls no server: nothing to pace
        self.limiter = (
            None if provider.name == "offline" else RateLimiter(config.rpm, config.tpm, self.clock)
        )
        self.on_done = on_done
        self.stopped: str | None = None  # why no more requests are sent
        self.refused: str | None = None  # the provider's refusal that stopped the run
        self.interrupted: int | None = None  # the signal that stopped it
        self.aborted = False  # a second signal abandoned the requests in flight
        self.abandoned = 0
        self._halted = asyncio.Event()  # stop waiting, too: for the budget, limits, backoff
        self._refusals = 0  # in a row, since the last answer
        self._answers = 0
        self._last_refusal: str | None = None
        self._workers: list[asyncio.Task[None]] = []
        self._tasks: dict[str, Task] = {}
        self._margin = margin(config.model)
        self._batch: BatchClient | None = None
        if config.batch:
            from annotators.batch import batch_client  # the provider SDKs, only when used

            self._batch = batch_client(provider)

    @property
    def batch(self) -> BatchClient:
        if self._batch is None:
            raise ConfigError("annotate.batch is false: this run sends requests one by one")
        return self._batch

    def task(self, name: str) -> Task:
        if name not in self._tasks:
            self._tasks[name] = load_task(name)
        return self._tasks[name]

    def book(self, row: RequestRow, answer: Reply | None = None) -> int:
        """Write a row to the ledger (and cache `answer` with it); its id."""
        provider, model = self.config.annotator.split(":", 1)
        row = replace(row, protocol=self.params.protocol)
        return self.ledger.record(self.run_id, self.config.dataset, provider, model, row, answer)

    # stopping
    def halt(self, reason: str) -> None:
        """Send nothing more and give up every wait; requests in flight still settle."""
        self.stopped = self.stopped or reason
        self._halted.set()

    def interrupt(self, signum: int) -> None:
        """The first signal halts the run; a second abandons the requests in flight."""
        name = signal.Signals(signum).name
        if self.interrupted is None:
            self.interrupted = signum
            self.halt(f"interrupted by {name}")
            print(f"{name}: sending nothing more; waiting for the requests in flight "
                  f"(again to abandon them)", file=sys.stderr)  # fmt: skip
            return
        self.aborted = True
        for worker in self._workers:
            worker.cancel()

    @contextmanager
    def signals_handled(self) -> Iterator[None]:
        """SIGINT and SIGTERM call `interrupt` while this lasts, in the main thread (elsewhere
        signals keep their handlers); the previous handlers come back after."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        loop = asyncio.get_running_loop()
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        for sig in previous:
            loop.add_signal_handler(sig, self.interrupt, sig)
        try:
            yield
        finally:
            for sig, handler in previous.items():
                loop.remove_signal_handler(sig)
                if handler is not None:
                    signal.signal(sig, handler)

    def end_status(self) -> str:
        """How the run ended, for the ledger."""
        if self.aborted:
            return "aborted"
        if self.interrupted is not None:
            return "interrupted"
        if self.refused is not None:
            return "refused"
        return "stopped" if self.stopped else "finished"

    async def _unless_halted(self, wait: Awaitable[T]) -> T:
        """Await a wait (the budget, the rate limiter, a backoff), or raise Halted as soon as
        the run halts."""
        waiting = asyncio.ensure_future(wait)
        halted = asyncio.ensure_future(self._halted.wait())
        try:
            done, _ = await asyncio.wait((waiting, halted), return_when=asyncio.FIRST_COMPLETED)
        finally:
            halted.cancel()
            waiting.cancel()  # a no-op once it is done
        if waiting in done:
            return waiting.result()
        raise Halted

    def _refusal(self, error: Refused) -> None:
        """Count a refusal; enough in a row stop the run."""
        self._refusals += 1
        self._last_refusal = str(error)
        if self._refusals >= REFUSALS_TO_STOP and self.refused is None:
            self.refused = str(error)
            self.halt(f"{self._refusals} requests in a row refused: {error}")

    def _check_refused(self) -> None:
        """A run whose every request was refused stops too, however few it sent."""
        if self.refused is None and self._refusals and not self._answers:
            self.refused = self._last_refusal

    # online requests
    async def run(self, prompts: list[Prompt]) -> list[Outcome]:
        """Annotate every prompt, through the batch API when configured; once the budget is
        reached the rest are `over_budget`, once the run halts `not_sent`."""
        with self.signals_handled():
            if self.config.batch:
                return await self.run_batch(prompts)
            return await self.run_online(prompts)

    async def run_online(self, prompts: Iterable[Prompt]) -> list[Outcome]:
        """Annotate every prompt with up to `concurrency` requests in flight."""
        pending = iter(prompts)
        outcomes: list[Outcome] = []

        async def worker() -> None:
            for prompt in pending:  # workers share one iterator: each prompt goes once
                outcome = await self.annotate(prompt)
                outcomes.append(outcome)
                if self.on_done is not None:
                    self.on_done(outcome)

        self._workers = [asyncio.create_task(worker()) for _ in range(self.config.concurrency)]
        await asyncio.wait(self._workers)  # cancelled workers (an abort) end here too
        for finished in self._workers:
            if not finished.cancelled() and finished.exception() is not None:
                raise finished.exception()  # type: ignore[misc]
        self._check_refused()
        return outcomes

    async def annotate(self, prompt: Prompt) -> Outcome:
        """One record: from the cache, or one request and at most one more for bad JSON; an
        unexpected error is this record's `stage_error`, and the run goes on."""
        try:
            return await self._annotate(prompt)
        except Exception as e:
            detail = f"{type(e).__name__}: {e}".splitlines()[0][:300]
            return Outcome(prompt.record_id, prompt.task, "stage_error", error=detail)

    async def _annotate(self, prompt: Prompt) -> Outcome:
        task = self.task(prompt.task)
        hit = self.cached(prompt)
        if hit is not None:
            return hit
        outcome = Outcome(prompt.record_id, prompt.task, "over_budget")
        if self.stopped:
            outcome.status = "not_sent" if self._halted.is_set() else "over_budget"
            outcome.error = self.stopped
            return outcome
        messages, estimated = prompt.messages, prompt.prompt_tokens
        for ask in (1, 2):
            try:
                reply = await self.request(prompt, messages, estimated, ask)
            except OverBudget as e:
                self.stopped = self.stopped or str(e)
                outcome.status, outcome.error = "over_budget", str(e)
                return outcome
            except Halted:
                outcome.status, outcome.error = "not_sent", self.stopped
                return outcome
            except ProviderError as e:
                outcome.status, outcome.error = e.status, str(e)
                return outcome
            if self.take(outcome, reply, task) or ask == 2 or self.stopped:
                return outcome
            messages = task.retry_messages(
                prompt.messages, reply.text, outcome.error or "", self.params.protocol
            )
            estimated = chat_tokens(messages, self.config.model)
        return outcome

    def take(self, outcome: Outcome, reply: Reply, task: Task, batch: bool = False) -> bool:
        """Add a reply to an outcome; True when it parsed (it was cached as it was booked)."""
        outcome.prompt_tokens += reply.prompt_tokens
        outcome.completion_tokens += reply.completion_tokens
        outcome.cost_usd += self.price.cost(reply.prompt_tokens, reply.completion_tokens, batch)
        outcome.reply = reply.text
        try:
            outcome.answer = task.parse(reply.text)
        except MalformedOutput as e:
            outcome.status, outcome.error = "malformed", str(e)
            return False
        outcome.status, outcome.error = "ok", None
        return True

    def cached(self, prompt: Prompt) -> Outcome | None:
        """The outcome of a prompt answered before (by any run), booked at no cost."""
        hit = self.ledger.cached(prompt.key)
        if hit is None:
            return None
        self.book(RequestRow(prompt.record_id, prompt.task, "cached", 0.0, prompt.key,
                             mode="cache"))  # fmt: skip
        answer = self.task(prompt.task).parse(hit.text)
        return Outcome(prompt.record_id, prompt.task, "cached", answer, hit.prompt_tokens,
                       hit.completion_tokens, reply=hit.text)  # fmt: skip

    def answer_status(self, task_name: str, reply: Reply) -> tuple[str, str | None]:
        """How the ledger books an answer: ok, or malformed with what is wrong with it."""
        try:
            self.task(task_name).parse(reply.text)
        except MalformedOutput as e:
            return "malformed", str(e)
        return "ok", None

    async def request(
        self, prompt: Prompt, messages: list[dict[str, str]], estimated: int, ask: int = 1
    ) -> Reply:
        """One request, retried on 429/5xx/timeouts; each attempt reserves its worst case and
        is in the ledger at that cost before it is sent."""
        worst = self.price.cost(round(estimated * self._margin), self.params.max_tokens)
        sent = replace(prompt, messages=messages)
        for attempt in range(self.config.max_retries + 1):
            await self._unless_halted(self.budget.reserve(worst))
            try:
                if self.limiter is not None:
                    tokens = estimated + self.params.max_tokens
                    await self._unless_halted(self.limiter.acquire(tokens))
                if self._halted.is_set():
                    raise Halted
            except Halted:
                await self.budget.settle(worst, 0.0)
                raise
            row = RequestRow(prompt.record_id, prompt.task, SENT, worst, prompt.key, estimated,
                             reserved_usd=worst, ask=ask,
                             protocol=self.params.protocol)  # fmt: skip
            request_id = self.book(row)
            started = time.monotonic()
            try:
                reply = await self.provider.complete(sent, self.params)
            except asyncio.CancelledError:
                # abandoned in flight by an abort: it may have been billed
                self.abandoned += 1
                abandoned = "abandoned in flight; booked at its worst case"
                self.ledger.update(request_id, replace(row, status="abandoned", error=abandoned))
                raise
            except Retryable as e:
                # a timed-out request may have been billed: it is booked at its worst case
                charged = worst if e.charged else 0.0
                await self.budget.settle(worst, charged)
                self.ledger.update(request_id, replace(row, status=e.status, cost_usd=charged,
                                   error=str(e), latency_s=time.monotonic() - started))  # fmt: skip
                if attempt == self.config.max_retries:
                    raise
                try:
                    await self._wait(attempt, e.retry_after)
                except Halted:
                    raise e from None
                continue
            except ProviderError as e:
                await self.budget.settle(worst, 0.0)
                self.ledger.update(request_id, replace(row, status=e.status, cost_usd=0.0,
                                                       error=str(e)))  # fmt: skip
                if isinstance(e, Refused):
                    self._refusal(e)
                raise
            self._refusals = 0
            self._answers += 1
            cost = self.price.cost(reply.prompt_tokens, reply.completion_tokens)
            await self.budget.settle(worst, cost)
            status, error = self.answer_status(prompt.task, reply)
            self.ledger.update(request_id, replace(row, status=status, cost_usd=cost,
                               prompt_tokens=reply.prompt_tokens, error=error,
                               completion_tokens=reply.completion_tokens,
                               latency_s=time.monotonic() - started), self.config.model,
                               reply if status == "ok" else None)  # fmt: skip
            return reply
        raise AssertionError("unreachable: the last attempt raises or returns")

    async def _retrying(self, call: Callable[..., Awaitable[T]], *args: Any) -> T:
        """A batch API call, retried like a request (it books nothing and costs nothing)."""
        for attempt in range(self.config.max_retries):
            try:
                return await call(*args)
            except Retryable as e:
                try:
                    await self._wait(attempt, e.retry_after)
                except Halted:
                    raise e from None
        return await call(*args)

    async def _wait(self, attempt: int, retry_after: float | None) -> None:
        """The server's Retry-After when it gave one (for every request), else exponential
        backoff with full jitter; Halted if the run halts meanwhile."""
        if retry_after is not None:
            if self.limiter is not None:
                self.limiter.pause(retry_after)
            delay = retry_after
        else:
            delay = random.uniform(0, min(RETRY_CAP_S, self.config.retry_base_s * 2**attempt))
        await self._unless_halted(self.clock.sleep(delay))

    # batch APIs
    async def run_batch(self, prompts: list[Prompt]) -> list[Outcome]:
        """Annotate through the provider's batch API, at its discount.

        Jobs are sized to what the budget has left and reserve their worst case up front;
        each submitted job is in the ledger, so a run that crashed while polling is resumed
        by polling it again, not by paying again. Malformed answers go once more in a
        second round. Records sharing a prompt share one request. A halted run submits
        nothing more and leaves its jobs open for the next run to collect.
        """
        groups: dict[str, list[Prompt]] = {}
        for prompt in prompts:
            groups.setdefault(prompt.key, []).append(prompt)
        done: list[Outcome] = []
        todo: dict[str, Prompt] = {}
        for key, group in groups.items():
            hit = self.cached(group[0])
            if hit is None:
                todo[key] = group[0]
            else:
                done.extend(replace(hit, record_id=p.record_id) for p in group)
        first = await self.batch_round(
            {key: (p, p.messages, p.prompt_tokens) for key, p in todo.items()}, resume=True
        )
        outcomes: dict[str, Outcome] = {}
        again: dict[str, BatchRequest] = {}
        for key, prompt in todo.items():
            outcome = outcomes[key] = Outcome(prompt.record_id, prompt.task, "over_budget")
            result = first.get(key, ("over_budget", self.stopped))
            if isinstance(result, tuple):
                outcome.status, outcome.error = result
                continue
            task = self.task(prompt.task)
            if self.take(outcome, result, task, batch=True):
                continue
            retried = first.get(key + RETRY_SUFFIX)  # answered by a job of a crashed run
            if isinstance(retried, Reply):
                self.take(outcome, retried, task, batch=True)
                continue
            messages = task.retry_messages(
                prompt.messages, result.text, outcome.error or "", self.params.protocol
            )
            again[key + RETRY_SUFFIX] = (prompt, messages, chat_tokens(messages, self.config.model))
        second = await self.batch_round(again, resume=False) if again else {}
        for retry_key, (prompt, _, _) in again.items():
            result = second.get(retry_key, ("over_budget", self.stopped))
            if isinstance(result, Reply):
                self.take(outcomes[prompt.key], result, self.task(prompt.task), batch=True)
        for key, outcome in outcomes.items():
            done.extend(replace(outcome, record_id=p.record_id) for p in groups[key])
        return done

    async def batch_round(
        self, requests: dict[str, BatchRequest], resume: bool
    ) -> dict[str, Reply | tuple[str, str | None]]:
        """Submit `requests` (key -> prompt, messages, estimated tokens) as jobs and poll them
        to the end; each key maps to its reply or to (status, error)."""
        jobs = self._resumed_jobs(requests) if resume else []
        submitted = {key for _, keys, _ in jobs for key in keys}
        pending = [key for key in requests if key not in submitted]
        results: dict[str, Reply | tuple[str, str | None]] = {}
        for start in range(0, len(pending), self.config.batch_size):
            if self._halted.is_set():
                break
            chunk = pending[start : start + self.config.batch_size]
            job = await self._submit_within_budget(chunk, requests)
            if job is not None:
                jobs.append(job)
            if job is None or len(job[1]) < len(chunk):
                break
        await self._collect(jobs, requests, results)
        return results

    async def _submit_within_budget(
        self, chunk: list[str], requests: dict[str, BatchRequest]
    ) -> tuple[str, list[str], float] | None:
        """Submit the longest prefix of `chunk` whose worst case fits the budget, reserved
        up front; None when not even one request fits."""
        worst = [
            self.price.cost(round(requests[key][2] * self._margin), self.params.max_tokens, True)
            for key in chunk
        ]
        fits = 0
        while fits < len(chunk) and sum(worst[: fits + 1]) <= self.budget.left:
            fits += 1
        if fits < len(chunk):
            self.stopped = (
                f"{len(chunk) - fits} batch requests do not fit in what is left of the budget "
                f"({max(self.budget.left, 0):.6f})"
            )
        keys, reserved = chunk[:fits], sum(worst[:fits])
        if not keys or not self.budget.try_reserve(reserved):
            return None
        sent = [(key, replace(requests[key][0], messages=requests[key][1])) for key in keys]
        try:
            job_id = await self._retrying(self.batch.submit, sent, self.params)
        except Refused as e:
            await self.budget.settle(reserved, 0.0)
            self.refused = str(e)
            self.halt(f"the batch job was refused: {e}")
            return None
        except ProviderError:
            await self.budget.settle(reserved, 0.0)
            raise
        self.ledger.add_batch_job(
            job_id, self.run_id, self.provider.name, self.config.model, keys, reserved
        )
        return job_id, keys, reserved

    def _resumed_jobs(self, requests: dict[str, Any]) -> list[tuple[str, list[str], float]]:
        """Jobs an earlier run submitted for these requests and never collected."""
        origins = {key.removesuffix(RETRY_SUFFIX) for key in requests}
        jobs = []
        for job_id, keys, reserved in self.ledger.open_batch_jobs(
            self.provider.name, self.config.model
        ):
            if any(key.removesuffix(RETRY_SUFFIX) in origins for key in keys):
                self.budget.hold(reserved)
                jobs.append((job_id, keys, reserved))
        return jobs

    async def _collect(
        self,
        jobs: list[tuple[str, list[str], float]],
        requests: dict[str, BatchRequest],
        results: dict[str, Reply | tuple[str, str | None]],
    ) -> None:
        """Poll jobs until each is final, booking every answer; jobs still running at
        `batch_max_wait_s`, or when the run halts, stay open in the ledger for the next run."""
        deadline = self.clock.monotonic() + self.config.batch_max_wait_s
        while jobs:
            running = []
            for job_id, keys, reserved in jobs:
                poll = await self._retrying(self.batch.poll, job_id)
                if not poll.done:
                    running.append((job_id, keys, reserved))
                    continue
                actual = sum(self._book_batch_answer(key, poll, requests) for key in keys)
                for key in keys:
                    results[key] = poll.replies.get(key) or (
                        f"batch_{poll.state.lower().removeprefix('job_state_')}",
                        poll.errors.get(key, f"no answer in the job ({poll.state})"),
                    )
                await self.budget.settle(reserved, actual)
                self.ledger.close_batch_job(job_id, poll.state)
            jobs = running
            if jobs and (self._halted.is_set() or self.clock.monotonic() > deadline):
                for job_id, keys, reserved in jobs:
                    await self.budget.settle(reserved, 0.0)
                    for key in keys:
                        results[key] = (
                            "batch_pending",
                            f"job {job_id} still running: rerun to collect it",
                        )
                return
            if jobs:
                try:
                    await self._unless_halted(self.clock.sleep(self.config.batch_poll_s))
                except Halted:
                    continue  # one more poll, then the check above leaves the rest open

    def _book_batch_answer(self, key: str, poll: BatchPoll, requests: dict[str, Any]) -> float:
        """Write one batch line to the ledger; its cost (0 when it has no answer)."""
        prompt: Prompt | None = requests.get(key, (None,))[0]
        record_id, task = (prompt.record_id, prompt.task) if prompt else ("?", "?")
        reply = poll.replies.get(key)
        if reply is None:
            self.book(RequestRow(record_id, task, "batch_error", 0.0, key,
                                 error=poll.errors.get(key), mode="batch"))  # fmt: skip
            return 0.0
        cost = self.price.cost(reply.prompt_tokens, reply.completion_tokens, batch=True)
        status, error = self.answer_status(task, reply) if prompt else ("ok", None)
        origin = key.removesuffix(RETRY_SUFFIX)  # an answer to a retry is the prompt's answer
        self.book(RequestRow(record_id, task, status, cost, origin,
                             requests[key][2] if prompt else None, reply.prompt_tokens,
                             reply.completion_tokens, error=error, mode="batch",
                             ask=2 if key != origin else 1),
                  reply if prompt and status == "ok" else None)  # fmt: skip
        return cost
