"""The demo's machine reviewer (`curate run --auto-review`): the `auto-review` user accepts
the records the automatic quality checks passed, so that the rest of the pipeline has
reviewed records to export.

It never stands in for a person: it answers only records that nobody (itself included) has
answered, drafted or skipped in any round, and the vote rule ignores its vote once a person
votes. It leaves flagged records to people: it cannot write the correction they need.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import argilla as rg
import httpx
import polars as pl

from argilla_setup.push_pull import read_reviews, reviewable
from argilla_setup.users import Roster, apply_roster
from argilla_setup.votes import AUTO_REVIEWER, ReviewRecord


def auto_review(
    client: rg.Argilla, dataset: rg.Dataset, records: pl.DataFrame, workspace: str,
    passwords: Path,
) -> int:  # fmt: skip
    """Submit `good` as `auto-review` on each unanswered record without quality flags;
    how many it submitted."""
    roster = Roster(users=[{"username": AUTO_REVIEWER, "workspaces": [workspace]}])
    apply_roster(client, roster, passwords)
    rounds: dict[str, list[ReviewRecord]] = defaultdict(list)
    for review in read_reviews(client, dataset):
        rounds[review.pipeline_id].append(review)
    passed = reviewable(records).filter(pl.col("quality_flags").list.len().fill_null(0) == 0)
    todo = [min(rounds[record_id], key=lambda r: r.round)
            for record_id in passed["id"].sort()
            if rounds[record_id] and not any(r.responders for r in rounds[record_id])]  # fmt: skip
    if not todo:
        return 0
    url = client.api_url.rstrip("/")
    with httpx.Client(base_url=url, headers=_login(url, passwords), timeout=30) as session:
        for review in todo:
            answer = session.post(f"/api/v1/records/{review.server_id}/responses",
                                  json={"values": {"quality": {"value": "good"}},
                                        "status": "submitted"})  # fmt: skip
            answer.raise_for_status()
    return len(todo)


def _login(url: str, passwords: Path) -> dict[str, str]:
    password = (passwords / f"{AUTO_REVIEWER}.password").read_text().strip()
    token = httpx.post(f"{url}/api/v1/token", data={"username": AUTO_REVIEWER,
                                                    "password": password})  # fmt: skip
    token.raise_for_status()
    return {"Authorization": f"Bearer {token.json()['access_token']}"}
