"""How well the quality checks catch the instructions a reviewer would reject.

Labels: `benchmarks/labels/instructions.jsonl`, instructions written by SmolLM2-135M-Instruct
(through `transformers serve`, text protocol) and by the offline annotator on real code
(installed packages, /usr/include, pyarrow's Arrow headers), each read with its code and
labelled usable or unusable by hand, with the reason. `split` holds out a third of them
(by a hash of the file path) from the tuning of the checks; both are reported.

For each item the checks run on the instruction and its code, read from where it is
installed (a missing file is reported and skipped); `duplicate_instruction` is decided per
annotator over the labelled set, as the stage decides it over a run. Flagged = predicted
unusable. Baseline, in the same run: the eight checks that existed before this benchmark
(empty, too_short, too_long, copies_code, restates_code, wrong_language,
mentions_placeholder, refuses).

    .venv/bin/python benchmarks/quality_checks.py [--labels benchmarks/labels/instructions.jsonl]
"""

from __future__ import annotations

import argparse
import json
import sysconfig
from collections import Counter
from pathlib import Path

import polars as pl

from annotators.quality import duplicated, quality_flags

LABELS = Path(__file__).parent / "labels" / "instructions.jsonl"
BASELINE = frozenset({"empty", "too_short", "too_long", "copies_code", "restates_code",
                      "wrong_language", "mentions_placeholder", "refuses"})  # fmt: skip


def code_of(item: dict) -> str | None:
    """The labelled file's text: `site-packages/...` under this interpreter's packages."""
    path = item["file"]
    if path.startswith("site-packages/"):
        path = str(Path(sysconfig.get_paths()["purelib"]) / path.removeprefix("site-packages/"))
    file = Path(path)
    return file.read_text(errors="replace") if file.is_file() else None


def flagged(items: list[dict]) -> list[list[str]]:
    """The checks' flags per item, duplicates decided within each annotator's items."""
    flags = [
        quality_flags(item["instruction"], None, item["code"], item["language"], item["file"])
        for item in items
    ]
    frame = pl.DataFrame({"annotator": [i["annotator"] for i in items],
                          "instruction": [i["instruction"] for i in items]})  # fmt: skip
    dup = frame.select(duplicated(pl.col("instruction")).over("annotator"))["instruction"]
    return [[*f, "duplicate_instruction"] if d else f for f, d in zip(flags, dup, strict=True)]


def scores(items: list[dict], flags: list[list[str]], only: frozenset[str] | None) -> dict:
    tp = fp = fn = 0
    for item, found in zip(items, flags, strict=True):
        hit = bool([f for f in found if only is None or f in only])
        bad = item["verdict"] == "unusable"
        tp, fp, fn = tp + (hit and bad), fp + (hit and not bad), fn + (bad and not hit)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return {"items": len(items), "unusable": tp + fn, "flagged": tp + fp, "tp": tp, "fp": fp,
            "fn": fn, "precision": precision, "recall": recall}  # fmt: skip


def line(name: str, s: dict) -> str:
    return (f"{name:<26} items {s['items']:>4}  unusable {s['unusable']:>4}  flagged "
            f"{s['flagged']:>4}  precision {s['precision']:.3f}  recall {s['recall']:.3f}  "
            f"(tp {s['tp']}, fp {s['fp']}, fn {s['fn']})")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--labels", type=Path, default=LABELS)
    args = parser.parse_args()
    items = [json.loads(row) for row in args.labels.read_text().splitlines() if row.strip()]
    for item in items:
        item["code"] = code_of(item)
    missing = [i["file"] for i in items if i["code"] is None]
    items = [i for i in items if i["code"] is not None]
    if missing:
        print(f"skipped {len(missing)} items whose file is not installed here: {missing[:5]}")
    flags = flagged(items)
    for split in ("tune", "holdout", None):
        chosen = [n for n, item in enumerate(items) if split is None or item["split"] == split]
        subset, subflags = [items[n] for n in chosen], [flags[n] for n in chosen]
        ours, base = scores(subset, subflags, None), scores(subset, subflags, BASELINE)
        print(f"\n== {split or 'all'} ==")
        print(line("checks", ours))
        print(line("baseline (8 old checks)", base))
        if base["recall"]:
            print(f"recall ratio to baseline {ours['recall'] / base['recall']:.2f}x")
        for annotator in sorted({i["annotator"] for i in subset}):
            mine = [n for n, i in enumerate(subset) if i["annotator"] == annotator]
            by_annotator = scores([subset[n] for n in mine], [subflags[n] for n in mine], None)
            print(line(f"  {annotator[:24]}", by_annotator))
    print("\nper flag (all items): fired, of which unusable, share of unusable caught")
    unusable = sum(i["verdict"] == "unusable" for i in items)
    fired: Counter[str] = Counter()
    right: Counter[str] = Counter()
    for item, found in zip(items, flags, strict=True):
        for flag in set(found):
            fired[flag] += 1
            right[flag] += item["verdict"] == "unusable"
    for flag, count in fired.most_common():
        print(f"  {flag:<22} {count:>4}  precision {right[flag] / count:.3f}  "
              f"recall {right[flag] / unusable:.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
