"""The stage runner: ordering, files between stages, manifests, resume and quarantine.

A stage only maps records to records. The runner owns everything else:
each stage writes `<workdir>/<NN>_<name>.parquet` and a manifest `<NN>_<name>.json`;
a stage whose manifest matches its config, its input and its output file is skipped,
so a rerun after a crash resumes where it stopped. A record that raises inside a stage is
quarantined (`stage_error`) and leaves the stage's output; a stage that fails as a whole
leaves no partial file, only `<NN>_<name>.failed.json` saying why. One run at a time
holds a workdir.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import platform
import time
import traceback
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import polars as pl
import pyarrow.parquet as pq
from pydantic import BaseModel

from curation import quarantine, workdir
from curation.engines import Engine, LocalEngine
from curation.engines.base import RecordError, StageEngine
from curation.errors import CurateError, SchemaError, StageError, describe_error
from curation.quarantine import QUARANTINE_SCHEMA, STAGE_ERROR, Redactor
from curation.schema import conform, empty_records, validate

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
        # maps through it set the records that raise aside here (see StageEngine)
        self.engine: Engine = StageEngine(engine or LocalEngine(), self._record_failed)
        self.input_path = input_path
        self.run_key = run_key
        self.skipped: Counter[str] = Counter()
        self.extra: dict[str, Any] = {}
        # ids of records quarantined as stage_error: the runner keeps them out of the output
        self.failed_ids: set[str] = set()
        self._quarantine: list[quarantine.Entry] = []
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
        """Set aside an input that cannot be processed, with the reason; nothing else is lost.
        `raw` and `detail` are written only after redaction (see curation.quarantine)."""
        self._quarantine.append(
            quarantine.Entry.of(
                self.tag, reason, source=source, path=path, record_id=record_id,
                size_bytes=size_bytes, detail=detail, raw=raw,
            )
        )  # fmt: skip

    def quarantine_error(
        self,
        error: BaseException,
        *,
        source: str | None = None,
        path: str | None = None,
        record_id: str | None = None,
        size_bytes: int | None = None,
    ) -> None:
        """Set aside an input whose processing raised (`stage_error`, the exception in one
        line), for stages' own per-object loops; a record named by `record_id` leaves this
        stage's output. Engine maps do this themselves."""
        self._stage_error(*describe_error(error), source=source, path=path,
                          record_id=record_id, size_bytes=size_bytes)  # fmt: skip

    def _record_failed(self, failure: RecordError) -> None:
        where = failure.record
        self._stage_error(failure.error_type, failure.message, source=where.get("source"),
                          path=where.get("path"), record_id=where.get("id"),
                          size_bytes=where.get("size_bytes"))  # fmt: skip

    def _stage_error(self, error_type: str, message: str, *, record_id: str | None,
                     **where: Any) -> None:  # fmt: skip
        entry = quarantine.Entry.of(self.tag, STAGE_ERROR, record_id=record_id,
                                    detail=message, error_type=error_type, **where)  # fmt: skip
        self._quarantine.append(entry)
        if record_id is not None:
            self.failed_ids.add(record_id)

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
        """What the stage set aside so far, before redaction (for the stage's own checks)."""
        rows = [entry.row(entry.detail, entry.raw) for entry in self._quarantine]
        return pl.DataFrame(rows, schema=QUARANTINE_SCHEMA)

    def quarantine_entries(self) -> list[quarantine.Entry]:
        """What the stage set aside, as the runner writes it (through the redactor)."""
        return list(self._quarantine)


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


@dataclass
class StageFailure:
    """Why a stage's last attempt failed, as `<NN>_<name>.failed.json`, kept until the stage
    next finishes. `error` is one line, redacted like the quarantine; `where` lists the
    frames it was raised through (code locations only, no message)."""

    stage: str
    tag: str
    error: str
    started_at: str
    seconds: float
    where: list[str]

    @classmethod
    def read(cls, path: Path) -> StageFailure | None:
        try:
            return cls(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def write(self, path: Path) -> None:
        _atomic_write_text(path, json.dumps(asdict(self), indent=2) + "\n")


def failure_path(manifest_path: Path) -> Path:
    """`03_pii.json` -> `03_pii.failed.json`."""
    return manifest_path.with_suffix(".failed.json")


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
    """Runs stages in order inside one workdir, resuming what is already done.

    `redact` cleans the quarantine's raw text and details, and the message of a failed
    stage (the pii stage's redaction; see curation.quarantine): without it they are kept
    as a hash and a length.
    """

    def __init__(
        self,
        workdir: Path,
        progress_factory: Callable[[], Any] | None = None,
        on_stage_done: Callable[[Manifest], None] | None = None,
        engine: Engine | None = None,
        redact: Redactor | None = None,
    ) -> None:
        self.workdir = Path(workdir)
        self.progress_factory = progress_factory
        self.on_stage_done = on_stage_done
        self.engine = engine or LocalEngine()
        self.redact = redact

    def stage_paths(self, index: int, stage: Stage) -> tuple[str, Path, Path]:
        tag = f"{index:02d}_{stage.name}"
        return tag, self.workdir / f"{tag}.parquet", self.workdir / f"{tag}.json"

    def run(self, stages: list[Stage], force: Iterable[str] = ()) -> list[Manifest]:
        """Run each stage unless its manifest shows the same config, input and output."""
        if not stages:
            raise StageError("no stages to run")
        if not stages[0].is_source:
            raise StageError(f"the first stage must read a source; '{stages[0].name}' does not")
        workdir.prepare(self.workdir)
        with workdir.hold(self.workdir):
            return self._run_all(stages, set(force))

    def _run_all(self, stages: list[Stage], force: set[str]) -> list[Manifest]:
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
            failure_path(manifest_path).unlink(missing_ok=True)
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
        tmp = output.with_name(output.name + ".tmp")
        progress = self.progress_factory() if self.progress_factory else None
        ctx = StageContext(
            self.workdir, tag, progress, engine=self.engine, input_path=input_path,
            run_key=hash_json([config_hash, input_hash]),
        )  # fmt: skip
        try:
            rows_in = 0 if records is None else records.select(pl.len()).collect().item()
            counts = self._write_output(stage, tag, records, ctx, progress, tmp)
            os.replace(tmp, output)
        except BaseException as error:
            tmp.unlink(missing_ok=True)
            reason = self._record_failure(stage, tag, error, started_at, start)
            if isinstance(error, CurateError) or not isinstance(error, Exception):
                raise  # ours say what failed already; an interrupt stays an interrupt
            raise StageError(
                f"stage '{tag}' failed: {reason}; the next run starts again at this stage "
                f"({tag}.failed.json has the details)"
            ) from error
        entries = ctx.quarantine_entries()
        quarantine.write(self.workdir, tag, entries, self.redact)
        dropped = {
            row["filter_reason"]: row["len"]
            for row in counts.filter(pl.col("filter_reason").is_not_null()).iter_rows(named=True)
        }
        rows_out = counts.filter(pl.col("filter_reason").is_null())["len"].sum()
        if records is None:
            rows_in = int(counts["len"].sum()) + len(entries)
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
            quarantined=dict(sorted(Counter(entry.reason for entry in entries).items())),
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

    def _write_output(
        self, stage: Stage, tag: str, records: pl.LazyFrame | None, ctx: StageContext,
        progress: Any | None, tmp: Path,
    ) -> pl.DataFrame:  # fmt: skip
        """Run the stage into `tmp` and check what it wrote; returns the row count per
        filter_reason."""
        try:
            if progress is not None:
                progress.start()
            _write_records(stage.run(records, ctx), tmp, ctx.failed_ids)
        except SchemaError as e:
            raise StageError(f"stage '{tag}' produced records that break the schema: {e}") from e
        finally:
            if progress is not None:
                progress.stop()
        if pl.scan_parquet(tmp).select(pl.col("id").is_duplicated().any()).collect().item():
            raise StageError(f"stage '{tag}' produced duplicate record ids")
        return pl.scan_parquet(tmp).group_by("filter_reason").len().collect()

    def _record_failure(
        self, stage: Stage, tag: str, error: BaseException, started_at: str, start: float
    ) -> str:
        """Write `<tag>.failed.json` and return its one-line reason. Messages of our own
        errors are written to be shown; any other may quote a record, so it is redacted."""
        error_type, message = describe_error(error)
        if not isinstance(error, CurateError):
            fallback = message and quarantine.digest(message)
            message = quarantine.redact_texts([message], [fallback], self.redact)[0] or ""
        frames = traceback.extract_tb(error.__traceback__)
        where = [f"{'/'.join(Path(f.filename).parts[-2:])}:{f.lineno} in {f.name}" for f in frames]
        reason = f"{error_type}: {message}" if message else error_type
        if where:
            reason += f" (at {where[-1]})"
        elapsed = round(time.perf_counter() - start, 3)
        failure = StageFailure(stage.name, tag, reason, started_at, elapsed, where)
        with suppress(OSError):  # a full or vanished disk must not hide the stage's own error
            failure.write(failure_path(self.workdir / f"{tag}.json"))
        return reason


def _write_records(result: StageResult, path: Path, failed_ids: set[str]) -> None:
    """Write a stage's result as one Parquet file, batch by batch so memory stays flat,
    leaving out the records set aside as stage errors before they reach it."""
    if isinstance(result, pl.LazyFrame):
        result = result.collect_batches()
    elif isinstance(result, pl.DataFrame):
        result = iter([result])
    with pq.ParquetWriter(path, _ARROW_SCHEMA, compression="zstd") as writer:
        for batch in result:
            if failed_ids and "id" in batch.columns:
                batch = batch.filter(~pl.col("id").is_in(list(failed_ids)))
            if batch.height == 0:
                continue
            writer.write_table(validate(conform(batch)).to_arrow().cast(_ARROW_SCHEMA))
