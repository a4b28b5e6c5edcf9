"""The annotate stage's story: annotator and budget in words, outcomes and spend, the
ledger's runs (estimate against actual) and the prompts' hashes for the lineage."""

from __future__ import annotations

from pathlib import Path

from curation.runner import Manifest
from curation.story import Story, StoryContext, StoryTable, counts_text


def story(manifest: Manifest, ctx: StoryContext) -> Story:
    """What this annotation run did and cost; with its ledger, every run of the job."""
    c, e = manifest.config, manifest.extra
    tokens = f"{e['prompt_tokens']:,} / {e['completion_tokens']:,}"
    outcome = StoryTable(
        "annotation", ("annotator", "outcomes", "tokens in/out", "spent USD (budget)"),
        [(e["annotator"], counts_text(e["statuses"]), tokens,
          f"{e['spent_usd']:.4f} ({e['budget_usd']:g})")],
        caption=f"stopped: {e['stopped']}" if e.get("stopped") else "",
    )  # fmt: skip
    ledger = Path(e.get("ledger") or "")
    runs = _ledger_runs(ledger) if e.get("ledger") and ledger.exists() else None
    usd = runs.columns.index("USD") if runs is not None else 0
    spent = runs is not None and any(row[usd] for row in runs.rows)  # all offline: no plot
    return Story(
        settings=(
            f"{e.get('annotator', c['provider'])} (provider {c['provider']}, model "
            f"{c['model']}), tasks {', '.join(c['tasks'])}; spent {e.get('spent_usd', 0)} USD "
            f"of a {c['budget_usd']} USD budget"
        ),
        text=(
            f"{e['annotator']}: {counts_text(e['statuses'])}; spent {e['spent_usd']:.4f} of a "
            f"{e['budget_usd']:g} USD budget."
        ),
        tables=(outcome, runs) if runs is not None else (outcome,),
        plot=(lambda path: _plot_spend(ledger, path)) if spent else None,
        lineage={"prompt_hashes": e.get("prompt_hashes", {})},
    )


def _ledger_runs(path: Path) -> StoryTable | None:
    """Each run of the job from the ledger: requests, cache hits, spend against estimate."""
    from annotators.ledger import Ledger
    from annotators.report import spend

    ledger = Ledger(path)
    try:
        runs = spend(ledger, "run")
    finally:
        ledger.close()
    if runs.is_empty():
        return None
    rows = [
        (r["run_id"], r["annotator"], r["requests"], r["cached"], r["cost_usd"],
         f"{r['estimate_usd'] or 0:.4f} ({r['estimate_low_usd'] or 0:.4f}-"
         f"{r['estimate_high_usd'] or 0:.4f})")
        for r in runs.iter_rows(named=True)
    ]  # fmt: skip
    return StoryTable("annotation runs in the ledger", ("run", "annotator", "requests", "cached",
                      "USD", "USD estimated (low-high)"), rows)  # fmt: skip


def _plot_spend(path: Path, out: Path) -> Path | None:
    """Spend per day and per run against its estimate; None without matplotlib."""
    from annotators.ledger import Ledger
    from annotators.report import plot_spend

    try:
        import matplotlib  # noqa: F401  (the [annotate] extra)
    except ImportError:
        return None
    ledger = Ledger(path)
    try:
        return plot_spend(ledger, out)
    finally:
        ledger.close()
