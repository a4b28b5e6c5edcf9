"""The vote rule: what a record becomes from its reviewers' submitted votes.

- Each reviewer's latest vote counts (a record sent back for another round is voted again).
- People decide. The machine reviewer (`auto-review`, the demo's) counts only on records no
  person has voted on; what it decided is labelled `machine_reviewed`.
- No vote yet: `pending`.
- The majority of `quality` votes decides; a tie stays `pending`, labelled `disagreement`.
- `good` -> `accepted`, `final_instruction` is the LLM's instruction.
- `needs_fix` -> `corrected`, `final_instruction` is the correction most of those voters
  wrote. A correction that leaves the instruction as it was is no correction. Differing
  corrections are all kept (`correction_candidates`); when none has more votes than every
  other the record stays `pending`, labelled `conflicting_corrections`; with no correction
  at all, `correction_missing`.
- `reject` -> `rejected`: kept in the Parquet with its status, never exported.
Discarded responses are not votes: the reviewer skipped the record.

A record left undecided goes back to review (push_pull.send_back).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

QUALITY: Final = ("good", "needs_fix", "reject")
STATUS_OF: Final = {"good": "accepted", "needs_fix": "corrected", "reject": "rejected"}
QUALITY_OF: Final = {status: quality for quality, status in STATUS_OF.items()}
AUTO_REVIEWER: Final = "auto-review"
MACHINE_REVIEWED: Final = "machine_reviewed"
DISAGREEMENT: Final = "disagreement"
CONFLICTING_CORRECTIONS: Final = "conflicting_corrections"
CORRECTION_MISSING: Final = "correction_missing"
# why a record with votes is still pending; each sends it back for another round
UNDECIDED: Final = (DISAGREEMENT, CONFLICTING_CORRECTIONS, CORRECTION_MISSING)


@dataclass(frozen=True)
class Vote:
    """One reviewer's submitted answer on one record, in one review round."""

    user: str
    quality: str | None
    correction: str | None = None
    issues: tuple[str, ...] = ()
    round: int = 1

    @property
    def by_machine(self) -> bool:
        return self.user == AUTO_REVIEWER


@dataclass
class ReviewRecord:
    """One Argilla record: a pipeline record in one review round, and its responses."""

    pipeline_id: str
    round: int
    server_id: Any
    completed: bool  # Argilla's status: enough submitted responses, in nobody's queue
    votes: list[Vote] = field(default_factory=list)
    discarded_by: list[str] = field(default_factory=list)
    responders: set[str] = field(default_factory=set)  # any response: submitted, draft, discard


def counted_votes(votes: Iterable[Vote]) -> list[Vote]:
    """Each reviewer's latest vote; people's alone once any person voted."""
    latest: dict[str, Vote] = {}
    for vote in sorted(votes, key=lambda v: v.round):
        if vote.quality in QUALITY:
            latest[vote.user] = vote
    people = [v for v in latest.values() if not v.by_machine]
    return sorted(people or latest.values(), key=lambda v: v.user)


def final_record(instruction: str, votes: Iterable[Vote]) -> dict[str, Any]:
    """review_status, final_instruction, reviewers, review_labels and correction_candidates
    from a record's submitted votes of every round (the rule in the module docstring)."""
    counted = counted_votes(votes)
    labels = {label for v in counted for label in v.issues}
    if any(v.by_machine for v in counted):
        labels.add(MACHINE_REVIEWED)
    result: dict[str, Any] = {"review_status": "pending", "final_instruction": None,
                              "reviewers": [v.user for v in counted], "review_labels": [],
                              "correction_candidates": []}  # fmt: skip
    verdict, undecided = _verdict(counted)
    if verdict == "needs_fix":
        fixes = [v.correction for v in counted if v.quality == "needs_fix"]
        correction, result["correction_candidates"], undecided = _correction(instruction, fixes)
        result["final_instruction"] = correction
    elif verdict == "good":
        result["final_instruction"] = instruction
    if verdict is not None and undecided is None:
        result["review_status"] = STATUS_OF[verdict]
    result["review_labels"] = sorted(labels | ({undecided} if undecided else set()))
    return result


def _verdict(counted: list[Vote]) -> tuple[str | None, str | None]:
    """The majority quality, or why there is none (None, None: nobody voted)."""
    counts = Counter(v.quality for v in counted).most_common()
    if not counts:
        return None, None
    if len(counts) > 1 and counts[0][1] == counts[1][1]:
        return None, DISAGREEMENT
    return counts[0][0], None


def _correction(
    instruction: str, written: list[str | None]
) -> tuple[str | None, list[str], str | None]:
    """The correction with the most votes, every differing one, and why none won."""
    unchanged = _normalized(instruction)
    shown: dict[str, str] = {}  # normalized -> the text as its first writer wrote it
    votes: Counter[str] = Counter()
    for text in written:
        key = _normalized(text or "")
        if key and key != unchanged:
            shown.setdefault(key, (text or "").strip())
            votes[key] += 1
    ranked = sorted(votes, key=lambda key: (-votes[key], key))
    candidates = [shown[key] for key in ranked] if len(ranked) > 1 else []
    if not ranked:
        return None, candidates, CORRECTION_MISSING
    if len(ranked) > 1 and votes[ranked[0]] == votes[ranked[1]]:
        return None, candidates, CONFLICTING_CORRECTIONS
    return shown[ranked[0]], candidates, None


def _normalized(text: str) -> str:
    return " ".join(text.split())
