"""The numbers an annotation lead asks for: agreement per review round (raw and chance
corrected), and per annotator what they answered, how often the final decision agreed with
them, what they skipped, and how they scored on gold records.

Only people count here: the demo's machine reviewer is reported apart (`auto_reviewed`).
Krippendorff's alpha comes from the `krippendorff` package (a maintained implementation,
nominal level, missing votes allowed) rather than a formula of ours.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from argilla_setup.votes import (
    AUTO_REVIEWER,
    QUALITY,
    QUALITY_OF,
    ReviewRecord,
    Vote,
    counted_votes,
)


def round_agreement(units: Iterable[list[Vote]]) -> dict[str, Any]:
    """Agreement on `quality` among the records two or more people voted on: the share they
    were unanimous on, and Krippendorff's alpha (None where it is undefined: no such record,
    or every vote the same)."""
    overlapping = [votes for votes in units if len(votes) >= 2]
    unanimous = sum(len({v.quality for v in votes}) == 1 for votes in overlapping)
    return {
        "records_with_two_or_more": len(overlapping),
        "unanimous": unanimous,
        "rate": round(unanimous / len(overlapping), 4) if overlapping else None,
        "alpha": _alpha(overlapping),
    }


def _alpha(units: list[list[Vote]]) -> float | None:
    if not units:
        return None
    import krippendorff
    import numpy as np

    counts = np.array([[sum(v.quality == q for v in votes) for q in QUALITY] for votes in units])
    with np.errstate(invalid="ignore", divide="ignore"):  # one category only: alpha is NaN
        alpha = float(krippendorff.alpha(value_counts=counts, level_of_measurement="nominal"))
    return None if math.isnan(alpha) else round(alpha, 4)


def agreement(reviews: Iterable[ReviewRecord]) -> dict[str, Any]:
    """Agreement over every round, and per round (each Argilla record is one unit)."""
    by_round: dict[int, list[list[Vote]]] = defaultdict(list)
    for review in reviews:
        by_round[review.round].append(_people(review.votes))
    everything = [votes for units in by_round.values() for votes in units]
    rounds = {str(n): round_agreement(by_round[n]) for n in sorted(by_round)}
    return {**round_agreement(everything), "by_round": rounds}


def per_annotator(
    reviews: Iterable[ReviewRecord],
    statuses: Mapping[str, str],
    gold: Mapping[str, str] | None = None,
) -> dict[str, dict[str, Any]]:
    """For each person: records answered, how many of those are decided and how many of
    those the final decision agrees with (on quality), discards, and gold answered/correct.

    `statuses` is each pipeline record's review_status; `gold` each gold record's expected
    quality. A reviewer's latest vote on a record is the one that counts, as in the rule.
    """
    gold = gold or {}
    latest: dict[str, list[Vote]] = defaultdict(list)
    numbers: dict[str, dict[str, Any]] = defaultdict(_empty)
    for review in reviews:
        latest[review.pipeline_id].extend(review.votes)
        for user in review.discarded_by:
            if user != AUTO_REVIEWER:
                numbers[user]["discarded"] += 1
    for pipeline_id, votes in latest.items():
        for vote in _people(counted_votes(votes)):
            row = numbers[vote.user]
            if pipeline_id in gold:
                row["gold_answered"] += 1
                row["gold_correct"] += vote.quality == gold[pipeline_id]
                continue
            row["answered"] += 1
            verdict = QUALITY_OF.get(statuses.get(pipeline_id, "pending"))
            if verdict is not None:
                row["decided"] += 1
                row["agreed"] += vote.quality == verdict
    for row in numbers.values():
        row["agreement"] = round(row["agreed"] / row["decided"], 4) if row["decided"] else None
        row["gold_accuracy"] = (
            round(row["gold_correct"] / row["gold_answered"], 4) if row["gold_answered"] else None
        )
    return dict(sorted(numbers.items()))


def _people(votes: Iterable[Vote]) -> list[Vote]:
    return [v for v in votes if not v.by_machine and v.quality in QUALITY]


def _empty() -> dict[str, Any]:
    return {"answered": 0, "decided": 0, "agreed": 0, "discarded": 0,
            "gold_answered": 0, "gold_correct": 0}  # fmt: skip
