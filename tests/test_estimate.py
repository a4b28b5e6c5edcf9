"""Cost before spending: exact prompt tokens per task, a completion range, dated prices."""

from datetime import date

import polars as pl
import pytest

from annotators.config import AnnotateConfig, load_prices
from annotators.estimate import estimate, prices_age_warning, prompt_tokens
from annotators.tasks import load_task
from annotators.tokens import TOKENS_PER_MESSAGE, TOKENS_PER_REPLY, encoding_for_model
from curation import ConfigError
from curation.sources.common import finish_records

CODE = 'def area(r):\n    """Area of a circle."""\n    return 3.14159 * r * r\n'


def records(**kinds: int) -> pl.LazyFrame:
    rows = [
        {"kind": kind, "source": "s", "path": f"{kind}{i}", "content": f"{CODE}# {kind} {i}\n",
         "language": "python" if kind == "code" else None}
        for kind, n in kinds.items() for i in range(n)
    ]  # fmt: skip
    frame = finish_records(rows)
    return frame.with_columns(content_clean=pl.col("content")).lazy()


def test_prompt_tokens_count_the_chat_messages_as_the_api_does():
    frame = records(code=1).collect()
    task = load_task("instruction_for_code")
    encoding, exact = encoding_for_model("gpt-4o-mini")
    messages = task.messages(frame.row(0, named=True), "text")
    expected = sum(len(encoding.encode_ordinary(m["content"])) + TOKENS_PER_MESSAGE
                   for m in messages) + TOKENS_PER_REPLY  # fmt: skip
    counted = prompt_tokens(frame, "instruction_for_code", "gpt-4o-mini", "text")
    assert exact and counted.to_list() == [expected]


def test_only_content_clean_reaches_a_prompt():
    frame = records(code=1).collect().with_columns(content_clean=pl.lit("<redacted text>"))
    messages = load_task("instruction_for_code").messages(frame.row(0, named=True), "text")
    user = messages[-1]["content"]
    assert "<redacted text>" in user and "area" not in user
    with pytest.raises(ConfigError, match="run the pii stage"):
        load_task("instruction_for_code").messages({"id": "x", "content": CODE}, "text")


def test_estimate_per_task_with_prices_and_a_range():
    config = AnnotateConfig(model="gpt-4o-mini", tasks=["instruction_for_code", "qa_from_issue"])
    result = estimate(records(code=3, issue=2, commit=1), config)
    assert result["records"].to_list() == [3, 2]
    price = load_prices().price("gpt-4o-mini")
    row = result.row(0, named=True)
    expected = (row["prompt_tokens"] * price.input_per_mtok
                + round(row["prompt_tokens"] * 0.1) * price.output_per_mtok) / 1e6  # fmt: skip
    assert row["cost_expected"] == pytest.approx(expected, abs=1e-6)
    assert row["cost_low"] < row["cost_expected"] < row["cost_high"]


def test_batch_pricing_applies_the_discount():
    frame = records(code=5)
    plain = estimate(frame, AnnotateConfig(tasks=["instruction_for_code"]))["cost_expected"][0]
    batched = AnnotateConfig(provider="openai", tasks=["instruction_for_code"], batch=True)
    batch = estimate(frame, batched)
    assert batch["cost_expected"][0] == pytest.approx(plain * 0.5, abs=1e-6)


def test_unknown_models_tasks_and_ranges_are_clear_errors():
    with pytest.raises(ConfigError, match="no price for model 'gpt-99'"):
        estimate(records(code=1), AnnotateConfig(model="gpt-99", tasks=["instruction_for_code"]))
    with pytest.raises(ConfigError, match="unknown task 'summarise'"):
        AnnotateConfig(tasks=["summarise"])
    with pytest.raises(ConfigError, match="completion_range"):
        AnnotateConfig(completion_ratio=0.9, completion_range=(0.1, 0.5))


def test_an_old_price_table_is_flagged(tmp_path):
    table = tmp_path / "prices.toml"
    table.write_text('as_of = "2026-01-01"\n[models.m]\ninput_per_mtok = 1\noutput_per_mtok = 2\n')
    as_of = load_prices(table).as_of
    assert prices_age_warning(as_of, today=date(2026, 2, 1)) is None
    assert "check them" in prices_age_warning(as_of, today=date(2026, 6, 1))


def test_prompt_templates_are_versioned_by_hash():
    first, again = load_task("qa_from_issue"), load_task("qa_from_issue")
    assert first.prompt_hash == again.prompt_hash != load_task("instruction_for_code").prompt_hash
