"""The review stage's story: where review happens, how far it got, what is undecided and
sent back, each reviewer's numbers, agreement per round, and which reviewers are machines."""

from __future__ import annotations

from typing import Any

from argilla_setup.votes import AUTO_REVIEWER
from curation.runner import Manifest
from curation.story import Story, StoryContext, StoryTable, counts_text

REVIEWER_COLUMNS = ("reviewer", "answered", "final decision agrees", "discarded", "gold correct")
AGREEMENT_COLUMNS = ("round", "records with 2+ votes", "unanimous", "raw agreement",
                     "Krippendorff's alpha")  # fmt: skip


def story(manifest: Manifest, ctx: StoryContext) -> Story:
    """Review progress and agreement; in the lineage, progress and the machine reviewers."""
    c, e = manifest.config, manifest.extra
    machine = e.get("auto_reviewed", 0)
    agreement = e.get("agreement") or {}
    rate = agreement.get("rate")
    note = (f" The demo's auto-review answered {machine:,} records (labelled "
            "machine_reviewed): not human judgement." if machine else "")  # fmt: skip
    progress = StoryTable(
        "review in Argilla",
        ("dataset", "pushed (unchanged)", "review status", "undecided (sent back)", "url"),
        [(f"{e['workspace']}/{e['dataset']}", f"{e['pushed']:,} ({e['unchanged']:,})",
          counts_text(e["review_statuses"]), f"{undecided_text(e)} ({e.get('sent_back', 0):,})",
          e["url"])],
    )  # fmt: skip
    tables = [progress]
    for title, columns, rows in (("reviewer agreement", AGREEMENT_COLUMNS, agreement_rows(e)),
                                 ("reviewers", REVIEWER_COLUMNS, reviewer_rows(e))):  # fmt: skip
        if rows:
            tables.append(StoryTable(title, columns, rows))
    return Story(
        settings=(
            f"Argilla dataset {c['dataset']} (workspace {c['workspace']}), "
            f"{c['min_submitted']} reviewer(s) asked per record; {machine:,} records answered "
            "by the machine reviewer in its last run"
        ),
        text=(
            f"{e['workspace']}/{e['dataset']} at {e['url']}; agreement where two or more "
            f"reviewed: {'n/a' if rate is None else f'{rate:.0%}'} "
            f"({agreement.get('records_with_two_or_more', 0)} records). Undecided: "
            f"{undecided_text(e)}; sent back for another round this sync: "
            f"{e.get('sent_back', 0):,}.{note}"
        ),
        tables=tuple(tables),
        lineage={
            # a manifest from before they were named had only the demo's reviewer
            "machine_reviewers": sorted(e.get("machine_reviewers", [AUTO_REVIEWER])),
            "review_progress": e.get("review_statuses", {}),
            "review_agreement": e.get("agreement"),
        },
    )


def undecided_text(review: dict[str, Any]) -> str:
    """Why records with votes are still pending, from a review manifest's extra."""
    return counts_text({label: n for label, n in review.get("undecided", {}).items() if n})


def reviewer_rows(review: dict[str, Any]) -> list[tuple[str, ...]]:
    """Per person: records answered, how often the final decision agreed with them (of those
    decided), discards, gold answered right."""
    rows = []
    for user, n in review.get("annotators", {}).items():
        agrees = "n/a" if n["agreement"] is None else f"{n['agreement']:.0%} of {n['decided']:,}"
        gold = f"{n['gold_correct']:,} of {n['gold_answered']:,}" if n["gold_answered"] else "n/a"
        rows.append((user, f"{n['answered']:,}", agrees, f"{n['discarded']:,}", gold))
    return rows


def agreement_rows(review: dict[str, Any]) -> list[tuple[str, ...]]:
    """Agreement on quality per review round (and over all rounds when there are several):
    raw unanimity beside Krippendorff's alpha."""
    agreement = review.get("agreement") or {}
    rounds = list(agreement.get("by_round", {}).items())
    if len(rounds) > 1:
        rounds.append(("all", agreement))
    return [(name, f"{a['records_with_two_or_more']:,}", f"{a['unanimous']:,}",
             "n/a" if a["rate"] is None else f"{a['rate']:.0%}",
             "n/a" if a.get("alpha") is None else f"{a['alpha']:.3f}")
            for name, a in rounds]  # fmt: skip
