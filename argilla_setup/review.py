"""The review dataset in Argilla: its settings, pushing annotated records to it, and
pulling what reviewers decided.

What a record becomes (`final_record`), from its submitted responses:
- no submitted response yet: `pending`;
- the majority of `quality` votes decides; a tie is a disagreement and goes back to review
  (`pending`, labelled `disagreement`);
- `good` -> `accepted`, `final_instruction` is the LLM's instruction;
- `needs_fix` -> `corrected`, `final_instruction` is the correction most of those voters
  wrote (still `pending` if none wrote one);
- `reject` -> `rejected`: kept in the Parquet with its status, never exported.
Discarded responses are not votes: the reviewer skipped the record.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import argilla as rg
import httpx
import polars as pl

from argilla_setup.users import quietly
from curation.schema import QUALITY_FLAGS

QUALITY: Final = ("good", "needs_fix", "reject")
REVIEWER_LABELS: Final = ("wrong", "vague", "leaks_pii", "duplicate", "not_code")
# The annotators' quality_flags, offered as labels so that the checks' findings arrive as
# suggestions reviewers confirm or clear.
FLAG_LABELS: Final = QUALITY_FLAGS
QUALITY_AGENT: Final = "codecurate-quality-checks"
# The demo's machine reviewer (`curate run --auto-review`); what it decided is labelled.
AUTO_REVIEWER: Final = "auto-review"
MACHINE_REVIEWED: Final = "machine_reviewed"

GUIDELINES = """\
# Reviewing instruction/code pairs

Each record is a piece of code and the request an LLM wrote for it: the instruction a user
would have typed to get exactly this code from an assistant.

- **good**: a developer could have asked this, and this code answers it. Accept as is.
- **needs fix**: the idea is right but the wording is not: write the better instruction in
  *corrected instruction* (it starts as the LLM's suggestion; edit it).
- **reject**: no instruction can fix it (the code is generated, a fragment, a secret...).

Mark what is wrong under *issues*; labels the automatic checks found are suggested. Values
such as `<EMAIL_ADDRESS>` or `<NAME_1>` were removed on purpose: an instruction must never
mention them. Skip (discard) a record you cannot judge; someone else will.
"""


def review_settings(min_submitted: int) -> rg.Settings:
    """Fields, questions, metadata and guidelines of the review dataset."""
    return rg.Settings(
        guidelines=GUIDELINES,
        fields=[
            rg.TextField(name="instruction", title="Instruction (written by the LLM)"),
            rg.TextField(name="code", title="Code", use_markdown=True),
            rg.TextField(
                name="context", title="Where it comes from", use_markdown=True, required=False
            ),
        ],
        questions=[
            rg.LabelQuestion(
                name="quality",
                title="Is the instruction right for this code?",
                labels={"good": "good", "needs_fix": "needs fix", "reject": "reject"},
                required=True,
            ),
            rg.TextQuestion(
                name="corrected_instruction", title="Corrected instruction", required=False
            ),
            rg.MultiLabelQuestion(
                name="issues",
                title="Issues",
                labels=[*REVIEWER_LABELS, *FLAG_LABELS],
                required=False,
            ),
        ],
        metadata=[
            rg.TermsMetadataProperty(name="language"),
            rg.TermsMetadataProperty(name="source"),
            rg.TermsMetadataProperty(name="task"),
            rg.TermsMetadataProperty(name="annotator"),
            rg.TermsMetadataProperty(name="quality_flags"),
            rg.FloatMetadataProperty(name="cost_usd"),
            rg.IntegerMetadataProperty(name="tokens"),
            rg.IntegerMetadataProperty(name="pii_count"),
            rg.IntegerMetadataProperty(name="cluster_size"),
        ],
        distribution=rg.TaskDistribution(min_submitted=min_submitted),
    )


def ensure_dataset(client: rg.Argilla, name: str, workspace: str, min_submitted: int) -> rg.Dataset:
    """The review dataset, created with its workspace on first use."""
    if quietly(client.workspaces, workspace) is None:
        rg.Workspace(name=workspace, client=client).create()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        existing = client.datasets(name=name, workspace=workspace)
    if existing is not None:
        return existing
    dataset = rg.Dataset(name=name, workspace=workspace, settings=review_settings(min_submitted),
                         client=client)  # fmt: skip
    return dataset.create()


# push


def reviewable(records: pl.DataFrame) -> pl.DataFrame:
    """The annotated records: those with an instruction."""
    return records.filter(pl.col("instruction").is_not_null())


def to_argilla(row: dict[str, Any]) -> rg.Record:
    """One pipeline record as an Argilla record; the pipeline id is its id, so a re-push
    updates it."""
    language = row.get("language") or ""
    meta = json.loads(row["meta"]) if row.get("meta") else {}
    context = [f"**source** {row['source']}", f"**path** `{row['path']}`"]
    if meta.get("url"):
        context.append(f"**link** {meta['url']}")
    flags = list(row.get("quality_flags") or []) + ["not_verified"] * (row.get("verified") is False)
    tokens = (row.get("prompt_tokens") or 0) + (row.get("completion_tokens") or 0)
    code = row.get("response") if row.get("kind") != "code" else row.get("content_clean")
    passed = 1 - len(flags) / len(FLAG_LABELS)
    return rg.Record(
        id=row["id"],
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
            rg.Suggestion("quality", "needs_fix" if flags else "good", score=round(passed, 3),
                          agent=QUALITY_AGENT),
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
    return hashlib.sha256(json.dumps(shown, default=str).encode()).hexdigest()[:16]


@dataclass
class PushResult:
    sent: int = 0
    unchanged: int = 0
    batches: int = 0


def push(
    dataset: rg.Dataset,
    records: pl.DataFrame,
    state_path: Path,
    batch_size: int = 256,
    on_batch: Callable[[int], None] | None = None,
) -> PushResult:
    """Send new and changed records in batches. After each batch the pushed hashes are saved,
    so a push that died resumes with the next batch and a re-push sends only changes."""
    pushed: dict[str, str] = json.loads(state_path.read_text()) if state_path.exists() else {}
    result = PushResult()
    todo = []
    for row in reviewable(records).iter_rows(named=True):
        digest = content_hash(row)
        if pushed.get(row["id"]) == digest:
            result.unchanged += 1
        else:
            todo.append((row, digest))
    for start in range(0, len(todo), batch_size):
        batch = todo[start : start + batch_size]
        dataset.records.log([to_argilla(row) for row, _ in batch])
        pushed.update({row["id"]: digest for row, digest in batch})
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


@dataclass
class Vote:
    user: str
    quality: str | None
    correction: str | None
    issues: list[str] = field(default_factory=list)


def final_record(instruction: str, votes: list[Vote]) -> dict[str, Any]:
    """review_status, final_instruction, reviewers and review_labels from submitted votes
    (the rule in the module docstring)."""
    reviewers = sorted(v.user for v in votes)
    labels = sorted({label for v in votes for label in v.issues}
                    | ({MACHINE_REVIEWED} if AUTO_REVIEWER in reviewers else set()))  # fmt: skip
    decided = [v for v in votes if v.quality in QUALITY]
    result: dict[str, Any] = {"review_status": "pending", "final_instruction": None,
                              "reviewers": reviewers, "review_labels": labels}  # fmt: skip
    if not decided:
        return result
    counts = Counter(v.quality for v in decided).most_common()
    if len(counts) > 1 and counts[0][1] == counts[1][1]:
        result["review_labels"] = sorted({*labels, "disagreement"})
        return result
    verdict = counts[0][0]
    if verdict == "good":
        result |= {"review_status": "accepted", "final_instruction": instruction}
    elif verdict == "reject":
        result["review_status"] = "rejected"
    else:
        fixes = Counter(
            v.correction.strip() for v in decided if v.quality == "needs_fix" and v.correction
        )
        fixes.pop("", None)
        if fixes:
            best = fixes.most_common(1)[0][0]
            result |= {"review_status": "corrected", "final_instruction": best}
    return result


def submitted_votes(
    dataset: rg.Dataset, usernames: dict[Any, str]
) -> Iterator[tuple[str, list[Vote]]]:
    """(record id, the votes of its submitted responses) for every record in the dataset."""
    for record in dataset.records(with_responses=True, with_suggestions=False):
        by_user: dict[Any, dict[str, Any]] = {}
        for response in record.responses:
            if response.status != rg.ResponseStatus.submitted:  # drafts and discards are no votes
                continue
            by_user.setdefault(response.user_id, {})[response.question_name] = response.value
        votes = [
            Vote(usernames.get(user, str(user)), answers.get("quality"),
                 answers.get("corrected_instruction"), list(answers.get("issues") or []))
            for user, answers in by_user.items()
        ]  # fmt: skip
        yield str(record.id), votes


def agreement(votes_per_record: list[list[Vote]]) -> dict[str, Any]:
    """How often reviewers who saw the same record gave it the same quality."""
    overlapping = [votes for votes in votes_per_record if len(votes) >= 2]
    unanimous = sum(len({v.quality for v in votes}) == 1 for votes in overlapping)
    rate = round(unanimous / len(overlapping), 4) if overlapping else None
    return {"records_with_two_or_more": len(overlapping), "unanimous": unanimous, "rate": rate}


def pull(
    dataset: rg.Dataset, client: rg.Argilla, records: pl.DataFrame
) -> tuple[pl.DataFrame, dict[str, Any]]:
    """The records with review_status, reviewers, final_instruction and review_labels from
    Argilla (records never pushed stay as they are), and the reviewers' agreement."""
    usernames = {user.id: user.username for user in client.users}
    instructions = dict(reviewable(records).select("id", "instruction").iter_rows())
    votes = [(record_id, v) for record_id, v in submitted_votes(dataset, usernames)
             if record_id in instructions]  # fmt: skip
    rows = [{"id": record_id, **final_record(instructions[record_id], v)} for record_id, v in votes]
    reviewed = pl.DataFrame(rows, schema={
        "id": pl.String, "review_status": pl.String, "final_instruction": pl.String,
        "reviewers": pl.List(pl.String), "review_labels": pl.List(pl.String),
    })  # fmt: skip
    updated = records.update(reviewed, on="id", how="left", include_nulls=True)
    return updated, agreement([v for _, v in votes])


def auto_review(client: rg.Argilla, dataset: rg.Dataset, workspace: str, passwords: Path) -> int:
    """Demo only: the `auto-review` user submits every suggestion as its answer, so that the
    rest of the pipeline has reviewed records to export. Its records are labelled
    `machine_reviewed`. Returns how many it submitted."""
    from argilla_setup.users import Roster, apply_roster

    roster = Roster(users=[{"username": AUTO_REVIEWER, "workspaces": [workspace]}])
    apply_roster(client, roster, passwords)
    password = (passwords / f"{AUTO_REVIEWER}.password").read_text().strip()
    url = client.api_url.rstrip("/")
    token = httpx.post(f"{url}/api/v1/token", data={"username": AUTO_REVIEWER,
                                                    "password": password})  # fmt: skip
    token.raise_for_status()
    me = quietly(client.users, AUTO_REVIEWER)
    headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
    submitted = 0
    with httpx.Client(base_url=url, headers=headers, timeout=30) as session:
        for record in dataset.records(with_suggestions=True, with_responses=True):
            if any(r.user_id == me.id for r in record.responses):
                continue
            values = {s.question_name: {"value": s.value} for s in record.suggestions}
            answer = session.post(f"/api/v1/records/{record._server_id}/responses",
                                  json={"values": values, "status": "submitted"})  # fmt: skip
            answer.raise_for_status()
            submitted += 1
    return submitted
