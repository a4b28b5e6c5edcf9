"""Raw replies of failed and flagged answers, kept in the ledger so that anyone can read why
an answer was set aside (`curate cost report --failures`).

A reply is redacted with the PII stage's pattern detectors (a model may echo or invent an
e-mail or a key), on the engine's workers, and capped in size before it is stored.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Final

import polars as pl

from annotators.ledger import KeptReply, Ledger
from annotators.providers import Prompt
from curation.engines import BatchFunction, Engine
from curation.errors import MissingDependency

if TYPE_CHECKING:
    from annotators.runner import Outcome
    from curation.pii.engine import PIIEngine

MAX_REPLY_CHARS: Final = 4_000
REDACT_BATCH: Final = 256
NOT_REDACTED: Final = "[not kept: redacting replies needs the pii extra]"


class RedactedReplies(BatchFunction):
    """The `text` column capped at MAX_REPLY_CHARS, then with PII replaced by placeholders
    (NOT_REDACTED for every text where the pii extra is missing)."""

    def setup(self) -> None:
        from curation.pii import PIIConfig, load_engine

        self._engine: PIIEngine | None
        try:
            # no NER: a reply is short, and spaCy would take longer to load than to run
            self._engine = load_engine(PIIConfig(ner=False))
        except MissingDependency:
            self._engine = None

    def __call__(self, batch: pl.DataFrame) -> pl.DataFrame:
        if self._engine is None:
            return pl.DataFrame({"text": [NOT_REDACTED] * batch.height})
        from curation.pii.stage import redact_many

        capped = batch["text"].str.slice(0, MAX_REPLY_CHARS).to_list()
        cleaned = redact_many(self._engine, capped, [None] * len(capped))
        return pl.DataFrame({"text": [clean for clean, _ in cleaned]}, schema={"text": pl.String})


def redacted(texts: list[str], engine: Engine) -> list[str]:
    """Each text capped and redacted (`RedactedReplies`) on `engine`'s workers, so the process
    that books the replies never loads Presidio."""
    frames = engine.map_batches(pl.LazyFrame({"text": texts}, schema={"text": pl.String}),
                                RedactedReplies(), batch_size=REDACT_BATCH)  # fmt: skip
    return [text for frame in frames for text in frame["text"]]


def replies_to_keep(
    outcomes: Iterable[Outcome],
    prompts: Mapping[str, Prompt],
    flags: Mapping[str, list[str]],
    engine: Engine,
) -> list[KeptReply]:
    """The raw reply of every answer that did not parse, and of every flagged one."""
    chosen: list[tuple[Outcome, str, str]] = []
    for outcome in outcomes:
        if outcome.reply is None:
            continue
        if outcome.answer is None:
            chosen.append((outcome, outcome.status, outcome.error or ""))
        elif flags.get(outcome.record_id):
            chosen.append((outcome, "flagged", ", ".join(flags[outcome.record_id])))
    texts = redacted([outcome.reply or "" for outcome, _, _ in chosen], engine)
    return [
        KeptReply(outcome.record_id, prompts[outcome.record_id].record.get("path"),
                  outcome.task, status, reason, text, len(outcome.reply or ""))
        for (outcome, status, reason), text in zip(chosen, texts, strict=True)
    ]  # fmt: skip


def failures(ledger: Ledger, run_id: str | None = None) -> pl.DataFrame:
    """Kept replies of one run (default: the latest run that kept any), malformed first."""
    replies = ledger.frame("replies")
    if replies.is_empty():
        return replies
    run = run_id or replies.sort("id")["run_id"][-1]
    return (
        replies.filter(pl.col("run_id") == run)
        .sort(pl.col("status") == "flagged", "id")
        .select("run_id", "record_id", "path", "task", "status", "reason", "chars", "text")
    )
