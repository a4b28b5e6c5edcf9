"""The review stage: push annotated records (and gold records) to Argilla, pull what
reviewers decided, send undecided records back for another round, and count it all.

Each run sends only new or changed records and reads every response again, so the stage is
rerun on demand (`curate argilla sync`) rather than skipped when its input is unchanged:
reviews change while the pipeline's files do not. The Argilla SDK is imported when the
stage runs: a base install without the `[review]` extra builds the pipeline all the same.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import ClassVar

import polars as pl

from argilla_setup import connect, gold
from argilla_setup.config import ReviewConfig
from argilla_setup.votes import AUTO_REVIEWER, UNDECIDED
from curation.runner import Manifest, Stage, StageContext, package_version
from curation.schema import conform


class ReviewStage(Stage):
    name: ClassVar[str] = "review"

    def __init__(self, config: ReviewConfig, workdir: Path, auto_review: bool = False) -> None:
        self.config = config
        self.workdir = workdir
        self.auto_review = auto_review  # demo only: see auto_review.py

    def versions(self) -> dict[str, str]:
        return {"argilla": package_version("argilla")}

    def finished(self, manifest: Manifest) -> bool:
        # the demo's machine reviewer answers on every run what people have not yet decided
        return not self.auto_review

    def run(self, records: pl.LazyFrame | None, ctx: StageContext) -> pl.DataFrame:
        assert records is not None, "review reads the records of the stage before"
        config = self.config
        client = connect(config, self.workdir)  # raises MissingDependency without the SDK
        from argilla_setup.auto_review import auto_review
        from argilla_setup.push_pull import pull, push, reviewable, send_back
        from argilla_setup.settings import ensure_dataset

        frame = conform(records.collect())  # its file may predate a review column
        golden = gold.load_gold(config.gold) if config.gold is not None else []
        dataset = ensure_dataset(client, config.dataset, config.workspace, config.min_submitted)
        to_push = pl.concat([frame, gold.gold_records(golden, reviewable(frame))])

        def quarantine(record_id: str, error: Exception) -> None:
            ctx.quarantine("stage_error", record_id=record_id,
                           detail=f"{type(error).__name__}: {error}")  # fmt: skip

        state = self.workdir / f"argilla_pushed_{dataset.id}.json"  # a new dataset gets everything
        with ctx.progress(f"push to Argilla ({config.dataset})", reviewable(to_push).height) as on:
            pushed = push(dataset, to_push, state, config.batch_size, on, on_error=quarantine)
        frame = frame.filter(~pl.col("id").is_in(pushed.failed))
        machine = 0
        if self.auto_review:
            passwords = self.workdir / "argilla" / "passwords"
            machine = auto_review(client, dataset, frame, config.workspace, passwords)
        pulled = pull(client, dataset, frame, gold.expected(golden))
        sent_back = send_back(dataset, pulled.records, pulled.reviews)
        annotated = pulled.records.filter(pl.col("instruction").is_not_null())
        statuses = Counter(annotated["review_status"].fill_null("pending").to_list())
        undecided = Counter(label for labels in annotated["review_labels"].drop_nulls()
                            for label in labels if label in UNDECIDED)  # fmt: skip
        ctx.extra.update({
            "dataset": config.dataset, "workspace": config.workspace, "url": client.api_url,
            "pushed": pushed.sent, "unchanged": pushed.unchanged, "auto_reviewed": machine,
            "gold": len(golden), "review_statuses": dict(sorted(statuses.items())),
            "undecided": {label: undecided[label] for label in UNDECIDED},
            "sent_back": sent_back, "machine_reviewers": [AUTO_REVIEWER], **pulled.numbers,
        })  # fmt: skip
        return pulled.records
