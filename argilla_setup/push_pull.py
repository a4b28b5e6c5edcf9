"""Pushing annotated records to the review dataset, pulling what reviewers decided (the
rule is in votes.py), and sending undecided records back to the reviewers' queue.

Argilla 2.8 cannot put one completed record back in the queue: a record's status is computed
(completed once `min_submitted` responses are submitted; a PATCH of `status` is ignored),
and `min_submitted` belongs to the whole dataset (raising it would reopen every record, and
only through an rq worker that the local server does not run). So an undecided record goes
back as a new Argilla record for its next round, `<id>-round-<n>`, with the same fields and a
note on why; the votes of all its rounds are counted together, each reviewer's latest.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import argilla as rg
import polars as pl

from argilla_setup.agreement import agreement, per_annotator
from argilla_setup.settings import FLAG_LABELS, QUALITY_AGENT
from argilla_setup.votes import (
    CONFLICTING_CORRECTIONS,
    CORRECTION_MISSING,
    DISAGREEMENT,
    UNDECIDED,
    ReviewRecord,
    Vote,
    final_record,
)

ROUND_ID: Final = re.compile(r"(.+)-round-(\d+)")
PAGE: Final = 1000  # argilla-server's largest page of records
REVIEW_COLUMNS: Final = {
    "id": pl.String, "review_status": pl.String, "final_instruction": pl.String,
    "reviewers": pl.List(pl.String), "review_labels": pl.List(pl.String),
    "correction_candidates": pl.List(pl.String),
}  # fmt: skip
WHY_AGAIN: Final = {
    DISAGREEMENT: "the reviewers so far were split on quality.",
    CONFLICTING_CORRECTIONS: "the reviewers so far wrote different corrections; keep the best "
    "one (paste it into *Corrected instruction*) or write a better one:",
    CORRECTION_MISSING: "a reviewer said it needs a fix but wrote no correction.",
}


def argilla_id(pipeline_id: str, review_round: int = 1) -> str:
    """The Argilla record id of a pipeline record in a review round (round 1: its own id, so a
    re-push updates it)."""
    return pipeline_id if review_round == 1 else f"{pipeline_id}-round-{review_round}"


def pipeline_id_and_round(external_id: str) -> tuple[str, int]:
    found = ROUND_ID.fullmatch(external_id)
    return (found[1], int(found[2])) if found else (external_id, 1)


# push


def reviewable(records: pl.DataFrame) -> pl.DataFrame:
    """The annotated records: those with an instruction."""
    return records.filter(pl.col("instruction").is_not_null())


def to_argilla(row: dict[str, Any], review_round: int = 1, note: str | None = None) -> rg.Record:
    """One pipeline record as the Argilla record of a review round; `note` says why it is
    reviewed again."""
    language = row.get("language") or ""
    meta = json.loads(row["meta"]) if row.get("meta") else {}
    context = [f"**source** {row['source']}", f"**path** `{row['path']}`"]
    if meta.get("url"):
        context.append(f"**link** {meta['url']}")
    if note:
        context.append(f"**round {review_round}**: {note}")
    flags = list(row.get("quality_flags") or []) + ["not_verified"] * (row.get("verified") is False)
    tokens = (row.get("prompt_tokens") or 0) + (row.get("completion_tokens") or 0)
    is_code = row.get("kind") in ("code", "pair")  # a pair's answer is its code
    code = row.get("content_clean") if is_code else row.get("response")
    passed = 1 - len(flags) / len(FLAG_LABELS)
    judged = row.get("judge_score")
    return rg.Record(
        id=argilla_id(row["id"], review_round),
        fields={"instruction": row["instruction"], "code": _fenced(code or "", language),
                "context": "  \n".join(context)},
        metadata={
            "language": language or "none", "source": row["source"], "task": row.get("task"),
            "annotator": row.get("annotator"), "quality_flags": flags or ["none"],
            "cost_usd": float(row.get("cost_usd") or 0.0), "tokens": int(tokens),
            "pii_count": int(row.get("pii_count") or 0),
            "cluster_size": int(row.get("cluster_size") or 1),
        },
        suggestions=[
            rg.Suggestion("corrected_instruction", row["instruction"],
                          agent=row.get("annotator") or "llm"),
            # with the LLM judge's 1-5 score (annotate.judge), its share of 5 is the score
            rg.Suggestion("quality", "needs_fix" if flags else "good",
                          score=round(passed if judged is None else judged / 5, 3),
                          agent=QUALITY_AGENT if judged is None else f"{QUALITY_AGENT}+judge"),
            *([rg.Suggestion("issues", flags, agent=QUALITY_AGENT)] if flags else []),
        ],
    )  # fmt: skip


def _fenced(code: str, language: str) -> str:
    fence = "````" if "```" in code else "```"
    return f"{fence}{language}\n{code}\n{fence}"


def content_hash(row: dict[str, Any]) -> str:
    """What a pushed record shows; a re-push sends only records whose hash changed."""
    shown = [row["id"], row["instruction"], row.get("content_clean"), row.get("response"),
             row.get("quality_flags"), row.get("annotator")]  # fmt: skip
    if row.get("judge_score") is not None:  # records never judged keep the hash they had
        shown.append(row["judge_score"])
    return hashlib.sha256(json.dumps(shown, default=str).encode()).hexdigest()[:16]


@dataclass
class PushResult:
    sent: int = 0
    unchanged: int = 0
    batches: int = 0
    failed: list[str] = field(default_factory=list)  # ids whose Argilla record could not be made


def push(
    dataset: rg.Dataset,
    records: pl.DataFrame,
    state_path: Path,
    batch_size: int = 256,
    on_batch: Callable[[int], None] | None = None,
    on_error: Callable[[str, Exception], None] | None = None,
) -> PushResult:
    """Send new and changed records in batches, in id order (which scatters gold records
    among the others). After each batch the pushed hashes are saved, so a push that died
    resumes with the next batch and a re-push sends only changes. A record that cannot be
    made into an Argilla record goes to `on_error` (raises without it); the others go on."""
    pushed: dict[str, str] = json.loads(state_path.read_text()) if state_path.exists() else {}
    result = PushResult()
    todo = []
    for row in reviewable(records).sort("id").iter_rows(named=True):
        digest = content_hash(row)
        if pushed.get(row["id"]) == digest:
            result.unchanged += 1
            continue
        try:
            todo.append((row["id"], to_argilla(row), digest))
        except Exception as e:  # one bad record must not stop the push: it is reported
            if on_error is None:
                raise
            on_error(row["id"], e)
            result.failed.append(row["id"])
    for start in range(0, len(todo), batch_size):
        batch = todo[start : start + batch_size]
        dataset.records.log([record for _, record, _ in batch])
        pushed.update({record_id: digest for record_id, _, digest in batch})
        _write_atomic(state_path, json.dumps(pushed))
        result.sent += len(batch)
        result.batches += 1
        if on_batch is not None:
            on_batch(len(batch))
    return result


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


# pull


def read_reviews(client: rg.Argilla, dataset: rg.Dataset) -> list[ReviewRecord]:
    """Every Argilla record of the dataset with its responses, as plain data. It reads the
    SDK's wire models (`client.api.records`): its friendly `Record.responses` leaves out
    discarded responses, which carry no values, and their count is one of the numbers."""
    usernames = {user.id: user.username for user in client.users}
    reviews, offset = [], 0
    while True:
        page = client.api.records.list(dataset.id, offset=offset, limit=PAGE,
                                       with_suggestions=False, with_responses=True)  # fmt: skip
        for model in page:
            pipeline_id, review_round = pipeline_id_and_round(str(model.external_id))
            review = ReviewRecord(pipeline_id, review_round, model.id, model.status == "completed")
            for response in model.responses or []:
                user = usernames.get(response.user_id, str(response.user_id))
                review.responders.add(user)
                status = getattr(response.status, "value", response.status)
                if status == "discarded":
                    review.discarded_by.append(user)
                elif status == "submitted":
                    review.votes.append(_vote(user, response.values or {}, review_round))
            reviews.append(review)
        if len(page) < PAGE:
            return reviews
        offset += PAGE


def _vote(user: str, values: dict[str, Any], review_round: int) -> Vote:
    def answer(question: str) -> Any:
        return (values.get(question) or {}).get("value")

    return Vote(user, answer("quality"), answer("corrected_instruction"),
                tuple(answer("issues") or ()), review_round)  # fmt: skip


@dataclass
class Pulled:
    records: pl.DataFrame  # the input with the review columns from Argilla
    reviews: list[ReviewRecord]  # what was read, for send_back
    numbers: dict[str, Any]  # agreement overall and per round, and per annotator


def pull(
    client: rg.Argilla,
    dataset: rg.Dataset,
    records: pl.DataFrame,
    gold: Mapping[str, str] | None = None,
) -> Pulled:
    """The records with review_status, reviewers, final_instruction, review_labels and
    correction_candidates from Argilla (records never pushed stay as they are), and the
    review numbers. `gold` maps gold record ids to their expected quality."""
    gold = gold or {}
    instructions = dict(reviewable(records).select("id", "instruction").iter_rows())
    reviews = read_reviews(client, dataset)
    by_record: dict[str, list[Vote]] = defaultdict(list)
    for review in reviews:
        if review.pipeline_id in instructions:
            by_record[review.pipeline_id].extend(review.votes)
    rows = [{"id": record_id, **final_record(instructions[record_id], votes)}
            for record_id, votes in by_record.items()]  # fmt: skip
    reviewed = pl.DataFrame(rows, schema=REVIEW_COLUMNS)
    updated = records.update(reviewed, on="id", how="left", include_nulls=True)
    statuses = dict(reviewed.select("id", "review_status").iter_rows())
    ours = [r for r in reviews if r.pipeline_id in instructions]
    scored = [r for r in reviews if r.pipeline_id in instructions or r.pipeline_id in gold]
    numbers = {"agreement": agreement(ours), "annotators": per_annotator(scored, statuses, gold)}
    return Pulled(updated, reviews, numbers)


def send_back(dataset: rg.Dataset, records: pl.DataFrame, reviews: list[ReviewRecord]) -> int:
    """Push the next round of each undecided record (`UNDECIDED` in its review_labels) whose
    latest round Argilla has completed, so it is back in the reviewers' Pending queue; how
    many went back. A round still waiting for responses is left as it is."""
    latest: dict[str, ReviewRecord] = {}
    for review in reviews:
        if review.pipeline_id not in latest or review.round > latest[review.pipeline_id].round:
            latest[review.pipeline_id] = review
    again = []
    for row in reviewable(records).iter_rows(named=True):
        why = [label for label in row.get("review_labels") or [] if label in UNDECIDED]
        last = latest.get(row["id"])
        if not why or last is None or not last.completed:
            continue
        note = WHY_AGAIN[why[0]]
        if why[0] == CONFLICTING_CORRECTIONS:
            note += "".join(f"  \n{n}. {text}" for n, text in
                            enumerate(row["correction_candidates"], start=1))  # fmt: skip
        again.append(to_argilla(row, last.round + 1, note))
    if again:
        dataset.records.log(again)
    return len(again)
