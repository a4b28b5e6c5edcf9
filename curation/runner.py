"""The stage runner: ordering, files between stages, manifests, resume and quarantine.

A stage only maps records to records (STYLE.md #1). The runner owns everything else:
each stage writes `<workdir>/<NN>_<name>.parquet` and a manifest `<NN>_<name>.json`;
a stage whose manifest matches its config, its input and its output file is skipped,
so a rerun after a crash resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import platform
import time
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import polars as pl
import pyarrow.parquet as pq
from pydantic import BaseModel

from curation.engines import Engine, LocalEngine
from curation.errors import SchemaError, StageError
from curation.schema import conform, empty_records, validate

QUARANTINE_SCHEMA = pl.Schema(
    {
        "stage": pl.String,
        "source": pl.String,
        "path": pl.String,
        "id": pl.String,
        "reason": pl.String,
        "detail": pl.String,
        "size_bytes": pl.Int64,
        # the raw input where it is text (a malformed JSON line), cut to RAW_LIMIT characters
        "raw": pl.String,
    }
)
RAW_LIMIT = 65_536
_ARROW_SCHEMA = empty_records().to_arrow().schema
T = TypeVar("T")


def package_version(name: str) -> str:
    """Installed version of a distribution, or 'not installed'."""
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


class StageContext:
    """What a running stage may tell the runner (quarantined rows, skip counts, progress)
    and what it may use: the engine, the file its input records come from, and a key that
    changes whenever its config or input does (for work files that outlive a crash)."""

    def __init__(
        self,
        workdir: Path | None,
        tag: str,
        progress: Any | None = None,
        *,
        engine: Engine | None = None,
        input_path: Path | None = None,
        run_key: str = "",
    ) -> None:
        self.workdir = workdir
        self.tag = tag
        self.engine = engine or LocalEngine()
        self.input_path = input_path
        self.run_key = run_key
        self.skipped: Counter[str] = Counter()
        self.extra: dict[str, Any] = {}
        self._quarantine: list[dict[str, Any]] = []
        self._progress = progress

    def quarantine(
        self,
        reason: str,
        *,
        source: str | None = None,
        path: str | None = None,
        record_id: str | None = None,
        detail: str | None = None,
        size_bytes: int | None = None,
        raw: str | None = None,
    ) -> None:
        """Set aside an input that cannot be processed, with the reason; nothing else is lost."""
        self._quarantine.append(
            {
                "stage": self.tag,
                "source": source,
                "path": path,
                "id": record_id,
                "reason": reason,
                "detail": detail,
                "size_bytes": size_bytes,
                "raw": raw[:RAW_LIMIT] if raw is not None else None,
            }
        )

    def skip(self, reason: str, count: int = 1) -> None:
        """Count inputs deliberately left out that never became records (e.g. other languages)."""
        self.skipped[reason] += count

    def track(self, items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
        """Iterate with a progress bar when the runner shows one."""
        if self._progress is None:
            yield from items
            return
        task = self._progress.add_task(description, total=total)
        for item in items:
            yield item
            self._progress.advance(task)
        self._progress.remove_task(task)

    @contextmanager
    def progress(self, description: str, total: int) -> Iterator[Callable[..., None]]:
        """A progress bar advanced by calling what this yields, with a count or by one (for
        work that is not a loop over an iterable, such as concurrent requests)."""
        if self._progress is None:
            yield lambda done=1: None
            return
        task = self._progress.add_task(description, total=total)
        try:
            yield lambda done=1: self._progress.advance(task, done)
        finally:
            self._progress.remove_task(task)

    def quarantine_frame(self) -> pl.DataFrame:
        return pl.DataFrame(self._quarantine, schema=QUARANTINE_SCHEMA)


StageResult = pl.LazyFrame | pl.DataFrame | Iterator[pl.DataFrame]


class Stage(ABC):
    """A named step over records. Subclasses set `name` and hold one typed `config`."""

    name: ClassVar[str]
    is_source: ClassVar[bool] = False
    # Modules and packages whose code decides this stage's output: a change to them
    # reruns the stage, as a config change does.
    code: ClassVar[tuple[str, ...]] = ()
    config: BaseModel

    def input_fingerprint(self) -> str:
        """For source stages: a hash of what will be read, so resume notices new input."""
        raise NotImplementedError(f"stage '{self.name}' reads no source")

    def versions(self) -> dict[str, str]:
        """Versions of the tools this stage depends on, recorded in its manifest."""
        return {}

    def finished(self, manifest: Manifest) -> bool:
        """Whether an earlier run (its manifest) left nothing undone; a stage whose run left
        work to retry (failed requests) returns False, and the runner runs it again."""
        return True

    @abstractmethod
    def run(self, records: pl.LazyFrame | None, ctx: StageContext) -> StageResult:
        """Map kept input records (None for a source) to output records.

        Dropped rows stay in the output with `filter_reason` set; the runner counts them.
        """


@dataclass
class Manifest:
    """What a stage did, written next to its output as `<NN>_<name>.json`."""

    stage: str
    tag: str
    config: dict[str, Any]
    config_hash: str
    input_hash: str
    output_hash: str
    rows_in: int
    rows_out: int
    dropped: dict[str, int]
    quarantined: dict[str, int]
    skipped: dict[str, int]
    started_at: str
    seconds: float
    versions: dict[str, str]
    extra: dict[str, Any] = field(default_factory=dict)
    resumed: bool = False

    @classmethod
    def read(cls, path: Path) -> Manifest | None:
        if not path.exists():
            return None
        try:
            data = json.loads(path.read_text())
            data["resumed"] = False
            return cls(**data)
        except (ValueError, TypeError):
            return None  # a torn or foreign manifest means "not done"; the stage reruns

    def write(self, path: Path) -> None:
        data = asdict(self)
        data.pop("resumed")
        _atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def hash_json(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def hash_code(modules: Iterable[str]) -> str:
    """Hash of the source files of modules and packages (every .py file below a package)."""
    digest = hashlib.sha256()
    for name in modules:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            raise StageError(f"stage code module {name!r} not found")
        origin = Path(spec.origin)
        files = sorted(origin.parent.rglob("*.py")) if origin.name == "__init__.py" else [origin]
        for file in files:
            digest.update(file.read_bytes())
    return digest.hexdigest()


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


def kept(path: Path) -> pl.LazyFrame:
    """The records a stage kept: its output rows with no filter_reason."""
    return pl.scan_parquet(path).filter(pl.col("filter_reason").is_null())


class Runner:
    """Runs stages in order inside one workdir, resuming what is already done."""

    def __init__(
        self,
        workdir: Path,
        progress_factory: Callable[[], Any] | None = None,
        on_stage_done: Callable[[Manifest], None] | None = None,
        engine: Engine | None = None,
    ) -> None:
        self.workdir = Path(workdir)
        self.progress_factory = progress_factory
        self.on_stage_done = on_stage_done
        self.engine = engine or LocalEngine()

    def stage_paths(self, index: int, stage: Stage) -> tuple[str, Path, Path]:
        tag = f"{index:02d}_{stage.name}"
        return tag, self.workdir / f"{tag}.parquet", self.workdir / f"{tag}.json"

    def run(self, stages: list[Stage], force: Iterable[str] = ()) -> list[Manifest]:
        """Run each stage unless its manifest shows the same config, input and output."""
        if not stages:
            raise StageError("no stages to run")
        if not stages[0].is_source:
            raise StageError(f"the first stage must read a source; '{stages[0].name}' does not")
        self.workdir.mkdir(parents=True, exist_ok=True)
        force = set(force)
        manifests: list[Manifest] = []
        input_hash = ""
        previous_output: Path | None = None
        for index, stage in enumerate(stages, start=1):
            tag, output, manifest_path = self.stage_paths(index, stage)
            config = stage.config.model_dump(mode="json")
            config_hash = hash_json(
                {"stage": stage.name, "config": config, "code": hash_code(stage.code)}
            )
            if stage.is_source:
                input_hash = stage.input_fingerprint()
            done = Manifest.read(manifest_path)
            if (
                stage.name not in force
                and done is not None
                and done.config_hash == config_hash
                and done.input_hash == input_hash
                and output.exists()
                and hash_file(output) == done.output_hash
                and stage.finished(done)
            ):
                done.resumed = True
                manifest = done
            else:
                records = kept(previous_output) if previous_output is not None else None
                manifest = self._run_stage(
                    stage, tag, records, previous_output, output, config, config_hash, input_hash
                )
                manifest.write(manifest_path)
            manifests.append(manifest)
            if self.on_stage_done is not None:
                self.on_stage_done(manifest)
            input_hash = manifest.output_hash
            previous_output = output
        return manifests

    def _run_stage(
        self,
        stage: Stage,
        tag: str,
        records: pl.LazyFrame | None,
        input_path: Path | None,
        output: Path,
        config: dict[str, Any],
        config_hash: str,
        input_hash: str,
    ) -> Manifest:
        started_at = datetime.now(UTC).isoformat(timespec="seconds")
        start = time.perf_counter()
        rows_in = 0 if records is None else records.select(pl.len()).collect().item()
        tmp = output.with_name(output.name + ".tmp")
        progress = self.progress_factory() if self.progress_factory else None
        ctx = StageContext(
            self.workdir, tag, progress, engine=self.engine, input_path=input_path,
            run_key=hash_json([config_hash, input_hash]),
        )  # fmt: skip
        try:
            if progress is not None:
                progress.start()
            result = stage.run(records, ctx)
            _write_records(result, tmp)
        except SchemaError as e:
            raise StageError(f"stage '{tag}' produced records that break the schema: {e}") from e
        finally:
            if progress is not None:
                progress.stop()
        counts = pl.scan_parquet(tmp).group_by("filter_reason").len().collect()
        duplicated = pl.scan_parquet(tmp).select(pl.col("id").is_duplicated().any()).collect()
        if duplicated.item():
            raise StageError(f"stage '{tag}' produced duplicate record ids")
        os.replace(tmp, output)
        quarantine = ctx.quarantine_frame()
        self._write_quarantine(tag, quarantine)
        dropped = {
            row["filter_reason"]: row["len"]
            for row in counts.filter(pl.col("filter_reason").is_not_null()).iter_rows(named=True)
        }
        rows_out = counts.filter(pl.col("filter_reason").is_null())["len"].sum()
        if records is None:
            rows_in = int(counts["len"].sum()) + quarantine.height
        return Manifest(
            stage=stage.name,
            tag=tag,
            config=config,
            config_hash=config_hash,
            input_hash=input_hash,
            output_hash=hash_file(output),
            rows_in=rows_in,
            rows_out=int(rows_out),
            dropped=dict(sorted(dropped.items())),
            quarantined=dict(sorted(Counter(quarantine["reason"].to_list()).items())),
            skipped=dict(sorted(ctx.skipped.items())),
            started_at=started_at,
            seconds=round(time.perf_counter() - start, 3),
            versions={
                "python": platform.python_version(),
                "polars": pl.__version__,
                "codecurate": package_version("codecurate"),
                "engine": self.engine.name,
                **stage.versions(),
            },
            extra=ctx.extra,
        )

    def _write_quarantine(self, tag: str, quarantine: pl.DataFrame) -> None:
        """Keep one part per stage, and rebuild the single quarantine.parquet users read."""
        parts = self.workdir / "quarantine"
        parts.mkdir(exist_ok=True)
        quarantine.write_parquet(parts / f"{tag}.parquet")
        frames = [pl.read_parquet(p) for p in sorted(parts.glob("*.parquet"))]
        combined = pl.concat(frames) if frames else quarantine
        tmp = self.workdir / "quarantine.parquet.tmp"
        combined.write_parquet(tmp)
        os.replace(tmp, self.workdir / "quarantine.parquet")


def _write_records(result: StageResult, path: Path) -> None:
    """Write a stage's result as one Parquet file, batch by batch so memory stays flat."""
    if isinstance(result, pl.LazyFrame):
        result = result.collect_batches()
    elif isinstance(result, pl.DataFrame):
        result = iter([result])
    with pq.ParquetWriter(path, _ARROW_SCHEMA, compression="zstd") as writer:
        for batch in result:
            if batch.height == 0:
                continue
            writer.write_table(validate(conform(batch)).to_arrow().cast(_ARROW_SCHEMA))
