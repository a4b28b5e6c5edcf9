"""The stage runner: ordering, files between stages, manifests, resume and quarantine.

A stage only maps records to records. The runner owns everything else:
each stage writes a folder of Parquet parts `<workdir>/<NN>_<name>/` (see curation.parts)
and a manifest `<NN>_<name>.json` listing them; a stage whose manifest matches its config,
its input and its parts is skipped. A source with `units` is read one unit to a part on
the engine's workers; a `per_part` stage runs part by part. Both keep each finished part
under its key, so a crash mid-stage resumes the finished parts and new input recomputes
only its own parts. A record that raises inside a stage is quarantined
(`stage_error`) and leaves the stage's output; a stage that fails as a whole leaves its
output folder as it was and `<NN>_<name>.failed.json` saying why. One run at a time holds
a workdir.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
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
from pydantic import BaseModel

from curation import quarantine, workdir
from curation.code_hash import code_hash
from curation.engines import Engine, LocalEngine
from curation.engines.base import RecordError, StageEngine
from curation.errors import CurateError, SchemaError, StageError, describe_error
from curation.parts import (
    PartRecord,
    PartStore,
    checked_batches,
    content_cuts,
    hash_file,
    kept,
    kept_cuts,
    kept_in,
    merge_extra,
    publish,
    stage_frame,
    write_part,
)
from curation.quarantine import QUARANTINE_SCHEMA, STAGE_ERROR, Redactor
from curation.shuffle import later_copies

T = TypeVar("T")
# Rows per part of a stage's output, about: parts are what resume and increments skip.
DEFAULT_PART_ROWS = 10_000
__all__ = ["kept", "stage_frame"]  # the readers of stage outputs, re-exported here


def package_version(name: str) -> str:
    """Installed version of a distribution, or 'not installed'."""
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


class StageContext:
    """What a running stage may tell the runner (quarantined rows, skip counts, progress)
    and what it may use: the engine, where its input records come from (the input part of a
    per-part stage, else the previous stage's folder), and a key that changes whenever its
    config or input does (for work files that outlive a crash)."""

    def __init__(
        self,
        workdir: Path | None,
        tag: str,
        progress: Any | None = None,
        *,
        engine: Engine | None = None,
        input_path: Path | None = None,
        run_key: str = "",
        plan: pl.DataFrame | None = None,
    ) -> None:
        self.workdir = workdir
        self.tag = tag
        # maps through it set the records that raise aside here (see StageEngine)
        self.engine: Engine = StageEngine(engine or LocalEngine(), self.record_failed)
        self.input_path = input_path
        self.run_key = run_key
        self.plan = plan  # this part's frame of the stage's plan(); None when it makes none
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

    def record_failed(self, failure: RecordError) -> None:
        """Set aside a record a batch function raised on (`stage_error`), for failures found
        away from this context (a planned stage's summaries); it leaves the stage's output."""
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


@dataclass(frozen=True)
class SourceUnit:
    """A piece of a source that one worker reads alone (a group of a checkout's files, an
    export, a dataset shard). `fingerprint` changes whenever what it reads changes; `what`
    is the stage's own picklable description of it."""

    fingerprint: str
    what: Any


class Stage(ABC):
    """A named step over records. Subclasses set `name` and hold one typed `config`."""

    name: ClassVar[str]
    is_source: ClassVar[bool] = False
    # A map whose output for a record depends on that record alone (and on the stage's
    # plan): the runner runs it part by part, on the engine's workers, and reuses every
    # finished part whose input, config, code and plan are unchanged.
    per_part: ClassVar[bool] = False
    # A per-part stage whose parts must know something of each other (the filters' first
    # copy of a text may sit in another part) summarizes each input part and plans from
    # all the summaries before it runs the parts.
    planned: ClassVar[bool] = False
    config: BaseModel

    def input_fingerprint(self) -> str:
        """For source stages: a hash of what will be read, so resume notices new input."""
        raise NotImplementedError(f"stage '{self.name}' reads no source")

    def versions(self) -> dict[str, str]:
        """Versions of the tools this stage depends on, recorded in its manifest."""
        return {}

    def units(self, ctx: StageContext, target_rows: int) -> list[SourceUnit] | None:
        """For a source: its input cut into units that workers read apart (`read_unit`), of
        about `target_rows` records each and cut where the content says, so a grown source
        changes only the units its new files fall in. None: `run` reads it whole."""
        return None

    def read_unit(self, unit: SourceUnit, ctx: StageContext) -> StageResult:
        """For a source with units: the records of one unit."""
        raise NotImplementedError(f"stage '{self.name}' reads no units")

    def summarize(self, records: pl.LazyFrame, source: Path, engine: Engine) -> pl.DataFrame:
        """For a planned stage: what the other parts need to know of one input part
        (`records`, the kept rows of the part file `source`). The runner computes it on the
        engine's workers and keeps it under the part's key, `summary_config` and code;
        `engine` is for maps inside."""
        raise NotImplementedError(f"stage '{self.name}' is not planned")

    def summary_config(self) -> Any:
        """For a planned stage: the part of its config that its summaries depend on (None:
        all of it). A summary is kept under its input part, this and the stage's code, so a
        setting that only the plan reads (dedup's threshold) summarizes nothing again."""
        return None

    def plan(self, summaries: list[Path], ctx: StageContext) -> list[pl.DataFrame]:
        """For a planned stage, from every input part's summary file in order: one frame per
        part, which that part's run reads as `ctx.plan` and which keys the part with its
        input, so a part is recomputed when what it knows of the others changes (a frame
        in an order of its own making: equal plans must be equal frames). `ctx` is
        the stage's (its engine, its input folder as `input_path`); what the plan counts or
        sets aside there is counted with the first part."""
        raise NotImplementedError(f"stage '{self.name}' is not planned")

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
    parts: list[dict[str, Any]] = field(default_factory=list)  # see PartRecord.listing
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


def _source_module(stage: Stage) -> str:
    """The module of the stage's class, or of the nearest base class that has a source file:
    a stage subclassed in a script run with `python -c` has none."""
    for cls in type(stage).__mro__:
        module = sys.modules.get(cls.__module__)
        if getattr(module, "__file__", None):
            return cls.__module__
    return type(stage).__module__


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class Runner:
    """Runs stages in order inside one workdir, resuming what is already done.

    Each stage's output is a folder of parts (see curation.parts) of about `part_rows`
    rows. `redact` cleans the quarantine's raw text and details, and the message of a failed
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
        part_rows: int = DEFAULT_PART_ROWS,
    ) -> None:
        self.workdir = Path(workdir)
        self.progress_factory = progress_factory
        self.on_stage_done = on_stage_done
        self.engine = engine or LocalEngine()
        self.redact = redact
        self.part_rows = part_rows

    def stage_paths(self, index: int, stage: Stage) -> tuple[str, Path, Path]:
        """The stage's tag, its output folder and its manifest."""
        tag = f"{index:02d}_{stage.name}"
        return tag, self.workdir / tag, self.workdir / f"{tag}.json"

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
        previous: Manifest | None = None
        for index, stage in enumerate(stages, start=1):
            tag, output, manifest_path = self.stage_paths(index, stage)
            config = stage.config.model_dump(mode="json")
            config_hash = hash_json(
                # the code its module imports decides its output as much as its config does
                {"stage": stage.name, "config": config, "code": code_hash(_source_module(stage))}
            )
            if stage.is_source:
                input_hash = stage.input_fingerprint()
            done = Manifest.read(manifest_path)
            if (
                stage.name not in force
                and done is not None
                and done.config_hash == config_hash
                and done.input_hash == input_hash
                and _parts_intact(output, done.parts)
                and stage.finished(done)
            ):
                done.resumed = True
                manifest = done
            else:
                run = _StageRun(stage, tag, output, config, config_hash, input_hash,
                                forced=stage.name in force, last=done)  # fmt: skip
                manifest = self._run_stage(run, previous)
                manifest.write(manifest_path)
            failure_path(manifest_path).unlink(missing_ok=True)
            manifests.append(manifest)
            if self.on_stage_done is not None:
                self.on_stage_done(manifest)
            input_hash = manifest.output_hash
            previous = manifest
        return manifests

    def _run_stage(self, run: _StageRun, previous: Manifest | None) -> Manifest:
        started_at = datetime.now(UTC).isoformat(timespec="seconds")
        start = time.perf_counter()
        store = PartStore(self.workdir, run.tag)
        input_folder = self.workdir / previous.tag if previous is not None else None
        try:
            listing = StageContext(self.workdir, run.tag, None, engine=self.engine)
            units = run.stage.units(listing, self.part_rows) if run.stage.is_source else None
            # Ids are unique across the stage's parts: a source's by dropping later copies,
            # a per-part stage's as each part holds only its input's (checked on its worker),
            # any other's by a pass over them all.
            if units is not None:
                parts = self._without_later_copies(self._read_units(run, units, store), store,
                                                   listing)  # fmt: skip
                parts[0][0].rows_in += self._count_with_first(parts, listing)
            elif run.stage.per_part and previous is not None:
                parts = self._run_parts(run, previous, store)
            else:
                parts = self._run_whole(run, input_folder, store)
                _check_unique_ids(run.tag, [store.file(part.key) for part, _ in parts])
            entries = pl.concat(
                [pl.DataFrame(part.quarantine, schema=QUARANTINE_SCHEMA) for part, _ in parts]
            )
            rows_in = sum(part.rows_in for part, _ in parts)
            names = publish(store, [part.key for part, _ in parts], run.output)
        except BaseException as error:
            reason = self._record_failure(run.stage, run.tag, error, started_at, start)
            if isinstance(error, CurateError) or not isinstance(error, Exception):
                raise  # ours say what failed already; an interrupt stays an interrupt
            raise StageError(
                f"stage '{run.tag}' failed: {reason}; the next run starts again at this stage, "
                f"with its finished parts ({run.tag}.failed.json has the details)"
            ) from error
        # a unit whose part lost later copies stays as read too, for the next run to reuse
        read = [_unit_key(run, unit) for unit in units] if units is not None else []
        store.keep_only([part.key for part, _ in parts] + read)
        quarantine.write(self.workdir, run.tag, entries)
        counts: Counter[str] = Counter()
        for part, _ in parts:
            counts.update(part.counts)
        rows_out = counts.pop("", 0)
        skipped: Counter[str] = Counter()
        for part, _ in parts:
            skipped.update(part.skipped)
        return Manifest(
            stage=run.stage.name,
            tag=run.tag,
            config=run.config,
            config_hash=run.config_hash,
            input_hash=run.input_hash,
            output_hash=hash_json([part.sha256 for part, _ in parts]),
            rows_in=rows_in,
            rows_out=rows_out,
            dropped=dict(sorted(counts.items())),
            quarantined=dict(sorted(Counter(entries["reason"].to_list()).items())),
            skipped=dict(sorted(skipped.items())),
            started_at=started_at,
            seconds=round(time.perf_counter() - start, 3),
            versions={
                "python": platform.python_version(),
                "polars": pl.__version__,
                "codecurate": package_version("codecurate"),
                "engine": self.engine.name,
                **run.stage.versions(),
            },
            extra=merge_extra([part.extra for part, _ in parts]),
            parts=[
                part.listing(name, reused)
                for (part, reused), name in zip(parts, names, strict=True)
            ],
        )

    def _run_parts(
        self, run: _StageRun, previous: Manifest, store: PartStore
    ) -> list[tuple[PartRecord, bool]]:
        """A per-part stage over each part of its input; a part already finished under the
        same key (same input part, config, code, plan and the records of it that the plan
        set aside) is taken as it is."""
        inner = self.engine.task_engine()
        in_process = inner is self.engine  # a progress bar cannot travel to a worker
        inputs = [self.workdir / previous.tag / listed["file"] for listed in previous.parts]
        planning = self._plan(run, previous, inputs)
        plans = None if planning is None else self._file_plans(run.tag, planning[0])
        set_aside = _held_by_part(planning[1].failed_ids if planning else set(), inputs)
        found: list[PartRecord | None] = []
        tasks = []
        for index, (listed, input_file) in enumerate(zip(previous.parts, inputs, strict=True)):
            plan = None if plans is None else plans[index]
            failed = set_aside[index]
            key = hash_json(
                [listed["key"], run.config_hash]
                + ([] if plan is None else [plan.stem])
                + ([sorted(failed)] if failed else [])
            )
            found.append(None if run.forced else store.load(key))
            if found[-1] is None:
                tasks.append(PartTask(
                    run.stage, run.tag, self.workdir, input_file, store, key, self.redact, inner,
                    self.progress_factory if in_process else None, plan, failed=failed,
                ))  # fmt: skip
        with self.engine.keeping_workers():
            computed = iter(self.engine.run_tasks(compute_part, tasks))
        parts = [(done, True) if done is not None else (next(computed), False) for done in found]
        if planning is not None:
            self._count_with_first(parts, planning[1])
        return parts

    def _file_plans(self, tag: str, plans: list[pl.DataFrame]) -> list[Path]:
        """Each part's plan as a file named by its hash, which the part's task reads and
        its key holds (a plan can be large: it travels by storage, not in the task)."""
        store = PartStore(self.workdir, f"{tag}.plans")
        names = [store.keep_frame(plan) for plan in plans]
        store.keep_only(names)
        return [store.file(name) for name in names]

    def _read_units(
        self, run: _StageRun, units: list[SourceUnit], store: PartStore
    ) -> list[tuple[PartRecord, bool]]:
        """A source read one unit to a part on the engine's workers; a unit already read
        under the same key (same fingerprint, config and code) is taken as it is."""
        inner = self.engine.task_engine()
        in_process = inner is self.engine
        found: list[PartRecord | None] = []
        tasks = []
        for unit in units:
            key = _unit_key(run, unit)
            found.append(None if run.forced else store.load(key))
            if found[-1] is None:
                tasks.append(PartTask(
                    run.stage, run.tag, self.workdir, None, store, key, self.redact, inner,
                    self.progress_factory if in_process else None, unit=unit,
                ))  # fmt: skip
        with self.engine.keeping_workers():
            computed = iter(self.engine.run_tasks(compute_part, tasks))
        parts = [(done, True) if done is not None else (next(computed), False) for done in found]
        if not parts:  # an empty source is one empty part, so its folder reads as a frame
            parts.append((keep_part([], store.folder / "writing.parquet", store), False))
        return parts

    def _without_later_copies(
        self, parts: list[tuple[PartRecord, bool]], store: PartStore, ctx: StageContext
    ) -> list[tuple[PartRecord, bool]]:
        """A source's parts with each record that an earlier part holds already (the same
        row in two shards of a dataset) left out and counted as `duplicate_record`."""
        files = [store.file(part.key) for part, _ in parts]
        folder = store.folder.with_name(f"{store.folder.name}.copies")
        later = later_copies(files, "id", folder, self.engine)
        duplicates = sum(copies.height for copies in later)
        if duplicates:
            ctx.skip("duplicate_record", duplicates)
        with_copies = [index for index, copies in enumerate(later) if not copies.is_empty()]
        tasks = [
            CopiesTask(files[index], later[index], store, store.folder / f"writing-{index}.parquet")
            for index in with_copies
        ]
        rewritten = self.engine.run_tasks(drop_copies, tasks)  # on the workers, like the reads
        for index, kept_part in zip(with_copies, rewritten, strict=True):
            kept_part.rows_in = parts[index][0].rows_in - later[index].height  # skipped, not read
            kept_part.skipped, kept_part.extra = parts[index][0].skipped, parts[index][0].extra
            kept_part.quarantine = parts[index][0].quarantine
            parts[index] = (kept_part, False)
        return parts

    def _count_with_first(self, parts: list[tuple[PartRecord, bool]], ctx: StageContext) -> int:
        """Count what a stage found outside its parts (a source's listing, a planned stage's
        plan, a whole stage's run) with its first part, in memory (the stored part keeps its
        own counts); returns how many rows it set aside."""
        first = parts[0][0]
        entries = quarantine.frame(ctx.quarantine_entries(), self.redact)
        first.skipped = dict(Counter(first.skipped) + ctx.skipped)
        first.extra = merge_extra([first.extra, ctx.extra])
        first.quarantine = first.quarantine + entries.to_dicts()
        return entries.height

    def _plan(
        self, run: _StageRun, previous: Manifest, inputs: list[Path]
    ) -> tuple[list[Any], StageContext] | None:
        """The stage's plan from the summaries of its input parts, and the context it ran in;
        None for a stage whose parts stand alone. Each summary is computed on the workers
        once per input part, summary config and code (a grown source summarizes only its
        new parts)."""
        if not run.stage.planned:
            return None
        summaries = PartStore(self.workdir, f"{run.tag}.summaries")
        settings = run.stage.summary_config()
        summarized_under = run.config_hash if settings is None else hash_json(
            [settings, code_hash(_source_module(run.stage))]
        )  # fmt: skip
        keys = [hash_json([listed["key"], summarized_under]) for listed in previous.parts]
        inner = self.engine.task_engine()
        tasks = [
            SummaryTask(run.stage, file, summaries.file(key), inner)
            for key, file in zip(keys, inputs, strict=True)
            if run.forced or not summaries.file(key).exists()
        ]
        progress = self.progress_factory() if self.progress_factory else None
        ctx = StageContext(self.workdir, run.tag, progress, engine=self.engine,
                           input_path=self.workdir / previous.tag,
                           run_key=hash_json([run.config_hash, run.input_hash]))  # fmt: skip
        start = time.perf_counter()
        with _showing(progress), self.engine.keeping_workers():
            if inner is self.engine:  # in this process: a part at a time, with a progress bar
                for task in ctx.track(tasks, f"{run.stage.name}: summaries", len(tasks)):
                    self.engine.run_tasks(summarize_part, [task])
            else:
                self.engine.run_tasks(summarize_part, tasks)
            summaries.keep_only(keys)
            seconds = round(time.perf_counter() - start, 3)
            ctx.extra.update(parts_summarized=len(tasks), summaries_reused=len(keys) - len(tasks),
                             summary_seconds=seconds)  # fmt: skip
            plans = run.stage.plan([summaries.file(key) for key in keys], ctx)
        return plans, ctx

    def _run_whole(
        self, run: _StageRun, input_folder: Path | None, store: PartStore
    ) -> list[tuple[PartRecord, bool]]:
        """Run a stage over all its input at once (a source read whole, annotate); its output
        is cut into parts by content (see curation.parts), so the next stages see stable
        parts."""
        progress = self.progress_factory() if self.progress_factory else None
        ctx = StageContext(self.workdir, run.tag, progress, engine=self.engine,
                           input_path=input_folder,
                           run_key=hash_json([run.config_hash, run.input_hash]))  # fmt: skip
        records = kept(input_folder) if input_folder is not None else None
        rows_in = 0 if records is None else records.select(pl.len()).collect().item()
        parts = []
        writing = store.folder / "writing.parquet"
        with _showing(progress), _schema_checked(run.tag):
            batches = checked_batches(_as_batches(run.stage.run(records, ctx)), ctx.failed_ids)
            # A source's output keeps the sources' own order, which the filters' first-copy
            # rule reads; every later stage puts its records back in its last run's parts.
            keep_to = None if run.forced or run.stage.is_source else run.last
            earlier = None if keep_to is None else store.places(keep_to.parts)
            if earlier is None:
                groups = content_cuts(batches, self.part_rows)
            else:
                groups = kept_cuts(batches, earlier, self.part_rows)
            for group in groups:
                parts.append(keep_part(group, writing, store))
            if not parts:  # an empty stage is one empty part, so its folder reads as a frame
                parts.append(keep_part([], writing, store))
        whole = [(part, False) for part in parts]
        quarantined = self._count_with_first(whole, ctx)
        whole[0][0].rows_in = (
            sum(part.rows for part in parts) + quarantined if records is None else rows_in
        )
        return whole

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


def keep_part(batches: list[pl.DataFrame], writing: Path, store: PartStore) -> PartRecord:
    """The batches as one part of `store`, named by its content."""
    # one table: the file's bytes, and so its key, must not depend on where the
    # stage's batches happened to end
    rows, sha = write_part([pl.concat(batches, rechunk=True)] if batches else [], writing)
    key = sha  # what the next stages read is this content, however it was made
    os.replace(writing, store.file(key))
    part = PartRecord(key, rows, sha, counts=_counts(store.file(key)))
    store.save(part)
    return part


@dataclass(frozen=True)
class CopiesTask:
    """A source's part to keep again without its later copies, as an engine task."""

    file: Path
    later: pl.DataFrame  # the ids (column `id`) of the part's rows an earlier part gives
    store: PartStore
    writing: Path  # a name of its own: tasks of one stage may write side by side


def drop_copies(task: CopiesTask) -> PartRecord:
    """The part's rows but its later copies, kept as a part of their own (on a worker: the
    rows do not pass through the driver)."""
    wanted = ~pl.col("id").is_in(task.later["id"].implode())
    return keep_part(
        [pl.scan_parquet(task.file).filter(wanted).collect()], task.writing, task.store
    )


@dataclass
class PartTask:
    """One part of a per-part stage as an engine task. What it needs travels with it, so the
    worker that runs it reads its input part and writes the output part and its record
    itself; only the small PartRecord comes back."""

    stage: Stage
    tag: str
    workdir: Path
    input_file: Path | None  # None for a source's unit
    store: PartStore
    key: str
    redact: Redactor | None
    engine: Engine  # for the stage's maps inside the task
    progress_factory: Callable[[], Any] | None = None
    plan: Path | None = None  # the file of this part's share of the stage's plan()
    failed: frozenset[str] = frozenset()  # its ids the plan set aside (and quarantined)
    unit: SourceUnit | None = None  # for a source: the unit this part reads


def compute_part(task: PartTask) -> PartRecord:
    """Run the stage over one input part (or read one unit of a source) and keep the result
    in the store under its key."""
    progress = task.progress_factory() if task.progress_factory else None
    plan = None if task.plan is None else pl.read_parquet(task.plan)
    ctx = StageContext(task.workdir, task.tag, progress, engine=task.engine,
                       input_path=task.input_file, run_key=task.key, plan=plan)  # fmt: skip
    ctx.failed_ids.update(task.failed)
    file = task.store.file(task.key)
    with _showing(progress), _schema_checked(task.tag):
        if task.unit is not None:
            result = task.stage.read_unit(task.unit, ctx)
        else:
            records = kept_in(task.input_file)
            rows_in = records.select(pl.len()).collect().item()
            result = task.stage.run(records, ctx)
        rows, sha = write_part(checked_batches(_as_batches(result), ctx.failed_ids), file)
    if task.input_file is not None:
        _check_ids_from_input(task.tag, file, task.input_file)
    entries = quarantine.frame(ctx.quarantine_entries(), task.redact)
    if task.unit is not None:  # a source's input is what it wrote and what it set aside
        rows_in = rows + entries.height
    part = PartRecord(task.key, rows, sha, rows_in, _counts(file), dict(ctx.skipped), ctx.extra,
                      entries.to_dicts())  # fmt: skip
    task.store.save(part)
    return part


@dataclass
class SummaryTask:
    """One input part of a planned stage, to summarize on a worker into `output`."""

    stage: Stage
    input_file: Path
    output: Path
    engine: Engine  # for the stage's maps inside the task


def summarize_part(task: SummaryTask) -> None:
    """Write the stage's summary of one input part (atomically: a file there is whole)."""
    summary = task.stage.summarize(kept_in(task.input_file), task.input_file, task.engine)
    tmp = task.output.with_name(task.output.name + ".tmp")
    summary.write_parquet(tmp)
    os.replace(tmp, task.output)


@dataclass
class _StageRun:
    """One stage about to run: what it is and the hashes that key its output."""

    stage: Stage
    tag: str
    output: Path
    config: dict[str, Any]
    config_hash: str
    input_hash: str
    forced: bool
    last: Manifest | None = None  # the stage's previous run, whose parts a new one keeps to


def _unit_key(run: _StageRun, unit: SourceUnit) -> str:
    return hash_json([unit.fingerprint, run.config_hash])


def _held_by_part(ids: set[str], inputs: list[Path]) -> list[frozenset[str]]:
    """Per input part, which of `ids` it holds: the records a plan set aside (quarantined
    there) leave the part that holds them, and only that part's key changes."""
    if not ids:
        return [frozenset()] * len(inputs)
    wanted = pl.Series(sorted(ids), dtype=pl.String).implode()
    return [
        frozenset(kept_in(file).filter(pl.col("id").is_in(wanted)).collect()["id"])
        for file in inputs
    ]


def _check_unique_ids(tag: str, files: list[Path]) -> None:
    if pl.scan_parquet(files).select(pl.col("id").is_duplicated().any()).collect().item():
        raise StageError(f"stage '{tag}' produced duplicate record ids")


def _check_ids_from_input(tag: str, part_file: Path, input_file: Path) -> None:
    """A part of a per-part stage holds records of its input part only, each once; with the
    input's ids unique across its parts, so are the stage's."""
    _check_unique_ids(tag, [part_file])
    ids = kept_in(input_file).select("id")
    foreign = pl.scan_parquet(part_file).select("id").join(ids, on="id", how="anti")
    if foreign.select(pl.len()).collect().item():
        raise StageError(f"stage '{tag}' produced records that are not in its input part")


def _parts_intact(folder: Path, parts: list[dict[str, Any]]) -> bool:
    """Whether the output folder still holds exactly the listed parts, unchanged."""
    if not parts or not folder.is_dir():
        return False
    names = {path.name for path in folder.glob("*.parquet")}
    if names != {part["file"] for part in parts}:
        return False
    return all(hash_file(folder / part["file"]) == part["sha256"] for part in parts)


def _as_batches(result: StageResult) -> Iterator[pl.DataFrame]:
    if isinstance(result, pl.LazyFrame):
        return result.collect_batches()
    if isinstance(result, pl.DataFrame):
        return iter([result])
    return result


def _counts(part_file: Path) -> dict[str, int]:
    """Rows of a part per filter_reason ("" for the kept ones)."""
    counts = pl.scan_parquet(part_file).group_by("filter_reason").len().collect()
    return {reason or "": n for reason, n in counts.iter_rows()}


@contextmanager
def _showing(progress: Any | None) -> Iterator[None]:
    if progress is not None:
        progress.start()
    try:
        yield
    finally:
        if progress is not None:
            progress.stop()


@contextmanager
def _schema_checked(tag: str) -> Iterator[None]:
    try:
        yield
    except SchemaError as e:
        raise StageError(f"stage '{tag}' produced records that break the schema: {e}") from e
