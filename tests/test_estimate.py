"""Cost before spending: exact prompt tokens per task, a completion range, dated prices."""

from datetime import date

import polars as pl
import pytest

from annotators.config import AnnotateConfig, load_prices
from annotators.estimate import chat_tokens, estimate, prices_age_warning, prompt_tokens
from annotators.tasks import load_task
from annotators.tokens import encoding_for_model
from curation import ConfigError
from curation.sources.common import finish_records

CODE = 'def area(r):\n    """Area of a circle."""\n    return 3.14159 * r * r\n'
# Messages that OpenAI's cookbook ("How to count tokens with tiktoken", section 6,
# github.com/openai/openai-cookbook examples/How_to_count_tokens_with_tiktoken.ipynb) sent
# to the chat API, and the prompt_tokens the API reported for them, per model.
COOKBOOK_MESSAGES = [
    {"role": "system", "content": "You are a helpful, pattern-following assistant that "
     "translates corporate jargon into plain English."},
    {"role": "system", "name": "example_user",
     "content": "New synergies will help drive top-line growth."},
    {"role": "system", "name": "example_assistant",
     "content": "Things working well together will increase revenue."},
    {"role": "system", "name": "example_user", "content": "Let's circle back when we have more "
     "bandwidth to touch base on opportunities for increased leverage."},
    {"role": "system", "name": "example_assistant",
     "content": "Let's talk later when we're less busy about how to do better."},
    {"role": "user", "content": "This late pivot means we don't have time to boil the ocean for "
     "the client deliverable."},
]  # fmt: skip
COOKBOOK_PROMPT_TOKENS = {"gpt-4o-mini": 124, "gpt-4o": 124, "gpt-4": 129}


def records(**kinds: int) -> pl.LazyFrame:
    rows = [
        {"kind": kind, "source": "s", "path": f"{kind}{i}", "content": f"{CODE}# {kind} {i}\n",
         "language": "python" if kind == "code" else None}
        for kind, n in kinds.items() for i in range(n)
    ]  # fmt: skip
    frame = finish_records(rows)
    return frame.with_columns(content_clean=pl.col("content")).lazy()


def test_prompt_tokens_count_the_chat_messages_as_the_api_does():
    for model, billed in COOKBOOK_PROMPT_TOKENS.items():
        assert chat_tokens(COOKBOOK_MESSAGES, model) == billed, model
    # a record's prompt, counted in a batch over the distinct texts, is that request's count
    frame = records(code=3).collect()
    task = load_task("instruction_for_code")
    assert encoding_for_model("gpt-4o-mini")[1]
    assert prompt_tokens(frame, "instruction_for_code", "gpt-4o-mini", "text").to_list() == [
        chat_tokens(task.messages(row, "text"), "gpt-4o-mini")
        for row in frame.iter_rows(named=True)
    ]


def test_only_content_clean_reaches_a_prompt():
    frame = records(code=1).collect().with_columns(content_clean=pl.lit("<redacted text>"))
    messages = load_task("instruction_for_code").messages(frame.row(0, named=True), "text")
    user = messages[-1]["content"]
    assert "<redacted text>" in user and "area" not in user
    with pytest.raises(ConfigError, match="run the pii stage"):
        load_task("instruction_for_code").messages({"id": "x", "content": CODE}, "text")


def reask_tokens_by_hand(task: str, model: str) -> int:
    """The two messages a request that asks again adds, counted as the cookbook does."""
    encoding, _ = encoding_for_model(model)
    added = load_task(task).retry_messages(
        [], "", "not JSON: Expecting value at char 0", "json_schema"
    )
    return sum(3 + len(encoding.encode(m["role"])) + len(encoding.encode(m["content"]))
               for m in added)  # fmt: skip


def test_estimate_per_task_with_prices_and_a_range():
    config = AnnotateConfig(model="gpt-4o-mini", tasks=["instruction_for_code", "qa_from_issue"])
    frame = records(code=3, issue=2, commit=1)
    result = estimate(frame, config)
    assert result["records"].to_list() == [3, 2]
    price = load_prices().price("gpt-4o-mini")
    row = result.row(0, named=True)
    code = frame.filter(pl.col("kind") == "code").collect()
    tokens = prompt_tokens(code, "instruction_for_code", "gpt-4o-mini", "json_schema").to_list()
    extra = reask_tokens_by_hand("instruction_for_code", "gpt-4o-mini")
    # each answer at 0.1 completion tokens per prompt token; 5% asked for once more
    expected = sum(
        price.cost(p, round(p * 0.1))
        + 0.05 * price.cost(p + round(p * 0.1) + extra, round(p * 0.1))
        for p in tokens
    )
    assert row["prompt_tokens"] == sum(tokens)
    assert row["cost_expected"] == pytest.approx(expected, abs=1e-6)
    assert row["cost_low"] < row["cost_expected"] < row["cost_high"]


def test_the_estimate_counts_the_pairs_that_need_an_instruction_as_the_stage_sends_them():
    given = finish_records([{"kind": "pair", "source": "s", "path": "p:1", "content": CODE,
                             "instruction": "Compute a circle's area."}])  # fmt: skip
    needing = records(pair=2).collect()
    pairs = pl.concat([needing, given.with_columns(content_clean=pl.col("content"))])
    config = AnnotateConfig(tasks=["instruction_for_code"])
    result = estimate(pairs.lazy(), config)
    assert result["records"].to_list() == [2]  # the pair with an instruction needs none
    # a pair's prompt is a file's with the same text and path
    as_files = estimate(needing.with_columns(kind=pl.lit("code")).lazy(), config)
    assert result["prompt_tokens"][0] == as_files["prompt_tokens"][0] > 0


def test_the_estimate_caps_answers_at_max_tokens_and_prices_the_reasks():
    # every answer would be longer than max_tokens at any ratio of the range: all are cut at 2
    config = AnnotateConfig(tasks=["instruction_for_code"], max_tokens=2)
    frame = records(code=4)
    row = estimate(frame, config).row(0, named=True)
    price = load_prices().price("gpt-4o-mini")
    prompt = row["prompt_tokens"]
    extra = 4 * reask_tokens_by_hand("instruction_for_code", "gpt-4o-mini")
    first = price.cost(prompt, 4 * 2)
    again = price.cost(prompt + 4 * 2 + extra, 4 * 2)
    assert row["cost_low"] == pytest.approx(first, abs=1e-6)  # none asked again
    assert row["cost_expected"] == pytest.approx(first + 0.05 * again, abs=1e-6)
    assert row["cost_high"] == pytest.approx(first + 0.5 * again, abs=1e-6)


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
