"""One-screen summaries of what each stage kept and why it dropped the rest, and each
stage's own tables from its story."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import polars as pl
from rich.table import Table

from annotators.config import AnnotateConfig
from codecurate.stages import story_of
from curation import Manifest
from curation.quarantine import STAGE_ERROR
from curation.runner import StageFailure
from curation.story import StoryContext, StoryTable, cell_text


def read_manifests(workdir: Path) -> list[Manifest]:
    """The manifests of a workdir, in stage order."""
    manifests = []
    for path in sorted(workdir.glob("[0-9][0-9]_*.json")):
        manifest = None if path.name.endswith(".failed.json") else Manifest.read(path)
        if manifest is not None:
            manifests.append(manifest)
    return manifests


def read_failures(workdir: Path) -> list[StageFailure]:
    """Stages whose last attempt failed (`<NN>_<stage>.failed.json`), in stage order."""
    failures = (StageFailure.read(p) for p in sorted(workdir.glob("[0-9][0-9]_*.failed.json")))
    return [failure for failure in failures if failure is not None]


def stage_table(manifests: list[Manifest], title: str = "codecurate") -> Table:
    """The funnel: rows in and out of each stage, and how many were set aside."""
    table = Table(title=title)
    for column, justify in (("stage", "left"), ("status", "left"), ("in", "right"),
                            ("out", "right"), ("dropped", "right"), ("quarantined", "right"),
                            ("time", "right")):  # fmt: skip
        table.add_column(column, justify=justify)
    for m in manifests:
        table.add_row(
            m.tag,
            "resumed" if m.resumed else "ran",
            f"{m.rows_in:,}",
            f"{m.rows_out:,}",
            f"{sum(m.dropped.values()):,}",
            f"{sum(m.quarantined.values()):,}",
            f"{m.seconds:.1f}s",
        )
    errors = sum(m.quarantined.get(STAGE_ERROR, 0) for m in manifests)
    if errors:
        table.caption = (
            f"{errors:,} record(s) raised inside a stage: quarantined as {STAGE_ERROR}, "
            "the rest went on"
        )
    return table


def failures_table(failures: list[StageFailure]) -> Table | None:
    """Stages that failed as a whole, with the one-line reason; a rerun starts there."""
    if not failures:
        return None
    table = Table(title="failed stages (a rerun starts again at each)")
    for column in ("stage", "started", "error"):
        table.add_column(column, overflow="fold")
    for failure in failures:
        table.add_row(failure.tag, failure.started_at, failure.error)
    return table


def reasons_table(manifests: list[Manifest]) -> Table | None:
    """Why: each drop, quarantine and skip reason of each stage with its count."""
    table = Table(title="why records were dropped, quarantined or skipped")
    for column in ("stage", "outcome", "reason"):
        table.add_column(column)
    table.add_column("count", justify="right")
    for m in manifests:
        for outcome, counts in (("dropped", m.dropped), ("quarantined", m.quarantined),
                                ("skipped", m.skipped)):  # fmt: skip
            for reason, count in sorted(counts.items(), key=lambda item: -item[1]):
                table.add_row(m.tag, outcome, reason, f"{count:,}")
    return table if table.row_count else None


def story_tables(manifests: list[Manifest], ctx: StoryContext) -> list[Table]:
    """Each stage's own tables (what it found, spent, reviewed), in stage order."""
    tables = []
    for manifest in manifests:
        for told in story_of(manifest, ctx).tables:
            tables.append(rich_table(told, f"{manifest.tag}: {told.title}"))
    return tables


def rich_table(told: StoryTable, title: str) -> Table:
    """A story's table for the terminal: numbers right-aligned."""
    table = Table(title=title, caption=told.caption or None)
    for n, column in enumerate(told.columns):
        numeric = bool(told.rows) and all(isinstance(row[n], int | float) for row in told.rows)
        table.add_column(column, justify="right" if numeric else "left", overflow="fold")
    for row in told.rows:
        table.add_row(*(cell_text(value, 6) for value in row))
    return table


# spend columns that fit a terminal, with short headers (the HTML report has them all)
SPEND_COLUMNS = {
    "run_id": "run", "day": "day", "task": "task", "annotator": "annotator",
    "provider": "provider", "model": "model", "requests": "requests", "cached": "cached",
    "failed": "failed", "malformed": "malformed",
    "prompt_tokens": "tokens in", "completion_tokens": "tokens out", "cost_usd": "USD",
    "estimate_usd": "USD estimated",
}  # fmt: skip


def spend_table(frame: pl.DataFrame, by: str) -> Table:
    """The ledger's spend grouped one way (from annotators.report.spend)."""
    table = Table(title=f"annotation spend by {by}")
    frame = frame.select(c for c in SPEND_COLUMNS if c in frame.columns)
    for column in frame.columns:
        justify = "left" if frame[column].dtype == pl.String else "right"
        table.add_column(SPEND_COLUMNS[column], justify=justify, overflow="fold")
    for row in frame.iter_rows():
        table.add_row(*(cell_text(value, 6) for value in row))
    return table


def estimate_table(
    result: pl.DataFrame, settings: AnnotateConfig, as_of: date, stage: str, samples: int = 0
) -> Table:
    """Annotation cost per task: records, prompt tokens, cost expected (low-high)."""
    table = Table(
        title=f"annotation cost estimate: {stage} records, model {settings.model}"
        f"{' (batch)' if settings.batch else ''}"
    )
    table.add_column("task", no_wrap=True)
    for column in ("records", "prompt tokens", "cost USD: expected (low-high)"):
        table.add_column(column, justify="right")
    low, high = settings.completion_range
    source = f"measured on {samples:,} answers in the ledger" if samples else "configured"
    table.caption = (
        f"completions at {settings.completion_ratio:.3g} tokens per prompt token "
        f"({low:.3g}-{high:.3g}, {source}); prices of {as_of}"
    )

    def cost(expected: float, low: float, high: float) -> str:
        return f"{expected:.4f} ({low:.4f}-{high:.4f})"

    for row in result.iter_rows(named=True):
        table.add_row(
            row["task"], f"{row['records']:,}",
            f"{row['prompt_tokens']:,}" + ("" if row["exact_tokens"] else "~"),
            cost(row["cost_expected"], row["cost_low"], row["cost_high"]),
        )  # fmt: skip
    table.add_row(
        "total", f"{result['records'].sum():,}", f"{result['prompt_tokens'].sum():,}",
        cost(result["cost_expected"].sum(), result["cost_low"].sum(), result["cost_high"].sum()),
        style="bold",
    )  # fmt: skip
    return table


def quarantine_table(workdir: Path, limit: int = 10) -> Table | None:
    """The first quarantined inputs with their reasons, or None when there are none."""
    path = workdir / "quarantine.parquet"
    if not path.exists():
        return None
    frame = pl.read_parquet(path)
    if frame.is_empty():
        return None
    table = Table(title=f"quarantine.parquet ({frame.height} rows)")
    for column in ("stage", "reason", "source", "path", "detail"):
        table.add_column(column, overflow="fold")
    for row in frame.head(limit).iter_rows(named=True):
        table.add_row(*(str(row[c] or "") for c in ("stage", "reason", "source", "path", "detail")))
    return table
