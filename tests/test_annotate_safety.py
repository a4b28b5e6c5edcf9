"""Annotation that fails safe: refusals stop the run, unfinished records are retried and only
they, the budget holds across killed and resumed runs, signals stop cleanly, the estimate
counts what really costs. Real `openai`/`google-genai` clients against the local server;
`curate annotate` itself where a signal or an exit code is the point."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import ClassVar

import polars as pl
import pytest
from pydantic import BaseModel
from rich.console import Console
from support.llm_server import LocalLLMServer
from test_annotate import MODEL, SECRET, FakeClock, annotate, code_records, config, ledger_rows
from typer.testing import CliRunner

from annotators.config import load_prices
from annotators.estimate import estimate
from annotators.ledger import Ledger
from annotators.prepare import build_prompts
from annotators.report import refined, spend
from annotators.runner import ProviderRefused
from annotators.stage import AnnotateStage
from codecurate.cli import app
from codecurate.config import load_config
from codecurate.pipeline import run_pipeline
from curation import Runner, Stage, StageContext, stage_frame


@pytest.fixture
def server() -> Iterator[LocalLLMServer]:
    with LocalLLMServer() as running:
        yield running


class RecordsConfig(BaseModel):
    n: int


class CodeRecords(Stage):
    """`code_records(n)` as the source stage of a pipeline."""

    name: ClassVar[str] = "ingest"
    is_source: ClassVar[bool] = True

    def __init__(self, n: int) -> None:
        self.config = RecordsConfig(n=n)

    def input_fingerprint(self) -> str:
        return str(self.config.n)

    def run(self, records: pl.LazyFrame | None, ctx: StageContext) -> pl.DataFrame:
        return code_records(self.config.n)


def pipeline(n: int, settings, workdir: Path) -> list[Stage]:
    return [CodeRecords(n), AnnotateStage(settings, workdir)]


def runs(workdir: Path) -> pl.DataFrame:
    ledger = Ledger(workdir / "annotations.sqlite")
    try:
        return ledger.frame("runs").sort("started_at")
    finally:
        ledger.close()


def wait_for(condition: Callable[[], bool], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the condition was never met"
        time.sleep(0.02)


def billed(server: LocalLLMServer) -> float:
    """What the server charged, from its own count of tokens."""
    price = load_prices().price(MODEL)
    return price.cost(server.billed_prompt_tokens, server.billed_completion_tokens)


# --- refusals ------------------------------------------------------------------------------


def test_refused_requests_stop_the_run_and_the_right_key_then_annotates_everything(
    tmp_path, monkeypatch
):
    with LocalLLMServer(api_key="sk-the-right-one") as server:
        stages = pipeline(10, config(server, concurrency=1), tmp_path)
        monkeypatch.setenv("OPENAI_API_KEY", SECRET)
        with pytest.raises(ProviderRefused, match=r"refused the requests .*HTTP 401") as refused:
            Runner(tmp_path).run(stages)
        assert SECRET not in str(refused.value) and "OPENAI_API_KEY" in str(refused.value)
        rows = ledger_rows(tmp_path)
        assert rows["status"].to_list() == ["auth_error"] * 3  # 3 sent, not 10
        assert runs(tmp_path)["status"].to_list() == ["refused"]

        monkeypatch.setenv("OPENAI_API_KEY", "sk-the-right-one")
        *_, annotated = Runner(tmp_path).run(stages)
    assert not annotated.resumed and annotated.extra["statuses"] == {"ok": 10}


@pytest.mark.parametrize("provider", ["openai", "gemini"])
@pytest.mark.parametrize("fault", ["quota", "403"])
def test_a_spent_quota_or_a_forbidden_key_stops_the_run_without_retrying(
    server, tmp_path, provider, fault
):
    server.faults = [fault] * 10
    settings = config(server, concurrency=1, max_retries=5)
    if provider == "gemini":
        settings = config(provider="gemini", model="gemini-2.0-flash",
                          base_url=server.gemini_url, concurrency=1, max_retries=5)  # fmt: skip
    with pytest.raises(ProviderRefused, match=r"HTTP (429|403)"):
        annotate(code_records(10), settings, tmp_path, FakeClock())
    # three refusals in a row, none of them retried
    status = "quota_exceeded" if fault == "quota" else "auth_error"
    assert ledger_rows(tmp_path)["status"].to_list() == [status] * 3


def test_a_wrong_gemini_key_is_a_refusal_though_gemini_answers_it_with_400(tmp_path, monkeypatch):
    monkeypatch.setenv("GEMINI_API_KEY", SECRET)
    settings = config(provider="gemini", model="gemini-2.0-flash", concurrency=1)
    with LocalLLMServer(api_key="the-right-one") as server:
        settings = settings.model_copy(update={"base_url": server.gemini_url})
        with pytest.raises(ProviderRefused, match="API_KEY_INVALID") as refused:
            annotate(code_records(5), settings, tmp_path)
    assert SECRET not in str(refused.value) and "GEMINI_API_KEY" in str(refused.value)
    assert ledger_rows(tmp_path)["status"].to_list() == ["auth_error"] * 3


def test_a_wrong_key_makes_curate_annotate_exit_2_with_the_providers_message(
    pii_done, tmp_path, monkeypatch
):
    with LocalLLMServer(api_key="sk-the-right-one") as server:
        monkeypatch.setenv("OPENAI_API_KEY", SECRET)
        path = write_config(pii_done, tmp_path, provider="openai", model=MODEL,
                            base_url=server.openai_url)  # fmt: skip
        result = CliRunner().invoke(app, ["annotate", "-c", str(path)])
    assert result.exit_code == 2, result.output
    assert "refused the requests" in result.output and "401" in result.output
    assert SECRET not in result.output and "Traceback" not in result.output


# --- what is not done is retried, and only that --------------------------------------------


def test_a_rerun_retries_the_failed_and_malformed_records_and_only_them(server, tmp_path):
    # by id order, the first record gets two 500s (and max_retries is 1), the second two
    # malformed answers
    server.faults = ["500", "500", "malformed", "malformed"]
    stages = pipeline(6, config(server, concurrency=1, max_retries=1), tmp_path)
    *_, first = Runner(tmp_path).run(stages)
    assert first.extra["statuses"] == {"malformed": 1, "ok": 4, "server_error": 1}
    assert first.quarantined == {"annotation_malformed": 1, "annotation_server_error": 1}
    failed = [json.dumps(server.requests[i]["messages"][1]) for i in (0, 2)]
    sent = len(server.requests)

    *_, second = Runner(tmp_path).run(stages)
    assert not second.resumed and second.extra["statuses"] == {"cached": 4, "ok": 2}
    retried = [json.dumps(r["messages"][1]) for r in server.requests[sent:]]
    assert sorted(retried) == sorted(failed)  # two requests, for those two records
    assert second.quarantined == {}

    *_, third = Runner(tmp_path).run(stages)
    assert third.resumed and len(server.requests) == sent + 2


# --- the budget across a killed run and its resume -----------------------------------------

CHILD = """
import polars as pl, sys
from pathlib import Path
from annotators.config import AnnotateConfig
from annotators.stage import AnnotateStage
from curation.runner import StageContext
work = Path(sys.argv[1])
config = AnnotateConfig.model_validate_json((work / "config.json").read_text())
AnnotateStage(config, work).run(pl.scan_parquet(work / "records.parquet"),
                                StageContext(work, "05_annotate"))
"""


def test_a_killed_run_is_marked_and_its_resume_gets_only_what_the_budget_has_left(tmp_path):
    records = code_records(30)
    records.write_parquet(tmp_path / "records.parquet")
    with LocalLLMServer(latency_s=0.3) as server:
        prompts = build_prompts(records, config(server))
        price = load_prices().price(MODEL)
        worst = max(price.cost(p.prompt_tokens, 64) for p in prompts)
        # room for 8 requests at their worst case; an answer costs about half of that
        cap = 8 * worst
        settings = config(server, concurrency=4, max_tokens=64, budget_usd=cap)
        (tmp_path / "config.json").write_text(settings.model_dump_json())
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path)],
                                 env=os.environ | {"OMP_NUM_THREADS": "1"})  # fmt: skip
        try:
            wait_for(lambda: sum(server.answered.values()) >= 4 and server.in_flight >= 2)
        finally:
            child.kill()
            child.wait()
        # the requests in flight at the kill are still answered, and billed
        wait_for(lambda: server.in_flight == 0)
        _, ctx = annotate(records, settings, tmp_path)
        assert billed(server) <= cap
    assert runs(tmp_path)["status"].to_list() == ["killed", "stopped"]
    assert ctx.extra["statuses"]["over_budget"] > 0 and ctx.extra["job_spent_usd"] <= cap
    lost = ledger_rows(tmp_path).filter(pl.col("status") == "lost")
    assert lost.height >= 1  # in flight when the child died: booked at their worst case
    assert (lost["cost_usd"] == lost["reserved_usd"]).all()


# --- signals, through `curate annotate` ----------------------------------------------------

SOURCES = 12


@pytest.fixture(scope="module")
def pii_done(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder whose pipeline has ingested and stripped PII from 12 documented Python files,
    so that `curate annotate` only annotates."""
    root = tmp_path_factory.mktemp("pipeline")
    (root / "src").mkdir()
    for i in range(SOURCES):
        (root / "src" / f"mod{i}.py").write_text(
            f'"""Compute the checksum of block {i}."""\n\ndef checksum(data):\n'
            f"    return sum(data) % {i + 7}\n"
        )
    quiet = Console(file=io.StringIO())
    run_pipeline(load_config(write_config(root, root)), until="pii", console=quiet)
    return root


def write_config(root: Path, folder: Path, **annotate: object) -> Path:
    """`curate.toml` in `folder` over the pipeline in `root`, with its own ledger."""
    settings = {"tasks": ["instruction_for_code"], "ledger": str(folder / "ledger.sqlite"),
                "retry_base_s": 0.05, **annotate}  # fmt: skip
    path = folder / "curate.toml"
    path.write_text(
        f'workdir = "{root / "work"}"\nstages = ["ingest", "pii", "annotate"]\n'
        f'[ingest]\nsources = [{{type = "dir", path = "{root / "src"}"}}]\n'
        "[pii]\nner = false\nworkers = 1\n[annotate]\n"
        + "".join(f"{key} = {json.dumps(value)}\n" for key, value in settings.items())
    )
    return path


def curate_annotate(path: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", "from codecurate.cli import main; main()", "annotate", "-c",
         str(path)],
        env=os.environ | {"OMP_NUM_THREADS": "1"}, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def ledger_of(folder: Path, table: str) -> pl.DataFrame:
    ledger = Ledger(folder / "ledger.sqlite")
    try:
        return ledger.frame(table)
    finally:
        ledger.close()


def test_sigint_lets_the_requests_in_flight_settle_then_stops_and_exits_130(pii_done, tmp_path):
    with LocalLLMServer(latency_s=1.0) as server:
        path = write_config(pii_done, tmp_path, provider="openai", model=MODEL,
                            base_url=server.openai_url, concurrency=3)  # fmt: skip
        child = curate_annotate(path)
        try:
            wait_for(lambda: sum(server.answered.values()) >= 3 and server.in_flight == 3)
            at_signal = len(server.requests)
            child.send_signal(signal.SIGINT)
            _, stderr = child.communicate(timeout=60)
        finally:
            child.kill()
        assert child.returncode == 130, stderr
        message = " ".join(stderr.split())  # as rich wrapped it
        assert "interrupted by SIGINT once the requests in flight had settled" in message
        # nothing was sent after the signal, beyond a request already on its way
        assert len(server.requests) <= at_signal + 3 < SOURCES
        rows = ledger_of(tmp_path, "requests")
        # every answer the server gave (and billed) is booked and cached: none was lost
        assert rows["status"].to_list() == ["ok"] * sum(server.answered.values())
        assert ledger_of(tmp_path, "runs")["status"].to_list() == ["interrupted"]

        result = CliRunner().invoke(app, ["annotate", "-c", str(path)])
        assert result.exit_code == 0, result.output
    assert sorted(server.answered.values()) == [1] * SOURCES  # nothing paid twice


def test_a_second_sigint_abandons_the_requests_in_flight_and_nothing_is_paid_twice(
    pii_done, tmp_path
):
    with LocalLLMServer() as server:
        server.hang_after = 4  # then every request hangs: in flight until abandoned
        path = write_config(pii_done, tmp_path, provider="openai", model=MODEL,
                            base_url=server.openai_url, concurrency=3)  # fmt: skip
        child = curate_annotate(path)
        try:
            wait_for(lambda: len(server.requests) == 4 + 3)
            child.send_signal(signal.SIGINT)
            time.sleep(1.0)
            assert child.poll() is None  # the first waits for the requests in flight
            assert len(server.requests) == 4 + 3
            child.send_signal(signal.SIGINT)
            _, stderr = child.communicate(timeout=30)
        finally:
            child.kill()
        assert child.returncode == 130, stderr
        message = " ".join(stderr.split())  # as rich wrapped it
        assert "aborted by a second SIGINT: 3 requests in flight were abandoned" in message
        rows = ledger_of(tmp_path, "requests")
        abandoned = rows.filter(pl.col("status") == "abandoned")
        assert abandoned.height == 3 and (abandoned["cost_usd"] == abandoned["reserved_usd"]).all()
        assert ledger_of(tmp_path, "runs")["status"].to_list() == ["aborted"]

        server.hang_after = None
        server.release()
        result = CliRunner().invoke(app, ["annotate", "-c", str(path)])
        assert result.exit_code == 0, result.output
    assert sorted(server.answered.values()) == [1] * SOURCES


# --- what annotation costs ------------------------------------------------------------------


def test_cost_report_counts_malformed_and_failed_answers(server, tmp_path):
    server.faults = ["malformed"] * 40 + ["500", "500"]
    annotate(code_records(21), config(server, concurrency=1, max_retries=1), tmp_path)
    ledger = Ledger(tmp_path / "annotations.sqlite")
    try:
        [row] = spend(ledger, "run").iter_rows(named=True)
    finally:
        ledger.close()
    assert (row["requests"], row["malformed"], row["failed"]) == (42, 40, 2)


def test_the_estimate_brackets_a_run_whose_answers_hit_max_tokens_and_are_asked_again(
    server, tmp_path
):
    long = {"instruction": "Write a parser " + "that handles every case " * 40}
    short = {"instruction": "Write a checksum function with its tests."}

    def answer(messages: list[dict[str, str]]) -> dict[str, str]:
        # half the records first get an answer cut at max_tokens (so malformed), then a short
        # one when asked again
        number = int(re.findall(r"mod(\d+)\.py", "\n".join(m["content"] for m in messages))[-1])
        asked_again = messages[-1]["content"].startswith("That answer was not usable")
        return long if number % 2 == 0 and not asked_again else short

    server.answer = answer
    # JSON answers: one cut at max_tokens is malformed (a cut text answer would still read)
    settings = config(server, tasks=["instruction_for_code"], max_tokens=40, protocol="json_schema")
    records = code_records(60)
    annotate(records.head(30), settings, tmp_path)
    ledger = Ledger(tmp_path / "annotations.sqlite")
    try:
        measured, answers = refined(settings, ledger)
    finally:
        ledger.close()
    assert answers == 30 and measured.reask_rate == pytest.approx(0.5)
    [row] = estimate(records.tail(30).lazy(), measured).iter_rows(named=True)
    before = billed(server)
    annotate(records.tail(30), settings, tmp_path)
    actual = billed(server) - before
    assert row["cost_low"] <= actual <= row["cost_high"]
    assert row["cost_expected"] == pytest.approx(actual, rel=0.1)


def test_prompts_over_the_models_context_are_skipped_with_a_reason(server, tmp_path):
    prices = tmp_path / "prices.toml"
    prices.write_text(f'as_of = 2026-11-01\n[models."{MODEL}"]\ninput_per_mtok = 0.15\n'
                      "output_per_mtok = 0.6\ncontext_tokens = 1_000\n")  # fmt: skip
    records = code_records(5).with_columns(
        content_clean=pl.when(pl.col("path") >= "pkg/mod3.py")
        .then(pl.col("content") + "x = 1\n" * 400)  # some 1,600 tokens
        .otherwise(pl.col("content"))
    )
    settings = config(server, prices=prices, max_tokens=100, tasks=["instruction_for_code"])
    _, ctx = annotate(records, settings, tmp_path)
    assert ctx.extra["statuses"] == {"ok": 3, "prompt_too_long": 2} and len(server.requests) == 3
    quarantined = ctx.quarantine_frame()
    assert quarantined["reason"].to_list() == ["annotation_prompt_too_long"] * 2
    assert "is over the 900 allowed (max_prompt_tokens)" in quarantined["detail"][0]
    assert ctx.extra["to_retry"] == 0  # they are done: a rerun would only skip them again
    [row] = estimate(records.lazy(), settings).iter_rows(named=True)
    assert (row["records"], row["too_long"]) == (5, 2)
    assert "x = 1\\nx = 1" not in json.dumps(server.requests)


def test_the_offline_annotator_is_not_rate_limited(tmp_path):
    # at 1 request a minute a rate limiter would hold 150 records for two and a half hours
    clock = FakeClock()
    _, ctx = annotate(code_records(150), config(rpm=1, tpm=1), tmp_path, clock)
    assert ctx.extra["statuses"] == {"ok": 150} and clock.waits == []


def test_a_record_that_raises_as_its_answer_is_prepared_leaves_the_stage_alone(
    tmp_path, monkeypatch
):
    from annotators.providers import offline

    records = code_records(3)
    broken = records.filter(pl.col("path") == "pkg/mod1.py")["id"].item()

    def breaks_on_one(task, record):
        if record["path"] == "pkg/mod1.py":
            raise KeyError("language")
        return offline.offline_reply(task, record)

    monkeypatch.setattr("annotators.prepare.offline_reply", breaks_on_one)
    *_, annotated = Runner(tmp_path).run(pipeline(3, config(), tmp_path))
    assert annotated.extra["statuses"] == {"ok": 2}
    [row] = pl.read_parquet(tmp_path / "quarantine.parquet").iter_rows(named=True)
    # the detail is a digest: this pipeline has no pii stage to redact it with
    assert (row["reason"], row["id"], row["detail"][:9]) == ("stage_error", broken, "KeyError:")
    out = stage_frame(tmp_path / annotated.tag).collect()
    assert sorted(out["id"]) == sorted(set(records["id"]) - {broken})
    assert out["instruction"].null_count() == 0


def test_an_unexpected_error_on_one_record_is_its_stage_error_and_the_run_goes_on(tmp_path):
    from annotators.providers.offline import OfflineProvider

    records = code_records(3)
    broken = records["id"][1]

    class BreaksOnOne(OfflineProvider):
        """The offline annotator with a bug that one record sets off."""

        async def complete(self, prompt, params):
            if prompt.record_id == broken:
                raise KeyError("language")
            return await super().complete(prompt, params)

    stage = AnnotateStage(config(), tmp_path)
    ctx = StageContext(tmp_path, "05_annotate")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("annotators.stage.make_provider", lambda _: BreaksOnOne())
        out = stage.run(records.lazy(), ctx)
    assert ctx.extra["statuses"] == {"ok": 2, "stage_error": 1} and ctx.extra["to_retry"] == 1
    [row] = ctx.quarantine_frame().iter_rows(named=True)
    assert (row["reason"], row["id"], row["detail"]) == (
        "stage_error",
        broken,
        "KeyError: 'language'",
    )
    assert out.filter(pl.col("id") != broken)["instruction"].null_count() == 0
