"""Answer protocols and raw replies: what each server is asked for, how answers are read back
whatever the model wrote, and what is kept for a person to read when an answer fails."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from support.llm_server import LocalLLMServer
from typer.testing import CliRunner

from annotators.config import AnnotateConfig
from annotators.ledger import Ledger
from annotators.providers import resolve_protocol
from annotators.replies import MAX_REPLY_CHARS, REDACT_BATCH, failures
from annotators.stage import AnnotateStage
from codecurate.cli import app
from curation.errors import ConfigError
from curation.runner import StageContext
from curation.sources.common import finish_records

MODEL = "gpt-4o-mini"
PROSE = "The code is written in Python. It uses a function to sum the data of a block."


def code_records(n: int) -> pl.DataFrame:
    rows = [{"kind": "code", "source": "repo", "path": f"pkg/mod{i}.py", "language": "python",
             "content": f'"""Checksum of block {i}."""\n\ndef checksum_{i}(data):\n'
                        f"    return sum(data) % {i + 7}\n"} for i in range(n)]  # fmt: skip
    return finish_records(rows).with_columns(content_clean=pl.col("content"))


def settings(server: LocalLLMServer, **extra: object) -> AnnotateConfig:
    return AnnotateConfig(**{"provider": "openai", "model": MODEL, "base_url": server.openai_url,
                             "tasks": ["instruction_for_code"], "timeout_s": 2.0,
                             "retry_base_s": 0.05, **extra})  # fmt: skip


def annotate(records: pl.DataFrame, config: AnnotateConfig, workdir: Path):
    ctx = StageContext(workdir, "05_annotate")
    return AnnotateStage(config, workdir).run(records.lazy(), ctx), ctx


def ledger_frame(workdir: Path, table: str) -> pl.DataFrame:
    ledger = Ledger(workdir / "annotations.sqlite")
    try:
        return ledger.frame(table)
    finally:
        ledger.close()


def test_a_server_without_guided_decoding_gets_the_text_protocol_with_worked_examples(tmp_path):
    with LocalLLMServer() as server:  # /v1/models lists nothing, like transformers serve
        out, ctx = annotate(code_records(2), settings(server), tmp_path)
    assert ctx.extra["protocol"] == "text" and ctx.extra["statuses"] == {"ok": 2}
    body = server.requests[0]
    assert "response_format" not in body and body["stop"] == ["\n\n"]
    roles = [m["role"] for m in body["messages"]]
    assert roles == ["system", "user", "assistant", "user", "assistant", "user"]
    assert "Reply with the instruction only" in body["messages"][0]["content"]
    assert ledger_frame(tmp_path, "requests")["protocol"].to_list() == ["text", "text"]
    assert out["instruction"].drop_nulls().str.starts_with("Write the code that").all()


def test_a_server_with_guided_decoding_gets_a_strict_json_schema(tmp_path):
    with LocalLLMServer(owned_by="vllm") as server:  # it refuses schemas OpenAI would refuse
        _, ctx = annotate(code_records(1), settings(server), tmp_path)
    assert ctx.extra["protocol"] == "json_schema" and ctx.extra["statuses"] == {"ok": 1}
    response_format = server.requests[0]["response_format"]
    assert response_format["type"] == "json_schema"
    assert response_format["json_schema"]["schema"] == {
        "type": "object", "properties": {"instruction": {"type": "string"}},
        "required": ["instruction"], "additionalProperties": False,
    }  # fmt: skip
    assert "stop" not in server.requests[0]
    assert ledger_frame(tmp_path, "requests")["protocol"].to_list() == ["json_schema"]


def test_a_configured_protocol_is_used_as_it_is(tmp_path):
    with LocalLLMServer(owned_by="vllm") as server:
        _, ctx = annotate(code_records(1), settings(server, protocol="json_object"), tmp_path)
    assert server.requests[0]["response_format"] == {"type": "json_object"}
    assert ctx.extra["protocol"] == "json_object" and ctx.extra["statuses"] == {"ok": 1}


def test_gemini_is_asked_for_a_response_schema(tmp_path):
    with LocalLLMServer() as server:
        config = AnnotateConfig(provider="gemini", model="gemini-2.0-flash",
                                base_url=server.gemini_url,
                                tasks=["instruction_for_code"])  # fmt: skip
        _, ctx = annotate(code_records(1), config, tmp_path)
    generation = server.requests[0]["generationConfig"]
    assert generation["responseMimeType"] == "application/json"
    assert generation["responseJsonSchema"]["required"] == ["instruction"]
    assert ctx.extra["statuses"] == {"ok": 1}


def test_auto_detection_says_which_server_did_not_answer():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = AnnotateConfig(provider="openai", base_url=f"http://127.0.0.1:{port}/v1")
    with pytest.raises(ConfigError, match=f"127.0.0.1:{port}.*set annotate.protocol"):
        resolve_protocol(config)


def test_the_old_json_mode_key_names_its_replacement():
    with pytest.raises(ConfigError, match=r"replaced by annotate\.protocol"):
        AnnotateConfig.model_validate({"json_mode": True})


def test_a_prose_reply_is_read_flagged_and_kept_for_the_reviewer(tmp_path):
    with LocalLLMServer() as server:
        server.answer = lambda messages: {"instruction": PROSE}
        out, ctx = annotate(code_records(1), settings(server), tmp_path)
    assert ctx.extra["statuses"] == {"ok": 1}
    row = out.row(0, named=True)
    assert row["instruction"] == PROSE and "not_a_request" in row["quality_flags"]
    kept = ledger_frame(tmp_path, "replies").row(0, named=True)
    assert kept["status"] == "flagged" and kept["text"] == PROSE
    assert "not_a_request" in kept["reason"] and kept["path"] == "pkg/mod0.py"


def test_malformed_replies_are_kept_redacted_and_capped(tmp_path):
    code_reply = "```python\n# ask maria.rossi@example.com\n" + "x = 1\n" * 2_000 + "```"
    with LocalLLMServer() as server:
        server.answer = lambda messages: {"instruction": code_reply}
        _, ctx = annotate(code_records(1), settings(server, max_tokens=10_000), tmp_path)
    assert ctx.extra["statuses"] == {"malformed": 1}
    assert ctx.quarantine_frame()["reason"].to_list() == ["annotation_malformed"]
    retry = server.requests[1]["messages"][-1]["content"]
    assert "a code block, not the text asked for" in retry
    kept = ledger_frame(tmp_path, "replies").row(0, named=True)
    assert (
        kept["status"] == "malformed" and kept["reason"] == "a code block, not the text asked for"
    )
    assert "maria.rossi@example.com" not in kept["text"] and "<EMAIL" in kept["text"]
    assert kept["chars"] > 3 * MAX_REPLY_CHARS and len(kept["text"]) <= MAX_REPLY_CHARS + 20


def test_replies_are_redacted_on_the_engines_workers_not_where_they_are_booked():
    # the driver of a Ray run books the replies: a Presidio engine there held 434 MB
    script = (
        "import sys\n"
        "from annotators.replies import REDACT_BATCH, redacted\n"
        "from curation.engines.local import LocalEngine\n"
        "texts = [f'ask maria{i}.rossi@example.com' for i in range(2 * REDACT_BATCH + 1)]\n"
        "clean = redacted(texts, LocalEngine(workers=2))\n"
        "raw = sum('@example.com' in text for text in clean)\n"
        "print(len(clean), raw, 'presidio_analyzer' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})  # fmt: skip
    assert done.stdout.split() == [str(2 * REDACT_BATCH + 1), "0", "False"]


def test_cost_report_failures_prints_the_raw_replies(tmp_path):
    work = tmp_path / "work"
    with LocalLLMServer() as server:
        answers = iter([{"instruction": "```\nprint(1)\n```"}] * 2 + [{"instruction": PROSE}])
        server.answer = lambda messages: next(answers)
        annotate(code_records(2), settings(server, concurrency=1), work)
    ledger = Ledger(work / "annotations.sqlite")
    try:
        kept = failures(ledger)
    finally:
        ledger.close()
    assert kept["status"].to_list() == ["malformed", "flagged"]  # malformed first
    config = tmp_path / "curate.toml"
    config.write_text('workdir = "work"\nstages = ["ingest", "annotate"]\n'
                      '[[ingest.sources]]\ntype = "dir"\npath = "."\n')  # fmt: skip
    result = CliRunner().invoke(app, ["cost", "report", "-c", str(config), "--failures"])
    assert result.exit_code == 0, result.output
    assert "1 flagged, 1 malformed" in result.output
    assert "print(1)" in result.output and PROSE in result.output.replace("\n", " ")


def test_the_same_instruction_on_several_records_is_flagged_on_each(tmp_path):
    same = {"instruction": "Write a Python function that sums the data of a block modulo a prime."}
    with LocalLLMServer() as server:
        server.answer = lambda messages: same
        out, _ = annotate(code_records(3), settings(server), tmp_path)
    flags = out["quality_flags"].to_list()
    assert all("duplicate_instruction" in f for f in flags), flags


def test_the_text_protocol_is_cut_at_the_stop_sequence(tmp_path):
    with LocalLLMServer() as server:
        server.answer = lambda messages: {"instruction": "Write checksum code.\n\nIt sums bytes."}
        out, _ = annotate(code_records(1), settings(server), tmp_path)
    assert out["instruction"].to_list() == ["Write checksum code."]
    assert json.loads(json.dumps(server.requests[0]["stop"])) == ["\n\n"]


def test_the_judge_scores_instructions_under_the_same_budget_and_flags_low_ones(tmp_path):
    def answer(messages: list[dict[str, str]]) -> dict[str, str]:
        if "Score from 1 to 5" in messages[0]["content"]:
            # the judge: a low score for the instruction of block 1
            low = "checksum_1" in messages[-1]["content"]
            return {"score": "2" if low else "5", "reason": "Matches." if not low else "Vague."}
        block = 1 if "mod1" in messages[-1]["content"] else 0
        return {"instruction": f"Write a Python function that sums the bytes of block {block}."}

    with LocalLLMServer() as server:
        server.answer = answer
        out, ctx = annotate(code_records(2), settings(server, judge=True, concurrency=1), tmp_path)
    by_path = {row["path"]: row for row in out.iter_rows(named=True)}
    assert by_path["pkg/mod0.py"]["judge_score"] == 5.0
    assert by_path["pkg/mod1.py"]["judge_score"] == 2.0
    assert "judge_rejects" in by_path["pkg/mod1.py"]["quality_flags"]
    assert "judge_rejects" not in by_path["pkg/mod0.py"]["quality_flags"]
    requests = ledger_frame(tmp_path, "requests")
    assert (
        sorted(requests["task"].to_list())
        == ["instruction_for_code"] * 2 + ["judge_instruction"] * 2
    )
    # the verdicts were paid from the run's budget
    assert ctx.extra["spent_usd"] == pytest.approx(requests["cost_usd"].sum())


def test_the_offline_annotator_cannot_judge():
    with pytest.raises(ConfigError, match="cannot judge"):
        AnnotateConfig(provider="offline", judge=True)
