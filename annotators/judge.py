"""LLM-as-judge: for a finetune's evaluation, which of two generations answers the request
better, with the cost estimated before anything is sent and the run under the budget; and
for annotation, a 1-5 score of each instruction against its code (`annotate.judge`), sent
by the annotation run's own runner, so under its budget and in its ledger."""

from __future__ import annotations

import asyncio
import hashlib
from collections import Counter
from dataclasses import dataclass
from typing import Any

from annotators.budget import Budget
from annotators.config import AnnotateConfig, load_prices
from annotators.estimate import chat_tokens, cost_range
from annotators.ledger import Ledger, new_run_id
from annotators.providers import Prompt, make_provider, resolve_protocol
from annotators.runner import AnnotationRunner, Outcome, cache_key, params_of
from annotators.tasks import INSTRUCTION_JUDGE_TASK, JUDGE_TASK, load_task
from curation.errors import ConfigError


@dataclass(frozen=True)
class Pair:
    """One test record: the request, the reviewed answer, and the two models' answers."""

    record_id: str
    instruction: str
    reference: str
    base: str
    adapter: str


def adapter_is_a(pair: Pair) -> bool:
    """Which side the adapter's answer is shown on: fixed per record, half of each, so a
    judge's preference for a position cancels out."""
    return hashlib.sha256(pair.record_id.encode()).digest()[0] % 2 == 0


def judge_prompts(pairs: list[Pair], config: AnnotateConfig) -> list[Prompt]:
    """One judging request per pair, its prompt tokens counted (for the estimate and the
    budget alike)."""
    config = resolve_protocol(config)
    task = load_task(JUDGE_TASK)
    prompts = []
    for pair in pairs:
        a, b = (pair.adapter, pair.base) if adapter_is_a(pair) else (pair.base, pair.adapter)
        messages = task.render({"instruction": pair.instruction, "reference": pair.reference,
                                "answer_a": a, "answer_b": b}, config.protocol)  # fmt: skip
        key = cache_key(config.provider, config.model, messages, params_of(config))
        prompts.append(Prompt(key, pair.record_id, JUDGE_TASK, messages,
                              chat_tokens(messages, config.model)))  # fmt: skip
    return prompts


def estimate_judging(prompts: list[Prompt], config: AnnotateConfig) -> tuple[float, float, float]:
    """USD (low, expected, high) that sending the judging `prompts` would cost."""
    price = load_prices(config.prices).price(config.model)
    return cost_range([p.prompt_tokens for p in prompts], JUDGE_TASK, config, price)


def judge(
    pairs: list[Pair], prompts: list[Prompt], config: AnnotateConfig, ledger: Ledger
) -> dict[str, Any]:
    """Adapter vs base as the judge saw them (`prompts` from judge_prompts(pairs)): wins,
    losses, ties and the spend."""
    if config.provider == "offline":
        raise ConfigError("the offline annotator cannot judge: set annotate.provider")
    config = resolve_protocol(config)
    price = load_prices(config.prices).price(config.model)
    budget = Budget(config.budget_usd, config.dataset_budget_usd,
                    ledger.dataset_spent(config.dataset))  # fmt: skip
    runner = AnnotationRunner(make_provider(config), config, price, ledger, budget, new_run_id())

    async def run() -> list[Any]:
        try:
            return await runner.run_online(prompts)
        finally:
            await runner.provider.aclose()

    by_id = {pair.record_id: pair for pair in pairs}
    verdicts: Counter[str] = Counter()
    for outcome in asyncio.run(run()):
        if outcome.answer is None:
            verdicts["unjudged"] += 1
            continue
        better = outcome.answer["better"].strip().upper()
        if better not in ("A", "B"):
            verdicts["tie"] += 1
            continue
        adapter_won = (better == "A") == adapter_is_a(by_id[outcome.record_id])
        verdicts["adapter" if adapter_won else "base"] += 1
    judged = verdicts["adapter"] + verdicts["base"] + verdicts["tie"]
    return {
        "judge": config.annotator, "pairs": len(pairs), **dict(verdicts),
        "adapter_win_rate": round(verdicts["adapter"] / judged, 4) if judged else None,
        "spent_usd": round(budget.spent, 9), "stopped": runner.stopped,
    }  # fmt: skip


def instruction_judge_prompts(
    outcomes: list[Outcome], prompts: dict[str, Prompt], config: AnnotateConfig
) -> list[Prompt]:
    """One scoring request per instruction written for code (`config` resolved)."""
    task = load_task(INSTRUCTION_JUDGE_TASK)
    judged = []
    for outcome in outcomes:
        if outcome.answer is None or outcome.task != "instruction_for_code":
            continue
        record = prompts[outcome.record_id].record
        values = {"instruction": outcome.answer["instruction"], "code": record["content_clean"],
                  "language": record.get("language") or ""}  # fmt: skip
        messages = task.render(values, config.protocol)
        key = cache_key(config.provider, config.model, messages, params_of(config))
        judged.append(Prompt(key, outcome.record_id, INSTRUCTION_JUDGE_TASK, messages,
                             chat_tokens(messages, config.model), record))  # fmt: skip
    return judged


def judge_scores(verdicts: list[Outcome]) -> dict[str, float]:
    """record id -> the judge's score, for the verdicts that hold a score from 1 to 5."""
    scores = {}
    for verdict in verdicts:
        score = (verdict.answer or {}).get("score", "").strip()[:1]
        if score and score in "12345":
            scores[verdict.record_id] = float(score)
    return scores
