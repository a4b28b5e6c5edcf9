"""The review stage: push annotated records to Argilla and pull what reviewers decided.

Each run sends only new or changed records and reads every submitted response again, so
the stage is rerun on demand (`curate argilla sync`) rather than skipped when its input
is unchanged: reviews change while the pipeline's files do not.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import ClassVar

import polars as pl

from argilla_setup import connect
from argilla_setup.config import ReviewConfig
from argilla_setup.review import auto_review, ensure_dataset, pull, push, reviewable
from curation.runner import Stage, StageContext, package_version


class ReviewStage(Stage):
    name: ClassVar[str] = "review"
    code: ClassVar[tuple[str, ...]] = ("argilla_setup",)

    def __init__(self, config: ReviewConfig, workdir: Path, auto_review: bool = False) -> None:
        self.config = config
        self.workdir = workdir
        self.auto_review = auto_review  # demo only: see review.auto_review

    def versions(self) -> dict[str, str]:
        return {"argilla": package_version("argilla")}

    def run(self, records: pl.LazyFrame | None, ctx: StageContext) -> pl.DataFrame:
        assert records is not None, "review reads the records of the stage before"
        config = self.config
        frame = records.collect()
        client = connect(config, self.workdir)
        dataset = ensure_dataset(client, config.dataset, config.workspace, config.min_submitted)
        total = reviewable(frame).height
        with ctx.progress(f"push to Argilla ({config.dataset})", total) as advance:
            state = self.workdir / "argilla_pushed.json"
            pushed = push(dataset, frame, state, config.batch_size, on_batch=advance)
        machine = 0
        if self.auto_review:
            passwords = self.workdir / "argilla" / "passwords"
            machine = auto_review(client, dataset, config.workspace, passwords)
        reviewed, agreed = pull(dataset, client, frame)
        statuses = Counter(reviewed.filter(pl.col("instruction").is_not_null())["review_status"]
                           .fill_null("pending").to_list())  # fmt: skip
        ctx.extra.update({
            "dataset": config.dataset, "workspace": config.workspace, "url": client.api_url,
            "pushed": pushed.sent, "unchanged": pushed.unchanged, "auto_reviewed": machine,
            "review_statuses": dict(sorted(statuses.items())), "agreement": agreed,
        })  # fmt: skip
        return reviewed
