"""Precision and recall of the bot filter on hand-labelled public GitHub comments.

Scores three rule sets on the same labelled items (benchmarks/labels/bot_comments.jsonl):
ours (curation/sources/bots.py), the rules before this benchmark existed (curation/sources/
github.py at PREVIOUS_RULES_COMMIT, read with git), and the BigCode GitHub-issues pipeline's
login rules as implemented here. The headline is the held-out split, which no rule was tuned
on; the tune split and the whole set are printed beside it. Then, for our rules: each rule's
share of the removals and its precision, and every human comment that would be lost.

    .venv/bin/python benchmarks/bots.py [--labels PATH] [--show-missed]
"""

from __future__ import annotations

import argparse
import subprocess
import types
from collections.abc import Callable
from pathlib import Path

import polars as pl

from curation.sources.bots import bot_reason

ROOT = Path(__file__).resolve().parents[1]
LABELS = ROOT / "benchmarks" / "labels" / "bot_comments.jsonl"
PREVIOUS_RULES_COMMIT = "a82176b"  # main before the bot rules moved to curation/sources/bots.py

Rules = Callable[[pl.Expr, pl.Expr, pl.Expr], pl.Expr]

# The BigCode pipeline's bot logins (bigcode-project/bigcode-dataset, Apache-2.0,
# preprocessing/utils/utils_issues.py): exact accounts, substrings and suffixes of the login.
BIGCODE_ACCOUNTS = (
    "Apache-HBase", "AutorestCI", "CLAassistant", "cmsbuild", "codecov-io", "codecov-commenter",
    "coveralls", "danger-public", "dnfclas", "msftclas", "PyDocTeur", "SparkQA",
    "karma-pr-reporter", "claassistantio", "probot-stale",
)  # fmt: skip
BIGCODE_KEYWORDS = ("[bot]", "botmanager", "bors-", "jenkins", "k8s-", "-test-", "travis")
BIGCODE_SUFFIXES = (
    "-automaton", "-automation", "-benchmark", "-build", "-deployer", "-cloud", "bot", "-ci",
    "-linter", "-teamcity", "-test", "-testing", "-service-account",
)  # fmt: skip


def bigcode_reason(login: pl.Expr, author_type: pl.Expr, body: pl.Expr) -> pl.Expr:
    """BigCode's rule: a login with a bot keyword or suffix, or one of its known accounts."""
    # BigCode compares the lower-cased login with "-Service-Account" and so never matches it;
    # the suffixes are lower-cased here as that rule evidently meant.
    lower = login.str.to_lowercase()
    suffix = "(?:" + "|".join(s.replace("[", r"\[").replace("]", r"\]") for s in BIGCODE_SUFFIXES)
    flagged = (
        lower.str.contains_any(list(BIGCODE_KEYWORDS))
        | lower.str.contains(suffix + ")$")
        | login.is_in(list(BIGCODE_ACCOUNTS))
    )
    return pl.when(flagged).then(pl.lit("bigcode_login"))


def previous_reason() -> Rules:
    """`bot_reason` as it was at PREVIOUS_RULES_COMMIT (read from git, run as it was)."""
    source = subprocess.run(
        ["git", "show", f"{PREVIOUS_RULES_COMMIT}:curation/sources/github.py"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    module = types.ModuleType("previous_github_rules")
    exec(compile(source, f"{PREVIOUS_RULES_COMMIT}:github.py", "exec"), module.__dict__)
    return module.bot_reason


def with_reasons(labels: pl.DataFrame, rules: Rules) -> pl.DataFrame:
    return labels.with_columns(
        reason=rules(pl.col("login"), pl.col("author_type"), pl.col("body")),
        is_bot=pl.col("label") == "bot",
    )


def scores(frame: pl.DataFrame) -> dict[str, float | int]:
    """Precision and recall of removal (a removed item is a positive), and the counts."""
    removed = frame["reason"].is_not_null()
    bots = frame["is_bot"]
    true_pos = int((removed & bots).sum())
    false_pos = int((removed & ~bots).sum())
    false_neg = int((~removed & bots).sum())
    precision = true_pos / (true_pos + false_pos) if true_pos + false_pos else 0.0
    recall = true_pos / (true_pos + false_neg) if true_pos + false_neg else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "tp": true_pos,
            "fp": false_pos, "fn": false_neg, "n": frame.height}  # fmt: skip


def print_scores(title: str, results: dict[str, dict[str, dict[str, float | int]]]) -> None:
    print(f"\n{title}")
    print(f"  {'rules':<10} {'split':<8} {'items':>5} {'precision':>9} {'recall':>7} {'F1':>6}"
          f" {'removed':>7} {'humans lost':>11} {'bots kept':>9}")  # fmt: skip
    for name, by_split in results.items():
        for split, s in by_split.items():
            print(f"  {name:<10} {split:<8} {s['n']:>5} {s['precision']:>9.3f}"
                  f" {s['recall']:>7.3f} {s['f1']:>6.3f} {s['tp'] + s['fp']:>7} {s['fp']:>11}"
                  f" {s['fn']:>9}")  # fmt: skip


def print_ratios(results: dict[str, dict[str, dict[str, float | int]]]) -> None:
    """Ours against the strongest baseline (by held-out F1) measured in this run."""
    baselines = {name: r for name, r in results.items() if name != "ours"}
    best = max(baselines, key=lambda name: baselines[name]["holdout"]["f1"])
    ours, base = results["ours"]["holdout"], baselines[best]["holdout"]
    print(f"\nheld-out, ours / {best} (strongest baseline):")
    for key in ("precision", "recall", "f1"):
        ratio = ours[key] / base[key] if base[key] else float("inf")
        print(f"  {key:<9} {ours[key]:.3f} / {base[key]:.3f} = {ratio:.2f}x")
    print(f"  humans lost {ours['fp']} vs {base['fp']}, bots kept {ours['fn']} vs {base['fn']}")


def print_per_rule(frame: pl.DataFrame) -> None:
    """Each rule's removals (the first rule that matched), its precision and share of bots."""
    bots = int(frame["is_bot"].sum())
    per_rule = (
        frame.drop_nulls("reason")
        .group_by("reason")
        .agg(removed=pl.len(), bots=pl.col("is_bot").sum())
        .sort("removed", descending=True)
    )
    print(f"\nper rule, ours, all {frame.height} items ({bots} bots):")
    print(f"  {'rule':<20} {'removed':>7} {'of them bots':>12} {'precision':>9} {'recall':>7}")
    for row in per_rule.iter_rows(named=True):
        print(f"  {row['reason']:<20} {row['removed']:>7} {row['bots']:>12}"
              f" {row['bots'] / row['removed']:>9.3f} {row['bots'] / bots:>7.3f}")  # fmt: skip


def print_items(title: str, frame: pl.DataFrame) -> None:
    print(f"\n{title}: {frame.height}")
    for row in frame.iter_rows(named=True):
        text = " ".join(row["body"].split())[:90]
        print(f"  [{row['split']}] {row['reason'] or '-'}  {row['id']}  @{row['login']}: {text}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=Path, default=LABELS)
    parser.add_argument("--show-missed", action="store_true", help="list the bot items kept")
    args = parser.parse_args()

    labels = pl.read_ndjson(args.labels, schema_overrides={"author_type": pl.String})
    rule_sets = {"ours": bot_reason, "previous": previous_reason(), "bigcode": bigcode_reason}
    scored = {name: with_reasons(labels, rules) for name, rules in rule_sets.items()}
    results = {
        name: {
            split: scores(frame.filter(pl.col("split") == split) if split != "all" else frame)
            for split in ("holdout", "tune", "all")
        }
        for name, frame in scored.items()
    }
    counts = labels.group_by("split", "label").len().sort("split", "label").rows()
    parts = ", ".join(f"{split}/{label} {n}" for split, label, n in counts)
    print(f"labelled items: {labels.height} ({parts})")
    print_scores("precision and recall of bot removal (positive = removed as bot)", results)
    print_ratios(results)
    ours = scored["ours"]
    removed = pl.col("reason").is_not_null()
    print_per_rule(ours)
    print_items("human comments lost (ours)", ours.filter(~pl.col("is_bot") & removed))
    if args.show_missed:
        print_items("bot comments kept (ours)", ours.filter(pl.col("is_bot") & ~removed))


if __name__ == "__main__":
    main()
