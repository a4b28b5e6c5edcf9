"""Raw replies of failed and flagged answers, kept in the ledger so that anyone can read why
an answer was set aside (`curate cost report --failures`).

A reply is redacted with the PII stage's pattern detectors (a model may echo or invent an
e-mail or a key) and capped in size before it is stored.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Final

import polars as pl

from annotators.ledger import KeptReply, Ledger
from annotators.providers import Prompt
from curation.errors import MissingDependency

if TYPE_CHECKING:
    from annotators.runner import Outcome
    from curation.pii.engine import PIIEngine

MAX_REPLY_CHARS: Final = 4_000
NOT_REDACTED: Final = "[not kept: redacting replies needs the pii extra]"


def _engine() -> PIIEngine | None:
    from curation.pii import PIIConfig, load_engine

    try:
        # no NER: a reply is short, and spaCy would take longer to load than to run
        return load_engine(PIIConfig(ner=False))
    except MissingDependency:
        return None


def redacted(texts: list[str]) -> list[str]:
    """Each text capped at MAX_REPLY_CHARS, then with PII replaced by placeholders."""
    if not texts:
        return []
    engine = _engine()
    if engine is None:
        return [NOT_REDACTED] * len(texts)
    from curation.pii.stage import redact_many

    capped = [text[:MAX_REPLY_CHARS] for text in texts]
    return [clean for clean, _ in redact_many(engine, capped, [None] * len(capped))]


def replies_to_keep(
    outcomes: Iterable[Outcome], prompts: Mapping[str, Prompt], flags: Mapping[str, list[str]]
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
    texts = redacted([outcome.reply or "" for outcome, _, _ in chosen])
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
