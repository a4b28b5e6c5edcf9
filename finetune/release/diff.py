"""What changed, record by record, between two versions of a dataset."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import polars as pl

from finetune.release.registry import Version
from finetune.release.versions import read_rows

# exported column -> how the diff names it
COMPARED: Final = {
    "prompt": "instruction",
    "review_status": "status",
    "split": "split",
    "completion": "completion",
}
COLUMNS: Final = ["id", "path", *[c for c in COMPARED if c != "split"]]


@dataclass(frozen=True)
class VersionDiff:
    """Added, removed and changed records (`rows`: one per record, old_* and new_* values)."""

    old: str
    new: str
    rows: pl.DataFrame
    unchanged: int

    def summary(self) -> dict[str, Any]:
        """Counts of added, removed, changed, and of each kind of change."""
        counts = dict(self.rows["change"].value_counts().iter_rows())
        fields = self.rows["what"].explode().drop_nulls().value_counts().iter_rows()
        return {
            **{kind: counts.get(kind, 0) for kind in ("added", "removed", "changed")},
            "unchanged": self.unchanged,
            "changed_fields": {name: 0 for name in COMPARED.values()} | dict(fields),
        }

    def to_lineage(self) -> dict[str, Any]:
        """The summary and the ids of each kind, as lineage.json keeps them."""
        ids = {
            f"{kind}_ids": sorted(self.rows.filter(pl.col("change") == kind)["id"])
            for kind in ("added", "removed", "changed")
        }
        return {**self.summary(), **ids}


def read_version_rows(folder: Path) -> pl.DataFrame:
    """The columns a diff compares, of every split of a version folder."""
    return read_rows(folder, COLUMNS)


def diff_frames(old: pl.DataFrame, new: pl.DataFrame, old_ref: str, new_ref: str) -> VersionDiff:
    """Compare two versions' rows (from read_version_rows) by record id."""
    columns = ["path", *COMPARED]
    joined = old.select("id", *[pl.col(c).alias(f"old_{c}") for c in columns]).join(
        new.select("id", *[pl.col(c).alias(f"new_{c}") for c in columns]),
        on="id",
        how="full",
        coalesce=True,
    )
    what = pl.concat_list(
        [
            pl.when(pl.col(f"old_{c}").ne_missing(pl.col(f"new_{c}"))).then(pl.lit(name))
            for c, name in COMPARED.items()
        ]
    ).list.drop_nulls()
    rows = joined.with_columns(
        change=pl.when(pl.col("old_split").is_null())
        .then(pl.lit("added"))
        .when(pl.col("new_split").is_null())
        .then(pl.lit("removed"))
        .when(what.list.len() > 0)
        .then(pl.lit("changed")),
        what=pl.when(pl.col("old_split").is_not_null() & pl.col("new_split").is_not_null()).then(
            what
        ),
    )
    changes = rows.filter(pl.col("change").is_not_null())
    order = pl.col("change").replace_strict({"added": 0, "removed": 1, "changed": 2})
    return VersionDiff(old_ref, new_ref, changes.sort(order, "id"), rows.height - changes.height)


def render_diff(diff: VersionDiff) -> list[str]:
    """The summary line, then each record: what it was, what it is."""
    s = diff.summary()
    fields = ", ".join(f"{name} {n}" for name, n in s["changed_fields"].items())
    lines = [
        f"{diff.old} -> {diff.new}: {s['added']} added, {s['removed']} removed, "
        f"{s['changed']} changed ({fields}), {s['unchanged']} unchanged"
    ]
    for row in diff.rows.iter_rows(named=True):
        change = row["change"]
        side = "old" if change == "removed" else "new"
        lines.append(f"{change:8} {row['id']}  {row[f'{side}_path']}  [{row[f'{side}_split']}]")
        if change != "changed":
            lines.append(f"    instruction: {_quoted(row[f'{side}_prompt'])}")
            continue
        for column, name in COMPARED.items():
            before, after = row[f"old_{column}"], row[f"new_{column}"]
            if name not in row["what"]:
                continue
            if column == "prompt":
                lines += [
                    f"    {name} before: {_quoted(before)}",
                    f"    {name} after:  {_quoted(after)}",
                ]
            elif column == "completion":  # code: its size says enough on one screen
                lines.append(f"    {name}: {len(before or '')} -> {len(after or '')} characters")
            else:
                lines.append(f"    {name}: {before} -> {after}")
    return lines


def _quoted(text: str | None) -> str:
    """One line, every character kept: newlines and quotes escaped as in JSON."""
    return json.dumps(text, ensure_ascii=False)


def diff_versions(old: Version, new: Version) -> VersionDiff:
    """Record by record, what changed from one verified version to another."""
    return diff_frames(
        read_version_rows(old.folder), read_version_rows(new.folder), old.ref, new.ref
    )
