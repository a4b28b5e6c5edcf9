"""One-screen summaries of what each stage kept and why it dropped the rest."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import polars as pl
from rich.table import Table

from annotators.config import AnnotateConfig
from curation import Manifest
from curation.quarantine import STAGE_ERROR
from curation.runner import StageFailure


def counts_text(counts: dict[str, int]) -> str:
    """`{"ok": 20, "skipped": 6}` as "ok 20, skipped 6" ("none" when empty)."""
    return ", ".join(f"{name} {count:,}" for name, count in counts.items()) or "none"


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


def findings_table(manifests: list[Manifest]) -> Table | None:
    """What stages found without dropping anything (PII spans by type)."""
    table = Table(title="found and replaced")
    for column in ("stage", "type"):
        table.add_column(column)
    table.add_column("count", justify="right")
    for m in manifests:
        for kind, count in sorted(m.extra.get("found", {}).items(), key=lambda item: -item[1]):
            table.add_row(m.tag, kind, f"{count:,}")
    return table if table.row_count else None


def clusters_table(manifests: list[Manifest]) -> Table | None:
    """The largest near-duplicate clusters with sample paths (from the dedup manifest)."""
    table = Table(title="largest near-duplicate clusters")
    for column in ("stage", "size", "sample paths"):
        table.add_column(column, overflow="fold")
    for m in manifests:
        for cluster in m.extra.get("largest_clusters", []):
            table.add_row(m.tag, str(cluster["size"]), "\n".join(cluster["sample_paths"]))
    return table if table.row_count else None


def annotation_table(manifests: list[Manifest]) -> Table | None:
    """What annotation did: outcomes per status, tokens, spend against the budget."""
    table = Table(title="annotation")
    for column in ("stage", "annotator", "outcomes", "tokens in/out", "spent USD (budget)"):
        table.add_column(column, overflow="fold")
    for m in manifests:
        if "statuses" not in m.extra:
            continue
        e = m.extra
        table.add_row(m.tag, e["annotator"], counts_text(e["statuses"]),
                      f"{e['prompt_tokens']:,} / {e['completion_tokens']:,}",
                      f"{e['spent_usd']:.4f} ({e['budget_usd']:g})")  # fmt: skip
        if e.get("stopped"):
            table.caption = f"stopped: {e['stopped']}"
    return table if table.row_count else None


# spend columns that fit a terminal, with short headers (the HTML report has them all)
SPEND_COLUMNS = {
    "run_id": "run", "day": "day", "task": "task", "annotator": "annotator",
    "provider": "provider", "model": "model", "requests": "requests", "cached": "cached",
    "failed": "failed", "malformed": "malformed",
    "prompt_tokens": "tokens in", "completion_tokens": "tokens out", "cost_usd": "USD",
    "estimate_usd": "USD estimated",
}  # fmt: skip


def review_table(manifests: list[Manifest]) -> Table | None:
    """Where review happens, how far it got, and what is undecided and sent back."""
    table = Table(title="review in Argilla")
    for column in ("stage", "dataset", "pushed (unchanged)", "review status",
                   "undecided (sent back)", "url"):  # fmt: skip
        table.add_column(column, overflow="fold")
    for m in manifests:
        if "review_statuses" not in m.extra:
            continue
        e = m.extra
        table.add_row(m.tag, f"{e['workspace']}/{e['dataset']}",
                      f"{e['pushed']:,} ({e['unchanged']:,})", counts_text(e["review_statuses"]),
                      f"{undecided_text(e)} ({e.get('sent_back', 0):,})", e["url"])  # fmt: skip
    return table if table.row_count else None


def undecided_text(review: dict[str, Any]) -> str:
    """Why records with votes are still pending, from a review manifest's extra."""
    return counts_text({label: n for label, n in review.get("undecided", {}).items() if n})


REVIEWER_COLUMNS = ("reviewer", "answered", "final decision agrees", "discarded", "gold correct")
AGREEMENT_COLUMNS = ("round", "records with 2+ votes", "unanimous", "raw agreement",
                     "Krippendorff's alpha")  # fmt: skip


def reviewer_rows(review: dict[str, Any]) -> list[list[str]]:
    """Per person, from a review manifest's extra: records answered, how often the final
    decision agreed with them (of those decided), discards, gold answered right."""
    rows = []
    for user, n in review.get("annotators", {}).items():
        agrees = "n/a" if n["agreement"] is None else f"{n['agreement']:.0%} of {n['decided']:,}"
        gold = f"{n['gold_correct']:,} of {n['gold_answered']:,}" if n["gold_answered"] else "n/a"
        rows.append([user, f"{n['answered']:,}", agrees, f"{n['discarded']:,}", gold])
    return rows


def agreement_rows(review: dict[str, Any]) -> list[list[str]]:
    """Agreement on quality per review round (and over all rounds when there are several):
    raw unanimity beside Krippendorff's alpha."""
    agreement = review.get("agreement") or {}
    rounds = list(agreement.get("by_round", {}).items())
    if len(rounds) > 1:
        rounds.append(("all", agreement))
    return [[name, f"{a['records_with_two_or_more']:,}", f"{a['unanimous']:,}",
             "n/a" if a["rate"] is None else f"{a['rate']:.0%}",
             "n/a" if a.get("alpha") is None else f"{a['alpha']:.3f}"]
            for name, a in rounds]  # fmt: skip


def reviewers_table(manifests: list[Manifest]) -> Table | None:
    """The review numbers per person (the last review stage's)."""
    return _review_numbers(manifests, "reviewers", REVIEWER_COLUMNS, reviewer_rows)


def agreement_table(manifests: list[Manifest]) -> Table | None:
    """Agreement between reviewers per round (the last review stage's)."""
    return _review_numbers(manifests, "reviewer agreement", AGREEMENT_COLUMNS, agreement_rows)


def _review_numbers(
    manifests: list[Manifest], title: str, columns: tuple[str, ...],
    rows: Callable[[dict[str, Any]], list[list[str]]],
) -> Table | None:  # fmt: skip
    reviews = [m for m in manifests if "review_statuses" in m.extra]
    if not reviews or not rows(reviews[-1].extra):
        return None
    table = Table(title=title)
    for n, column in enumerate(columns):
        table.add_column(column, justify="left" if n == 0 else "right")
    for row in rows(reviews[-1].extra):
        table.add_row(*row)
    return table


def spend_table(frame: pl.DataFrame, by: str) -> Table:
    """The ledger's spend grouped one way (from annotators.report.spend)."""
    table = Table(title=f"annotation spend by {by}")
    frame = frame.select(c for c in SPEND_COLUMNS if c in frame.columns)
    for column in frame.columns:
        justify = "left" if frame[column].dtype == pl.String else "right"
        table.add_column(SPEND_COLUMNS[column], justify=justify, overflow="fold")
    for row in frame.iter_rows():
        cells = []
        for value in row:
            if isinstance(value, float):
                cells.append(f"{value:.6f}")
            elif isinstance(value, int):
                cells.append(f"{value:,}")
            else:
                cells.append("" if value is None else str(value))
        table.add_row(*cells)
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
