"""What annotation did cost: spend by run, task, model and day, estimate against actual, as
tables and a plot for data leads (`curate cost report`)."""

from __future__ import annotations

import base64
import html
from pathlib import Path

import polars as pl

from annotators.config import AnnotateConfig
from annotators.ledger import Ledger

BY = ("run", "task", "model", "day")
MIN_SAMPLES = 20  # answers needed before the ledger's completion ratio replaces the config's
# Statuses of requests that returned an answer (the ones whose usage is known).
ANSWERED = ("ok",)


def spend(ledger: Ledger, by: str) -> pl.DataFrame:
    """Requests, tokens and USD grouped by run, task, model or day."""
    if by not in BY:
        raise ValueError(f"spend by {by!r}: one of {', '.join(BY)}")
    requests = ledger.frame("requests")
    if requests.is_empty():
        return pl.DataFrame()
    keys = {"run": ["run_id"], "task": ["task", "model"], "model": ["provider", "model"],
            "day": ["day"]}[by]  # fmt: skip
    grouped = (
        requests.with_columns(day=pl.col("created_at").str.slice(0, 10))
        .group_by(keys)
        .agg(
            requests=(pl.col("mode") != "cache").sum(),
            cached=(pl.col("mode") == "cache").sum(),
            failed=(~pl.col("status").is_in([*ANSWERED, "cached", "skipped"])).sum(),
            prompt_tokens=pl.col("prompt_tokens").sum(),
            completion_tokens=pl.col("completion_tokens").sum(),
            cost_usd=pl.col("cost_usd").sum(),
        )
        .sort(keys)
    )
    if by != "run":
        return grouped
    runs = ledger.frame("runs").select(
        "run_id", "dataset", pl.concat_str("provider", "model", separator=":").alias("annotator"),
        "mode", "started_at", "records", "budget_usd", "estimate_low_usd", "estimate_usd",
        "estimate_high_usd", "status",
    )  # fmt: skip
    return runs.join(grouped, on="run_id", how="left").sort("started_at")


def measured_ratio(ledger: Ledger, model: str) -> tuple[float, float, float, int] | None:
    """Completion tokens per prompt token that `model` really produced: (mean, p10, p90,
    answers), or None with fewer than MIN_SAMPLES answers."""
    answers = ledger.frame("requests")
    if answers.is_empty():
        return None
    ratios = answers.filter(
        pl.col("model") == model, pl.col("status").is_in(ANSWERED), pl.col("prompt_tokens") > 0
    ).select(
        ratio=pl.col("completion_tokens") / pl.col("prompt_tokens"),
        prompt=pl.col("prompt_tokens"),
        completion=pl.col("completion_tokens"),
    )
    if ratios.height < MIN_SAMPLES:
        return None
    mean = ratios["completion"].sum() / ratios["prompt"].sum()
    low, high = ratios["ratio"].quantile(0.1), ratios["ratio"].quantile(0.9)
    return mean, min(low, mean), max(high, mean), ratios.height


def refined(config: AnnotateConfig, ledger: Ledger) -> tuple[AnnotateConfig, int]:
    """The config with its completion ratio and range measured from the ledger, and how many
    answers they come from (0: the config's own values are kept)."""
    measured = measured_ratio(ledger, config.model)
    if measured is None:
        return config, 0
    mean, low, high, samples = measured
    update = {"completion_ratio": mean, "completion_range": (low, high)}
    return config.model_copy(update=update), samples


def plot_spend(ledger: Ledger, path: Path) -> Path:
    """A PNG: USD per day by model, and each run's estimate (range) against its actual."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    by_day = spend(ledger, "day")
    requests = ledger.frame("requests")
    runs = spend(ledger, "run")
    fig, (days_ax, runs_ax) = plt.subplots(1, 2, figsize=(12, 4.5))
    if not requests.is_empty():
        daily = (
            requests.with_columns(day=pl.col("created_at").str.slice(0, 10))
            .pivot(on="model", index="day", values="cost_usd", aggregate_function="sum")
            .fill_null(0)
            .sort("day")
        )
        bottom = [0.0] * daily.height
        for model in daily.columns[1:]:
            days_ax.bar(daily["day"].to_list(), daily[model].to_list(), bottom=bottom, label=model)
            bottom = [b + v for b, v in zip(bottom, daily[model].to_list(), strict=True)]
        days_ax.legend(fontsize=8)
    days_ax.set_title(
        f"spend per day (total {by_day['cost_usd'].sum() if by_day.height else 0:.4f} USD)"
    )
    days_ax.set_ylabel("USD")
    if runs.height:
        labels = [f"{annotator.split(':', 1)[1]}\n{run[-6:]}"
                  for run, annotator in runs.select("run_id", "annotator").iter_rows()]  # fmt: skip
        x = list(range(runs.height))
        expected = runs["estimate_usd"].fill_null(0).to_list()
        low = [e - v for e, v in zip(expected, runs["estimate_low_usd"].fill_null(0), strict=True)]
        high = [
            v - e for e, v in zip(expected, runs["estimate_high_usd"].fill_null(0), strict=True)
        ]
        runs_ax.bar(x, runs["cost_usd"].fill_null(0).to_list(), color="#4c72b0", label="actual")
        runs_ax.errorbar(x, expected, yerr=[low, high], fmt="o", color="#dd8452",
                         capsize=4, label="estimate (low-high)")  # fmt: skip
        runs_ax.set_xticks(x, labels, rotation=45, fontsize=8)
        runs_ax.legend(fontsize=8)
    runs_ax.set_title("estimate vs actual per run")
    runs_ax.set_ylabel("USD")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(ledger: Ledger, folder: Path) -> Path:
    """`cost-report.html`, one self-contained page (tables and the plot), and its PNG."""
    folder.mkdir(parents=True, exist_ok=True)
    png = plot_spend(ledger, folder / "cost-report.png")
    image = base64.b64encode(png.read_bytes()).decode()
    sections = []
    for by in BY:
        table = spend(ledger, by)
        sections.append(
            f"<h2>by {by}</h2>" + (_html_table(table) if table.height else "<p>none</p>")
        )
    page = (
        "<!doctype html><meta charset='utf-8'><title>codecurate: annotation cost</title>"
        "<style>body{font:14px system-ui,sans-serif;margin:2em;color:#222}"
        "table{border-collapse:collapse;margin-bottom:1.5em}td,th{padding:3px 10px;"
        "border-bottom:1px solid #ddd;text-align:right}th{background:#f4f4f4}"
        "td:first-child,th:first-child{text-align:left}</style>"
        f"<h1>Annotation cost</h1><p>ledger: {html.escape(str(ledger.path))}</p>"
        "<img alt='spend per day and estimate vs actual per run' style='max-width:100%'"
        f" src='data:image/png;base64,{image}'>" + "".join(sections)
    )
    out = folder / "cost-report.html"
    out.write_text(page)
    return out


def _html_table(frame: pl.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in frame.columns)
    rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_cell(v))}</td>" for v in row) + "</tr>"
        for row in frame.iter_rows()
    )
    return f"<table><tr>{head}</tr>{rows}</table>"


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6f}"
    return f"{value:,}" if isinstance(value, int) else str(value)
