"""One-screen summaries of what each stage kept and why it dropped the rest."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import polars as pl
from rich.table import Table

from annotators.config import AnnotateConfig
from curation import Manifest


def counts_text(counts: dict[str, int]) -> str:
    """`{"ok": 20, "skipped": 6}` as "ok 20, skipped 6" ("none" when empty)."""
    return ", ".join(f"{name} {count:,}" for name, count in counts.items()) or "none"


def read_manifests(workdir: Path) -> list[Manifest]:
    """The manifests of a workdir, in stage order."""
    manifests = []
    for path in sorted(workdir.glob("[0-9][0-9]_*.json")):
        manifest = Manifest.read(path)
        if manifest is not None:
            manifests.append(manifest)
    return manifests


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
    """Where review happens and how far it got."""
    table = Table(title="review in Argilla")
    for column in ("stage", "dataset", "pushed (unchanged)", "review status", "url"):
        table.add_column(column, overflow="fold")
    for m in manifests:
        if "review_statuses" not in m.extra:
            continue
        e = m.extra
        table.add_row(m.tag, f"{e['workspace']}/{e['dataset']}",
                      f"{e['pushed']:,} ({e['unchanged']:,})", counts_text(e["review_statuses"]),
                      e["url"])  # fmt: skip
    return table if table.row_count else None


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
