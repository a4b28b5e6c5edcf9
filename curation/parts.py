"""Stage outputs as partitioned datasets: a folder of Parquet parts, read as one frame.

A stage's output is `<workdir>/<NN>_<name>/part-00000.parquet, part-00001.parquet, ...`
(in order), listed with their keys, row counts and sha256 in the stage's manifest; every
reader goes through `stage_frame`/`kept` (or `pl.scan_parquet("<folder>/*.parquet")`).

Each finished part is also kept under `<workdir>/.parts/<NN>_<name>/<key>.parquet` with a
`<key>.json` saying what it holds, as soon as it is written. A part's key changes with its
input and the stage's config and code, so a part whose key is already there is not
computed again: a crash mid-stage resumes the finished parts, and a source that gained
files recomputes only the parts that hold them. The output folder's files are hard links
to these, so keeping both costs no space.

A source read in units (ingest) has one part a unit, a checkout's files grouped where
their paths say (see `checkout_units`); a source read whole is cut where the content says
(before a record whose id hash is a multiple of the target size), not every N rows.
Every later stage puts each record back in the part that held it in its last run, and
records new to it into new parts (`kept_cuts`): a source that gained files sends only
them through the next stages, since every other part comes out byte for byte as before,
however large the parts are.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from curation.schema import conform, empty_records, validate

PARTS_DIR = ".parts"
# A run of ids that happen not to cut (or ids that are not hex) still ends a part here.
MAX_PART_FACTOR = 4


def stage_frame(folder: Path) -> pl.LazyFrame:
    """Every row of a stage's output folder, parts in order."""
    return pl.scan_parquet(Path(folder) / "*.parquet")


def kept(folder: Path) -> pl.LazyFrame:
    """The records a stage kept: its output rows with no filter_reason."""
    return stage_frame(folder).filter(pl.col("filter_reason").is_null())


def kept_in(part_file: Path) -> pl.LazyFrame:
    """The kept records of one part file."""
    return pl.scan_parquet(part_file).filter(pl.col("filter_reason").is_null())


def record_batches(
    records: pl.LazyFrame, rows: int, source: Path | None = None
) -> Iterator[pl.DataFrame]:
    """`records` in batches of `rows`. Where they are the kept rows of `source` (a stage
    folder or one part file), they are read part by part: Polars' `collect_batches` runs
    the whole query ahead of a reader slower than itself, and so held the stage in memory."""
    if source is None:
        yield from records.collect_batches(chunk_size=rows)
        return
    files = sorted(Path(source).glob("*.parquet")) if Path(source).is_dir() else [Path(source)]
    for file in files:
        yield from kept_in(file).collect().iter_slices(rows)


@dataclass
class PartRecord:
    """One finished part, as `<key>.json` beside it: what the stage did to make it."""

    key: str
    rows: int
    sha256: str
    rows_in: int = 0
    counts: dict[str, int] = field(default_factory=dict)  # rows per filter_reason ("" kept)
    skipped: dict[str, int] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    quarantine: list[dict[str, Any]] = field(default_factory=list)  # redacted rows

    def listing(self, file: str, reused: bool) -> dict[str, Any]:
        """The part as the stage's manifest lists it."""
        return {"file": file, "key": self.key, "rows": self.rows, "sha256": self.sha256,
                "reused": reused}  # fmt: skip


class PartStore:
    """The finished parts of one stage, by key (see the module docstring)."""

    def __init__(self, workdir: Path, tag: str) -> None:
        self.folder = workdir / PARTS_DIR / tag
        self.folder.mkdir(parents=True, exist_ok=True)

    def file(self, key: str) -> Path:
        return self.folder / f"{key}.parquet"

    def load(self, key: str) -> PartRecord | None:
        """The finished part with this key, or None when it is missing or its file changed."""
        try:
            record = PartRecord(**json.loads((self.folder / f"{key}.json").read_text()))
        except (OSError, ValueError, TypeError):
            return None
        file = self.file(key)
        if not file.exists() or hash_file(file) != record.sha256:
            return None
        return record

    def save(self, record: PartRecord) -> None:
        """Record a part whose file is in place (written last: a part without it is not done)."""
        _atomic_write_text(self.folder / f"{record.key}.json", json.dumps(asdict(record)) + "\n")

    def places(self, listed: Sequence[dict[str, Any]]) -> pl.DataFrame | None:
        """`id`, `part` (its index) and `rows` of the part, for every record of the listed
        parts (a manifest's `parts`); None when one of them is no longer kept as written."""
        if not listed or any(self.load(part["key"]) is None for part in listed):
            return None
        files = [self.file(part["key"]) for part in listed]
        return pl.concat(
            pl.scan_parquet(file)
            .select("id")
            .with_columns(part=pl.lit(index, pl.Int64), rows=pl.lit(part["rows"], pl.Int64))
            for index, (file, part) in enumerate(zip(files, listed, strict=True))
        ).collect()

    def keep_frame(self, frame: pl.DataFrame) -> str:
        """Keep `frame` under the hash of its file (an equal frame, the same name); returns
        the name."""
        writing = self.folder / "writing.parquet"
        frame.write_parquet(writing)
        name = hash_file(writing)
        os.replace(writing, self.file(name))
        return name

    def keep_only(self, keys: Iterable[str]) -> None:
        """Forget the parts no manifest lists any more."""
        wanted = set(keys)
        for path in self.folder.iterdir():
            if path.name.split(".", 1)[0] not in wanted:
                path.unlink(missing_ok=True)


def write_part(batches: Iterable[pl.DataFrame], path: Path) -> tuple[int, str]:
    """Write checked batches as one Parquet file (atomically); returns its rows and sha256."""
    import pyarrow.parquet as pq  # here: reading manifests (`curate status`) needs no pyarrow

    schema = empty_records().to_arrow().schema
    tmp = path.with_name(path.name + ".tmp")
    rows = 0
    with pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
        for batch in batches:
            rows += batch.height
            writer.write_table(batch.to_arrow().cast(schema))
    os.replace(tmp, path)
    return rows, hash_file(path)


def checked_batches(result: Iterable[pl.DataFrame], failed_ids: set[str]) -> Iterator[pl.DataFrame]:
    """A stage's batches in the record schema, without the records set aside as stage errors
    (read as the batches come: a later batch's failures are known only then)."""
    for batch in result:
        if failed_ids and "id" in batch.columns:
            batch = batch.filter(~pl.col("id").is_in(list(failed_ids)))
        if batch.height:
            yield validate(conform(batch))


def content_cuts(batches: Iterable[pl.DataFrame], target_rows: int) -> Iterator[list[pl.DataFrame]]:
    """Group a stream of batches into parts of about `target_rows` rows, cut before each
    record whose id (a hex hash) is a multiple of `target_rows`, and at the latest after
    MAX_PART_FACTOR times that many rows. Only the records' own ids decide the cuts."""
    current: list[pl.DataFrame] = []
    size = 0
    for batch in batches:
        starts = batch.select(
            (pl.col("id").str.slice(0, 12).str.to_integer(base=16, strict=False) % target_rows)
            .eq(0)
            .fill_null(False)
        ).to_series()
        begin = 0
        for row in [i for i, start in enumerate(starts) if start] + [batch.height]:
            piece = batch.slice(begin, row - begin)
            while piece.height:
                room = MAX_PART_FACTOR * target_rows - size
                current.append(piece.head(room))
                size += min(room, piece.height)
                piece = piece.slice(room)
                if size >= MAX_PART_FACTOR * target_rows:
                    yield current
                    current, size = [], 0
            if row < batch.height and size:
                yield current
                current, size = [], 0
            begin = row
    if current:
        yield current


def kept_cuts(
    batches: Iterable[pl.DataFrame], earlier: pl.DataFrame, target_rows: int
) -> Iterator[list[pl.DataFrame]]:
    """Group a stream of batches into parts the way the stage's last run did: a record of
    earlier part `part` (`earlier` has each earlier record's `id`, its `part` and that
    part's `rows`) goes back into it, and records of no earlier part make new parts of about
    `target_rows`. A part whose records all came back unchanged is written as it was, so
    its key, and the keys of the next stages' parts built from it, stay: a grown source
    sends only its new records down the pipeline, however large the parts are.

    A part is yielded as soon as all its earlier rows are back (the stream keeps the order
    of the last run, so about one is open at a time); parts that lost records at the end."""
    expected = dict(earlier.select("part", "rows").unique().iter_rows())
    places = earlier.select("id", "part")
    open_parts: dict[int, list[pl.DataFrame]] = {}
    back: dict[int, int] = {}
    fresh: list[pl.DataFrame] = []
    for batch in batches:
        placed = batch.with_row_index("_row").join(places, on="id", how="left").sort("_row")
        for (part,), rows in placed.partition_by("part", maintain_order=True, as_dict=True).items():
            rows = rows.drop("_row", "part")
            if part is None:
                fresh.append(rows)
                if sum(f.height for f in fresh) >= target_rows:
                    yield fresh
                    fresh = []
                continue
            open_parts.setdefault(part, []).append(rows)
            back[part] = back.get(part, 0) + rows.height
            if back[part] == expected[part]:
                yield open_parts.pop(part)
    yield from open_parts.values()
    if fresh:
        yield fresh


def publish(store: PartStore, keys: Sequence[str], folder: Path) -> list[str]:
    """Make `folder` hold exactly these parts, in order, as part-NNNNN.parquet (hard links
    into the store; copies where the filesystem has none). Returns the file names."""
    new = folder.with_name(folder.name + ".new")
    shutil.rmtree(new, ignore_errors=True)
    new.mkdir()
    names = []
    for index, key in enumerate(keys):
        name = f"part-{index:05d}.parquet"
        try:
            os.link(store.file(key), new / name)
        except OSError:
            shutil.copy2(store.file(key), new / name)
        names.append(name)
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(new, folder)
    return names


def hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def merge_extra(extras: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The `extra` of a stage run part by part: counts summed (dicts of counts key by key,
    largest first), anything else as the first part gave it."""
    merged: dict[str, Any] = {}
    for extra in extras:
        for name, value in extra.items():
            if name not in merged:
                merged[name] = value
            elif isinstance(value, int | float) and isinstance(merged[name], int | float):
                merged[name] += value
            elif isinstance(value, dict) and isinstance(merged[name], dict):
                merged[name] = merge_extra([merged[name], value])
    return {
        name: dict(sorted(value.items(), key=lambda kv: -kv[1]))
        if isinstance(value, dict) and all(isinstance(v, int) for v in value.values())
        else value
        for name, value in merged.items()
    }
