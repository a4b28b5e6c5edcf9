"""Prompts prepared where a part's records are (its worker): each record's messages, exact
token count and cache key, and for the offline annotator its answer with the quality flags
that need the code.

The annotate plan reads only these rows. The process that books the run (one budget, ledger
and job) then counts no token, and with the offline annotator it holds no record's code:
the code task's response is the record's own code, filled in when each part joins its
annotations.
"""

from __future__ import annotations

import json
from typing import Any

import polars as pl

from annotators.config import AnnotateConfig
from annotators.estimate import prompt_tokens
from annotators.providers import Prompt, Unanswerable, resolve_protocol
from annotators.providers.offline import PREPARED, SKIP_REASON, offline_reply
from annotators.quality import quality_flags
from annotators.runner import cache_key, params_of
from annotators.tasks import load_task, task_kind
from annotators.tokens import encoding_for_model
from curation.engines import BatchFunction

CODE_TASK = "instruction_for_code"
# What a prompt's outcome reads of its record besides the code (quarantine, kept replies).
WHERE = ("source", "path", "language")
PREPARED_SCHEMA = {
    "id": pl.String, "task": pl.String, "key": pl.String, "prompt_tokens": pl.Int64,
    **{name: pl.String for name in WHERE},
    # what a provider sends and the code its answers are checked against: null for the
    # offline annotator, whose answer and flags are written here instead
    "messages": pl.String, "content_clean": pl.String,
    PREPARED: pl.String, SKIP_REASON: pl.String, "quality_flags": pl.List(pl.String),
    # a record that raised while it was prepared (it has no prompt)
    "error_type": pl.String, "error": pl.String,
}  # fmt: skip


def build_prompts(records: pl.DataFrame, config: AnnotateConfig) -> list[Prompt]:
    """One prompt per record, its tokens counted exactly and its cache key computed, in the
    messages of the config's answer protocol (`auto` is resolved first)."""
    config = resolve_protocol(config)
    params = params_of(config)
    prompts = []
    for task_name in config.tasks:
        task = load_task(task_name)
        chosen = records.filter(task_kind() == task.kind)
        tokens = (
            prompt_tokens(chosen, task_name, config.model, config.protocol) if chosen.height else []
        )
        for row, count in zip(chosen.iter_rows(named=True), tokens, strict=True):
            messages = task.messages(row, config.protocol)
            key = cache_key(config.provider, config.model, messages, params)
            record = {k: row[k] for k in ("content_clean", *WHERE)}
            prompts.append(Prompt(key, row["id"], task_name, messages, int(count), record))
    return prompts


def answer_flags(task: str, answer: dict[str, str], record: dict[str, Any]) -> list[str]:
    """The quality flags an answer earns on its own (a duplicate is found over a run's)."""
    instruction, response = load_task(task).columns(answer, record)
    is_code = task == CODE_TASK
    return quality_flags(instruction, None if is_code else response,
                         record["content_clean"] if is_code else None, record["language"],
                         record["path"])  # fmt: skip


def prepared_rows(records: pl.DataFrame, config: AnnotateConfig) -> pl.DataFrame:
    """Per record a task reads: its prompt, and with the offline annotator its answer."""
    offline = config.provider == "offline"
    rows = []
    for prompt in build_prompts(records, config):
        row = {"id": prompt.record_id, "task": prompt.task, "key": prompt.key,
               "prompt_tokens": prompt.prompt_tokens,
               **{name: prompt.record[name] for name in WHERE}}  # fmt: skip
        if offline:
            row.update(_offline_answer(prompt))
        else:
            row["messages"] = json.dumps(prompt.messages, ensure_ascii=False)
            row["content_clean"] = prompt.record["content_clean"]
        rows.append(row)
    return pl.DataFrame(rows, schema=PREPARED_SCHEMA)


def _offline_answer(prompt: Prompt) -> dict[str, Any]:
    try:
        reply = offline_reply(prompt.task, prompt.record)
    except Unanswerable as e:
        return {PREPARED: None, SKIP_REASON: str(e)}
    answer = load_task(prompt.task).parse(reply.text)
    return {PREPARED: reply.text, "quality_flags": answer_flags(prompt.task, answer, prompt.record)}


def prompts_of(prepared: pl.DataFrame) -> list[Prompt]:
    """The prompts of prepared rows, as the runner sends and books them: an offline answer
    travels in its record, where the offline annotator finds it."""
    prompts = []
    for row in prepared.iter_rows(named=True):
        record = {name: row[name] for name in ("content_clean", *WHERE)}
        if row["messages"] is None:  # the offline annotator's: answered already
            record |= {PREPARED: row[PREPARED], SKIP_REASON: row[SKIP_REASON],
                       "quality_flags": row["quality_flags"]}  # fmt: skip
        messages = [] if row["messages"] is None else json.loads(row["messages"])
        prompts.append(
            Prompt(row["key"], row["id"], row["task"], messages, row["prompt_tokens"], record)
        )
    return prompts


class PreparedPrompts(BatchFunction):
    """`prepared_rows` of a batch; the encoding loads once per worker."""

    def __init__(self, config: AnnotateConfig) -> None:
        self.config = config

    def setup(self) -> None:
        encoding_for_model(self.config.model)

    def __call__(self, batch: pl.DataFrame) -> pl.DataFrame:
        return prepared_rows(batch, self.config)
