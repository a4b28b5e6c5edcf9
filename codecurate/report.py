"""`curate report`: one self-contained HTML page per run, and its PNG plots.

The funnel of records per stage with the reasons for every drop, then each stage's own
section from its story (PII found per type, near-duplicate clusters, annotation cost
estimated against spent, review progress and agreement...), the topics of the pairs, and
the dataset versions exported so far.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Callable
from pathlib import Path
from typing import Any

from codecurate.config import PipelineConfig
from codecurate.stages import story_of
from codecurate.summary import read_manifests
from curation import Manifest
from curation.story import Story, StoryContext, StoryTable, cell_text

COLORS = {"kept": "#4c72b0", "dropped": "#dd8452", "quarantined": "#c44e52", "other": "#8c8c8c"}


def _figure(draw: Callable[[Any], None], path: Path, size: tuple[float, float]) -> Path | None:
    """The plot as a PNG, or None where matplotlib (the [annotate] extra) is not installed."""
    try:
        import matplotlib
    except ImportError:
        return None

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=size)
    draw(ax)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def funnel_plot(manifests: list[Manifest], path: Path) -> Path | None:
    """Records out of each stage, with what it dropped and set aside stacked on top."""

    def draw(ax: Any) -> None:
        names = [m.tag for m in manifests]
        kept = [m.rows_out for m in manifests]
        dropped = [sum(m.dropped.values()) for m in manifests]
        quarantined = [sum(m.quarantined.values()) for m in manifests]
        ax.barh(names, kept, color=COLORS["kept"], label="kept")
        ax.barh(names, dropped, left=kept, color=COLORS["dropped"], label="dropped")
        left = [k + d for k, d in zip(kept, dropped, strict=True)]
        ax.barh(names, quarantined, left=left, color=COLORS["quarantined"], label="quarantined")
        for y, (k, d, q) in enumerate(zip(kept, dropped, quarantined, strict=True)):
            ax.text(k + d + q, y, f"  {k:,} kept", va="center", fontsize=9)
        ax.invert_yaxis()
        ax.set_xlabel("records")
        ax.legend(loc="lower right", fontsize=8, frameon=False)
        ax.set_title("records through the pipeline")

    return _figure(draw, path, (8, 0.5 * len(manifests) + 1.6))


def bars_plot(counts: dict[str, int], title: str, path: Path, color: str) -> Path | None:
    def draw(ax: Any) -> None:
        labels = list(counts)
        ax.barh(labels, list(counts.values()), color=color)
        for y, value in enumerate(counts.values()):
            ax.text(value, y, f" {value:,}", va="center", fontsize=9)
        ax.invert_yaxis()
        ax.set_title(title)

    return _figure(draw, path, (8, 0.4 * max(len(counts), 1) + 1.4))


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    """An HTML table; columns of numbers are right-aligned, text left-aligned."""
    numeric = [bool(rows) and all(isinstance(row[i], int | float) for row in rows)
               for i in range(len(headers))]  # fmt: skip
    align = ["n" if n else "t" for n in numeric]
    head = "".join(
        f"<th class='{a}'>{html.escape(h)}</th>" for h, a in zip(headers, align, strict=True)
    )
    body = "".join(
        "<tr>" + "".join(f"<td class='{a}'>{html.escape(cell_text(v, 4))}</td>"
                         for v, a in zip(row, align, strict=True)) + "</tr>"
        for row in rows
    )  # fmt: skip
    return f"<table><tr>{head}</tr>{body}</table>"


def _image(path: Path | None, alt: str) -> str:
    if path is None:
        return (f"<p>(no plot of {html.escape(alt)}: it needs matplotlib, "
                "pip install 'codecurate[annotate]')</p>")  # fmt: skip
    data = base64.b64encode(path.read_bytes()).decode()
    return f"<img alt='{html.escape(alt)}' src='data:image/png;base64,{data}'>"


def _section(title: str, *parts: str) -> str:
    return f"<section><h2>{html.escape(title)}</h2>{''.join(parts)}</section>"


def write_run_report(config: PipelineConfig, config_path: Path) -> Path:
    """`<workdir>/reports/run-report.html` (plots embedded) and the PNGs beside it."""
    manifests = read_manifests(config.workdir)
    folder = config.workdir / "reports"
    folder.mkdir(parents=True, exist_ok=True)
    ctx = StoryContext(config.workdir, config_path.resolve().parent)
    sections = [_section(
        "Funnel",
        _image(funnel_plot(manifests, folder / "funnel.png"), "records per stage"),
        _table(["stage", "status", "in", "out", "time"],
               [[m.tag, "resumed" if m.resumed else "ran", m.rows_in, m.rows_out,
                 f"{m.seconds:.1f} s"] for m in manifests]),
        _table(["stage", "outcome", "reason", "records"],
               [[m.tag, outcome, reason, count] for m in manifests
                for outcome, counts in (("dropped", m.dropped), ("quarantined", m.quarantined),
                                        ("skipped", m.skipped))
                for reason, count in sorted(counts.items(), key=lambda item: -item[1])]),
    )]  # fmt: skip
    sections += [_story_section(m.tag, story_of(m, ctx), folder) for m in manifests]
    sections.append(_topics_section(config, manifests[-1] if manifests else None))
    sections.append(_versions_section(config))
    page = _page(config, manifests, "".join(s for s in sections if s))
    out = folder / "run-report.html"
    out.write_text(page)
    return out


def _story_section(tag: str, story: Story, folder: Path) -> str:
    """A stage's own section: its paragraph, plots and tables ("" when it tells nothing)."""
    parts = [f"<p>{html.escape(story.text)}</p>"] if story.text else []
    if story.bars:
        parts.append(_image(bars_plot(story.bars, tag, folder / f"{tag}-bars.png", "#8172b3"),
                            f"{tag} counts"))  # fmt: skip
    if story.plot is not None:
        parts.append(_image(story.plot(folder / f"{tag}.png"), tag))
    parts += [_story_table(table) for table in story.tables]
    return _section(tag, *parts) if parts else ""


def _story_table(told: StoryTable) -> str:
    caption = f"<p>{html.escape(told.caption)}</p>" if told.caption else ""
    return (f"<h3>{html.escape(told.title)}</h3>"
            + _table(list(told.columns), [list(row) for row in told.rows]) + caption)  # fmt: skip


def _topics_section(config: PipelineConfig, last: Manifest | None) -> str:
    """Topics of the kept pairs' instructions, as an export would count them."""
    import polars as pl

    from curation import stage_frame
    from finetune.release.topics import find_topics

    folder = config.workdir / last.tag if last else None
    if folder is None or not folder.is_dir():
        return ""
    pairs = stage_frame(folder).filter(
        pl.col("kind") == "pair", pl.col("filter_reason").is_null(),
        pl.col("instruction").is_not_null(),
    ).select("instruction").collect()  # fmt: skip
    if pairs.is_empty():
        return ""
    topics = find_topics(pairs["instruction"].to_list(), config.export.seed)
    counts = pl.Series(topics.assigned).value_counts(sort=True, name="n")
    rows = [[topics.labels[t], n, f"{n / pairs.height:.0%}"] for t, n in counts.iter_rows()]
    cap = config.export.max_topic_share
    note = f"[export] max_topic_share = {cap} caps them at export." if cap else (
        "Set [export] max_topic_share to cap any topic's share at export.")  # fmt: skip
    return _section(
        "Topics of the pairs",
        f"<p>{pairs.height:,} kept pairs, by TF-IDF and k-means over their instructions. "
        f"{note}</p>",
        _table(["topic (top terms)", "pairs", "share"], rows),
    )


def _versions_section(config: PipelineConfig) -> str:
    from finetune.release import read_registry

    root, name = config.export.root, config.export.name
    registry = read_registry(root, name)
    if not registry:
        return _section("Dataset versions", "<p>none exported yet: <code>curate export</code></p>")
    return _section("Dataset versions", _table(
        ["version", "created", "train", "validation", "test", "parent", "content hash"],
        [[f"{name}@{e['version']}", e["created_at"], e["counts"].get("train", 0),
          e["counts"].get("validation", 0), e["counts"].get("test", 0), e["parent"] or "",
          (e["content_hash"] or "")[:16]] for e in registry],
    ))  # fmt: skip


def _page(config: PipelineConfig, manifests: list[Manifest], body: str) -> str:
    started = min((m.started_at for m in manifests), default="")
    return (
        "<!doctype html><meta charset='utf-8'><title>codecurate run report</title>"
        "<style>body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:980px;"
        "color:#222;padding:0 1em}h1{margin-bottom:0}h2{border-bottom:1px solid #ddd;"
        "padding-bottom:.2em;margin-top:1.6em}table{border-collapse:collapse;margin:.8em 0}"
        "td,th{padding:3px 12px;border-bottom:1px solid #eee}.n{text-align:right}"
        ".t{text-align:left}th{background:#f6f6f6}"
        "img{max-width:100%}.meta{color:#666}</style>"
        f"<h1>codecurate run report</h1><p class='meta'>workdir {html.escape(str(config.workdir))}"
        f" &middot; stages {', '.join(m.tag for m in manifests)} &middot; first stage started "
        f"{html.escape(started)}</p>" + body
    )
