"""What annotation did cost: spend by run, task, model and day, estimate against actual, as
tables and a plot for data leads (`curate cost report`)."""

from __future__ import annotations

import base64
import html
import math
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from annotators.config import AnnotateConfig
from annotators.ledger import Ledger

BY = ("run", "task", "model", "day")
MIN_SAMPLES = 20  # answers needed before the ledger's rates replace the config's
# Statuses of requests that returned an answer (the ones whose usage is known).
ANSWERED = ("ok", "malformed")
# Statuses that are no failure: a cache hit, the offline annotator's skip, a request in flight.
NOT_FAILED = (*ANSWERED, "cached", "skipped", "sent")
Z_90 = 1.645  # the normal quantile of a two-sided 90% interval


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
            failed=(~pl.col("status").is_in(NOT_FAILED)).sum(),
            malformed=(pl.col("status") == "malformed").sum(),
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


@dataclass(frozen=True)
class Measured:
    """What `model` really did on its first answers: completion tokens per prompt token (mean,
    p10, p90) and the share of answers that were malformed (with a 90% interval)."""

    ratio: float
    ratio_range: tuple[float, float]
    reask_rate: float
    reask_range: tuple[float, float]
    answers: int


def measured(ledger: Ledger, model: str) -> Measured | None:
    """Rates measured on `model`'s first answers in the ledger, or None with fewer than
    MIN_SAMPLES (a request that asks again carries the first answer: it is left out)."""
    requests = ledger.frame("requests")
    if requests.is_empty():
        return None
    answers = requests.filter(
        pl.col("model") == model, pl.col("status").is_in(ANSWERED), pl.col("ask") == 1,
        pl.col("prompt_tokens") > 0,
    ).select(
        ratio=pl.col("completion_tokens") / pl.col("prompt_tokens"),
        prompt=pl.col("prompt_tokens"),
        completion=pl.col("completion_tokens"),
        malformed=pl.col("status") == "malformed",
    )  # fmt: skip
    if answers.height < MIN_SAMPLES:
        return None
    mean = answers["completion"].sum() / answers["prompt"].sum()
    low, high = answers["ratio"].quantile(0.1), answers["ratio"].quantile(0.9)
    rate = float(answers["malformed"].mean())
    return Measured(mean, (min(low, mean), max(high, mean)), rate,
                    wilson_interval(rate, answers.height), answers.height)  # fmt: skip


def wilson_interval(rate: float, n: int, z: float = Z_90) -> tuple[float, float]:
    """The Wilson score interval of a share `rate` seen in `n` trials (unlike the normal
    approximation it stays within [0, 1] and is not empty at 0 or 1)."""
    centre = (rate + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(rate * (1 - rate) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, min(centre - half, rate)), min(1.0, max(centre + half, rate))


def refined(config: AnnotateConfig, ledger: Ledger) -> tuple[AnnotateConfig, int]:
    """The config with its completion ratio, re-ask rate and their ranges measured from the
    ledger, and how many answers they come from (0: the config's own values are kept)."""
    found = measured(ledger, config.model)
    if found is None:
        return config, 0
    update = {"completion_ratio": found.ratio, "completion_range": found.ratio_range,
              "reask_rate": found.reask_rate, "reask_range": found.reask_range}  # fmt: skip
    return config.model_copy(update=update), found.answers


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
