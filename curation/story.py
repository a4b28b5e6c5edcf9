"""What a stage tells about its run: the tables `curate status` prints and the run report
shows, its settings in words and its entry in a dataset version's lineage.

Each stage writes its own story from its own manifest, in a function the stage registry
names (`StageEntry.story`, "module:function"), so the stage that writes `Manifest.extra`
is the only code that reads it. A story module imports no extra: `curate status` reads
every stage's story. `codecurate` renders stories (rich tables, HTML) and knows no stage.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Cell = str | int | float | None


@dataclass(frozen=True)
class StoryContext:
    """Where the run is: `workdir` holds its files; paths under `base` (the config file's
    folder) are told relative to it, so a card does not carry a machine's home directory."""

    workdir: Path
    base: Path

    def location(self, path: str) -> str:
        """`path` relative to `base` when it lies under it, else as it is."""
        if Path(path).is_absolute() and Path(path).is_relative_to(self.base):
            return Path(path).relative_to(self.base).as_posix()
        return path


@dataclass(frozen=True)
class StoryTable:
    """A table of a story: numbers (int, float) are right-aligned where shown."""

    title: str
    columns: tuple[str, ...]
    rows: list[tuple[Cell, ...]]
    caption: str = ""


@dataclass(frozen=True)
class Story:
    """A stage's account of one run.

    `settings`: its settings in words (lineage and the dataset card; "" for `key = value`);
    `text`: one paragraph for the run report; `tables`: for `curate status` and the report;
    `bars`: counts the report plots as bars; `plot`: draws a PNG of its own at the path
    given (None where matplotlib is missing); `lineage`: entries a version's lineage gets.
    """

    settings: str = ""
    text: str = ""
    tables: tuple[StoryTable, ...] = ()
    bars: dict[str, int] = field(default_factory=dict)
    plot: Callable[[Path], Path | None] | None = None
    lineage: dict[str, Any] = field(default_factory=dict)


def cell_text(value: Cell, decimals: int) -> str:
    """A table cell as text: ints with thousands separators, floats to `decimals` places."""
    if isinstance(value, float):
        return f"{value:,.{decimals}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return "" if value is None else str(value)


def counts_text(counts: dict[str, int]) -> str:
    """`{"ok": 20, "skipped": 6}` as "ok 20, skipped 6" ("none" when empty)."""
    return ", ".join(f"{name} {count:,}" for name, count in counts.items()) or "none"


def settings_by_name(config: dict[str, Any]) -> str:
    """A stage's settings as `key = value` pairs: what a stage without words, or whose
    settings changed shape since its words were written, is described by."""
    return ", ".join(f"{key} = {value}" for key, value in sorted(config.items()))
