"""The stage runner: manifests, resume after a crash, quarantine, schema checks, records
that raise, stages that fail, the workdir lock and workers that die with the run."""

import json
import os
import signal
import subprocess
import sys
import time
from contextlib import suppress
from pathlib import Path
from typing import ClassVar

import polars as pl
import pytest
from pydantic import BaseModel
from typer.testing import CliRunner

from codecurate.cli import app
from codecurate.summary import failures_table, read_failures
from curation import Runner, Stage, StageContext, StageError, stage_frame
from curation.engines import BatchFunction
from curation.quarantine import RAW_LIMIT, cut, digest
from curation.sources.common import finish_records

ROOT = Path(__file__).resolve().parents[1]


class SourceConfig(BaseModel):
    texts: list[str]
    bad: list[str] = []
    malformed: list[str] = []  # raw lines quarantined as malformed_json


class ListSource(Stage):
    """Records from a list of texts; `bad` entries are quarantined."""

    name: ClassVar[str] = "ingest"
    is_source: ClassVar[bool] = True

    def __init__(self, config: SourceConfig) -> None:
        self.config = config

    def input_fingerprint(self) -> str:
        return "|".join(self.config.texts)

    def run(self, records, ctx: StageContext):
        for text in self.config.bad:
            ctx.quarantine("undecodable", source="list", path=text, detail="test")
        for line in self.config.malformed:
            ctx.quarantine("malformed_json", source="list", path="x.jsonl", raw=line,
                           detail=f"cannot parse {line}")  # fmt: skip
        rows = [{"kind": "code", "source": "list", "path": f"{i}.py", "content": t}
                for i, t in enumerate(self.config.texts)]  # fmt: skip
        yield finish_records(rows)


class UpperConfig(BaseModel):
    drop: str = ""


class Upper(Stage):
    """Upper-cases content into content_clean; drops one text; can be made to crash."""

    name: ClassVar[str] = "upper"
    crash = False
    calls = 0

    def __init__(self, config: UpperConfig) -> None:
        self.config = config

    def run(self, records, ctx):
        Upper.calls += 1
        if Upper.crash:
            raise RuntimeError("killed mid-stage")
        return records.with_columns(
            content_clean=pl.col("content").str.to_uppercase(),
            filter_reason=pl.when(pl.col("content") == self.config.drop).then(pl.lit("unwanted")),
        )


@pytest.fixture(autouse=True)
def reset_upper():
    Upper.crash, Upper.calls = False, 0


def stages(texts=("a = 1", "b = 2", "c = 3"), drop="b = 2", bad=()):
    return [
        ListSource(SourceConfig(texts=list(texts), bad=list(bad))),
        Upper(UpperConfig(drop=drop)),
    ]


def test_each_stage_writes_parquet_and_a_manifest_with_counts(tmp_path):
    manifests = Runner(tmp_path).run(stages(bad=["blob.bin"]))
    assert [m.tag for m in manifests] == ["01_ingest", "02_upper"]
    ingest, upper = manifests
    assert (ingest.rows_in, ingest.rows_out, ingest.quarantined) == (4, 3, {"undecodable": 1})
    assert (upper.rows_in, upper.rows_out, upper.dropped) == (3, 2, {"unwanted": 1})
    on_disk = json.loads((tmp_path / "02_upper.json").read_text())
    assert on_disk["output_hash"] == upper.output_hash
    assert on_disk["input_hash"] == ingest.output_hash
    out = stage_frame(tmp_path / "02_upper").collect()
    assert out.filter(pl.col("filter_reason").is_null())["content_clean"].to_list() == [
        "A = 1",
        "C = 3",
    ]


def test_rerun_after_a_crash_resumes_at_the_failed_stage(tmp_path):
    Upper.crash = True
    with pytest.raises(StageError, match="stage '02_upper' failed: RuntimeError"):
        Runner(tmp_path).run(stages())
    first = json.loads((tmp_path / "01_ingest.json").read_text())
    assert not (tmp_path / "02_upper.json").exists()
    assert not (tmp_path / "02_upper").exists()
    assert not list(tmp_path.glob("*.tmp"))

    Upper.crash = False
    ingest, upper = Runner(tmp_path).run(stages())
    assert ingest.resumed and not upper.resumed
    assert json.loads((tmp_path / "01_ingest.json").read_text()) == first  # not rewritten
    assert upper.rows_out == 2
    assert not (tmp_path / "02_upper.failed.json").exists()  # done now: no failure to show


def test_a_finished_pipeline_reruns_nothing(tmp_path):
    Runner(tmp_path).run(stages())
    calls = Upper.calls
    assert all(m.resumed for m in Runner(tmp_path).run(stages()))
    assert Upper.calls == calls


def test_changed_config_reruns_that_stage_only(tmp_path):
    Runner(tmp_path).run(stages())
    ingest, upper = Runner(tmp_path).run(stages(drop="c = 3"))
    assert ingest.resumed and not upper.resumed
    assert upper.dropped == {"unwanted": 1}


def test_changed_input_reruns_everything_downstream(tmp_path):
    Runner(tmp_path).run(stages())
    ingest, upper = Runner(tmp_path).run(stages(texts=("a = 1", "d = 4")))
    assert not ingest.resumed and not upper.resumed


def test_a_tampered_output_or_torn_manifest_is_redone(tmp_path):
    Runner(tmp_path).run(stages())
    (tmp_path / "02_upper.json").write_text("{not json")
    assert not Runner(tmp_path).run(stages())[1].resumed
    (tmp_path / "01_ingest" / "part-00000.parquet").write_bytes(b"garbage")
    assert [m.resumed for m in Runner(tmp_path).run(stages())] == [False, True]


def test_force_reruns_a_done_stage(tmp_path):
    Runner(tmp_path).run(stages())
    assert not Runner(tmp_path).run(stages(), force=["upper"])[1].resumed


def test_quarantine_collects_every_stage_into_one_file(tmp_path):
    Runner(tmp_path).run(stages(bad=["x.bin", "y.bin"]))
    quarantine = pl.read_parquet(tmp_path / "quarantine.parquet")
    assert quarantine.select("stage", "path", "reason").rows() == [
        ("01_ingest", "x.bin", "undecodable"),
        ("01_ingest", "y.bin", "undecodable"),
    ]


class BadOutput(Upper):
    name: ClassVar[str] = "bad"

    def run(self, records, ctx):
        return records.with_columns(num_lines=pl.lit(None, pl.Int64))


def test_a_stage_that_breaks_the_schema_fails_naming_the_column(tmp_path):
    with pytest.raises(StageError, match=r"02_bad.*num_lines"):
        Runner(tmp_path).run([stages()[0], BadOutput(UpperConfig())])


def test_the_first_stage_must_be_a_source(tmp_path):
    with pytest.raises(StageError, match="must read a source"):
        Runner(tmp_path).run([Upper(UpperConfig())])


def test_a_change_to_a_stages_code_reruns_it(tmp_path, monkeypatch):
    module = tmp_path / "pkg_stage_code.py"
    source = (
        "from curation import Stage\n\n"
        "class Coded(Stage):\n    name = 'coded'\n    RULE = 1\n\n"
        "    def __init__(self, config):\n        self.config = config\n\n"
        "    def run(self, records, ctx):\n        return records\n"
    )
    module.write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    from pkg_stage_code import Coded

    run = lambda: Runner(tmp_path / "w").run([stages()[0], Coded(UpperConfig())])  # noqa: E731
    run()
    assert run()[1].resumed
    module.write_text(source.replace("RULE = 1", "RULE = 2"))
    assert not run()[1].resumed


# --- no record can stop a stage ---------------------------------------------------------


class MapConfig(BaseModel):
    workers: int = 1
    batch_size: int = 2


class Shout(BatchFunction):
    """Upper-cases content; raises on a record holding BOOM, quoting it as Presidio's
    merged-span KeyError quoted the names it could not replace."""

    def __call__(self, batch: pl.DataFrame) -> pl.DataFrame:
        for text in batch["content"]:
            if "BOOM" in text:
                raise KeyError(("PERSON", text))
        return batch.with_columns(content_clean=pl.col("content").str.to_uppercase())


class DiskFull(BatchFunction):
    """Fails every batch and every record alike, as a full disk would."""

    def __call__(self, batch: pl.DataFrame) -> pl.DataFrame:
        raise OSError(28, "No space left on device")


class MapStage(Stage):
    """A map stage as pii is one: its batch function handed to the context's engine."""

    name: ClassVar[str] = "shout"
    fn: ClassVar[type[BatchFunction]] = Shout

    def __init__(self, config: MapConfig) -> None:
        self.config = config

    def run(self, records, ctx):
        return ctx.engine.map_batches(
            records, self.fn(), batch_size=self.config.batch_size, workers=self.config.workers,
            kept_from=ctx.input_path,
        )  # fmt: skip


TEXTS = ("a = 1", "name = 'Jane Roe BOOM'", "c = 3", "d = 4", "e = 5")


@pytest.mark.parametrize("workers", [1, 2], ids=["in process", "2 worker processes"])
def test_a_record_that_raises_in_a_map_is_quarantined_and_the_rest_is_written(tmp_path, workers):
    _, shout = Runner(tmp_path).run(
        [ListSource(SourceConfig(texts=list(TEXTS))), MapStage(MapConfig(workers=workers))]
    )
    out = stage_frame(tmp_path / "02_shout").collect()
    assert out["content_clean"].to_list() == ["A = 1", "C = 3", "D = 4", "E = 5"]
    assert (shout.rows_in, shout.rows_out, shout.quarantined) == (5, 4, {"stage_error": 1})
    [row] = pl.read_parquet(tmp_path / "quarantine.parquet").to_dicts()
    bad_id = stage_frame(tmp_path / "01_ingest").collect().filter(pl.col("path") == "1.py")
    assert (row["stage"], row["reason"], row["path"], row["id"]) == (
        "02_shout", "stage_error", "1.py", bad_id["id"].item()
    )  # fmt: skip
    # no redactor (no pii stage): the message, which quotes the record, is kept as a hash
    assert row["detail"] == "KeyError: " + digest(str(("PERSON", "name = 'Jane Roe BOOM'")))


def names_out(texts: list[str]) -> list[str]:
    """A stand-in for the pii stage's redaction, for the runner's side of the contract."""
    if any("UNREDACTABLE" in text for text in texts):
        raise KeyError("the redactor's own crash")
    return [text.replace("Jane Roe", "<NAME>") for text in texts]


def test_quarantined_raw_text_and_details_are_written_only_through_the_redactor(tmp_path):
    line = '{"body": "ask Jane Roe"'
    source = ListSource(SourceConfig(texts=list(TEXTS), malformed=[line, "UNREDACTABLE Jane Roe"]))
    Runner(tmp_path, redact=names_out).run([source, MapStage(MapConfig())])
    rows = pl.read_parquet(tmp_path / "quarantine.parquet").select("reason", "detail", "raw")
    assert rows.rows() == [
        ("malformed_json", 'cannot parse {"body": "ask <NAME>"', '{"body": "ask <NAME>"'),
        # the redactor raised on this one: kept as its hash, never as it is
        ("malformed_json", digest("cannot parse UNREDACTABLE Jane Roe"),
         digest("UNREDACTABLE Jane Roe")),
        ("stage_error", "KeyError: ('PERSON', \"name = '<NAME> BOOM'\")", None),
    ]  # fmt: skip
    assert "Jane Roe" not in (tmp_path / "quarantine" / "01_ingest.parquet").read_bytes().decode(
        "latin-1"
    )


def test_raw_text_is_cut_where_a_token_ends_and_hashed_whole():
    secret = "AKIA" + "Q" * 16
    text = "x" * (RAW_LIMIT - 10) + " " + secret + " tail"
    assert cut(text) == "x" * (RAW_LIMIT - 10)  # not the key's first half
    assert cut("short") == "short"
    assert cut("y" * (RAW_LIMIT + 1)) == ""  # one token too long to end anywhere: none of it
    assert digest("abc") == (
        "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad (3 chars)"
    )


def test_a_fault_that_every_record_shares_fails_the_stage_instead_of_quarantining_all(tmp_path):
    class Broken(MapStage):
        name: ClassVar[str] = "broken"
        fn: ClassVar[type[BatchFunction]] = DiskFull

    with pytest.raises(StageError, match="stage '02_broken' failed: OSError"):
        Runner(tmp_path).run([ListSource(SourceConfig(texts=list(TEXTS))), Broken(MapConfig())])
    assert pl.read_parquet(tmp_path / "quarantine.parquet")["stage"].to_list() == []
    assert not (tmp_path / "02_broken").exists()
    assert read_failures(tmp_path)[0].tag == "02_broken"


def test_a_record_that_raises_in_dedup_is_quarantined_and_the_rest_clustered(tmp_path, monkeypatch):
    import curation.dedup.phases as phases
    from curation.dedup import DedupConfig, DedupStage

    real = phases.shingle_hashes

    def shingle_hashes(text, config):
        if "BOOM" in text:
            raise ValueError(f"cannot shingle {text[:12]!r}")
        return real(text, config)

    monkeypatch.setattr(phases, "shingle_hashes", shingle_hashes)
    body = "\n".join(f"value_{i} = compute({i} * 7, 'x')" for i in range(30))
    texts = [body, body + "\nlast = 1", "BOOM " + body, "unrelated = 1\n" * 5]
    _, dedup = Runner(tmp_path).run(
        [ListSource(SourceConfig(texts=texts)), DedupStage(DedupConfig())]
    )
    out = stage_frame(tmp_path / "02_dedup").collect().sort("path")
    assert out.select("path", "cluster_size", "filter_reason").rows() == [
        ("0.py", 2, "near_duplicate"), ("1.py", 2, None), ("3.py", 1, None)
    ]  # fmt: skip
    assert (dedup.rows_in, dedup.quarantined) == (4, {"stage_error": 1})
    [row] = pl.read_parquet(tmp_path / "quarantine.parquet").to_dicts()
    assert (row["path"], row["detail"]) == (
        "2.py",
        "ValueError: " + digest("cannot shingle 'BOOM value_0'"),
    )


def test_a_record_that_raises_in_dedups_plan_is_quarantined_and_left_out(tmp_path, monkeypatch):
    import curation.dedup.phases as phases
    from curation.dedup import DedupConfig, DedupStage

    real = phases.TextShuffle.__call__

    def shuffle(self, batch):
        if batch["content"].str.contains("BOOM").any():
            raise ValueError("cannot shuffle")
        return real(self, batch)

    monkeypatch.setattr(phases.TextShuffle, "__call__", shuffle)  # the plan's texts phase
    body = "\n".join(f"value_{i} = compute({i} * 7, 'x')" for i in range(30))
    # the longest of its cluster, so the representative were it not set aside
    texts = [body, body + "\nlast = 1", "unrelated = 1\n" * 5, "# BOOM\n" + body + "\nlast = 1"]
    _, dedup = Runner(tmp_path, part_rows=2).run(
        [ListSource(SourceConfig(texts=texts)), DedupStage(DedupConfig())]
    )
    out = stage_frame(tmp_path / "02_dedup").collect().sort("path")
    assert out.select("path", "cluster_size", "filter_reason").rows() == [
        ("0.py", 2, "near_duplicate"), ("1.py", 2, None), ("2.py", 1, None)
    ]  # fmt: skip
    assert (dedup.rows_in, dedup.rows_out + sum(dedup.dropped.values())) == (4, 3)
    [row] = pl.read_parquet(tmp_path / "quarantine.parquet").to_dicts()
    assert (row["stage"], row["path"], row["reason"]) == ("02_dedup", "3.py", "stage_error")


# --- a stage that fails as a whole ------------------------------------------------------


class Quoting(Upper):
    """Fails as a whole with a message that quotes a record."""

    name: ClassVar[str] = "quoting"

    def run(self, records, ctx):
        yield records.collect()  # half written when it fails
        raise RuntimeError("cannot go on after Jane Roe's file")


def test_a_failed_stage_leaves_no_tmp_and_says_why_redacted_in_failed_json(tmp_path):
    with pytest.raises(StageError) as raised:
        Runner(tmp_path, redact=names_out).run([stages()[0], Quoting(UpperConfig())])
    assert not list(tmp_path.glob("*.tmp")) and not (tmp_path / "02_quoting").exists()
    [failure] = read_failures(tmp_path)
    assert failure.error.startswith("RuntimeError: cannot go on after <NAME>'s file (at ")
    assert failure.where[-1].startswith("tests/test_runner.py:")
    assert "Jane Roe" not in str(raised.value)
    assert failure.error in str(raised.value)
    assert json.loads((tmp_path / "01_ingest.json").read_text())["rows_out"] == 3  # kept


def test_a_stage_with_duplicate_ids_leaves_no_tmp(tmp_path):
    class Doubling(Upper):
        name: ClassVar[str] = "doubling"

        def run(self, records, ctx):
            frame = records.collect()
            return iter([frame, frame])  # each batch valid on its own

    with pytest.raises(StageError, match="duplicate record ids"):
        Runner(tmp_path).run([stages()[0], Doubling(UpperConfig())])
    assert not list(tmp_path.glob("*.tmp"))
    assert "duplicate record ids" in read_failures(tmp_path)[0].error


class PerPartDoubling(Upper):
    """A per-part stage that gives a record twice, or (`renamed`) one its input lacks."""

    name: ClassVar[str] = "doubling"
    per_part: ClassVar[bool] = True
    renamed = False

    def run(self, records, ctx):
        frame = records.collect()
        copy = frame.with_columns(id=pl.col("id") + "x") if self.renamed else frame
        return iter([frame, copy.head(1)])  # each batch valid on its own


@pytest.mark.parametrize(
    ("renamed", "error"),
    [(False, "duplicate record ids"), (True, "records that are not in its input part")],
)
def test_a_per_part_stage_giving_a_record_twice_or_one_its_input_lacks_fails(
    tmp_path, renamed, error
):
    stage = PerPartDoubling(UpperConfig())
    stage.renamed = renamed
    with pytest.raises(StageError, match=error):
        Runner(tmp_path).run([stages()[0], stage])
    assert error in read_failures(tmp_path)[0].error and not (tmp_path / "02_doubling").exists()


def write_config(
    tmp_path: Path,
    workdir: str = "work",
    stages: tuple[str, ...] = ("ingest", "filters"),
    files: dict[str, str] | None = None,
    extra: str = "",
) -> Path:
    """A curate.toml over a folder of Python files (three small ones unless given)."""
    repo = tmp_path / "repo"
    repo.mkdir(exist_ok=True)
    files = files or {f"m{i}.py": f"def f{i}(x):\n    return x * {i} + {i * i}\n" for i in range(3)}
    for name, text in files.items():
        (repo / name).write_text(text)
    config = tmp_path / "curate.toml"
    config.write_text(
        f'workdir = "{workdir}"\nstages = {json.dumps(list(stages))}\n'
        '[ingest]\nlanguages = ["python"]\n[[ingest.sources]]\ntype = "dir"\npath = "repo"\n'
        + extra
    )
    return config


def curate(*args: str) -> tuple[int, str]:
    """`curate ARGS`: exit code and everything it printed."""
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def test_status_shows_a_failed_stage_with_its_reason(tmp_path):
    config = write_config(tmp_path)
    with pytest.raises(StageError):
        Runner(tmp_path / "work").run([stages()[0], Quoting(UpperConfig())])
    # a process of its own, in a wide terminal, so the table's cells are not folded
    done = subprocess.run(
        [sys.executable, "-c", "from codecurate.cli import main; main()", "status", "-c",
         str(config)],
        capture_output=True, text=True, env=os.environ | {"PYTHONPATH": str(ROOT),
                                                          "COLUMNS": "250"},
    )  # fmt: skip
    output = done.stdout
    assert done.returncode == 0, done.stderr
    assert "failed stages" in output and "02_quoting" in output
    assert "RuntimeError: sha256:" in output  # no pii stage: the message only as a hash
    table = failures_table(read_failures(tmp_path / "work"))
    assert table is not None and table.row_count == 1


# --- the workdir ------------------------------------------------------------------------

HOLD = """
import sys, time
from pathlib import Path
from curation.workdir import hold
with hold(Path(sys.argv[1])):
    print("held", flush=True)
    time.sleep(120)
"""


def test_a_second_run_on_a_held_workdir_exits_2_naming_the_pid_and_a_dead_holder_is_taken_over(
    tmp_path,
):
    config = write_config(tmp_path)
    workdir = tmp_path / "work"
    workdir.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(workdir)], stdout=subprocess.PIPE,
                              env=os.environ | {"PYTHONPATH": str(ROOT)}, text=True)  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        code, output = curate("run", "-c", str(config))
    finally:
        holder.send_signal(signal.SIGKILL)  # dies holding it: its lock file stays behind
        holder.wait()
    assert code == 2
    assert f"is in use by another curate run (PID {holder.pid})" in output
    assert output.count("\n") == 1  # one line, no traceback
    assert (workdir / "curate.lock").read_text().strip() == str(holder.pid)
    code, output = curate("run", "-c", str(config))
    assert code == 0, output
    assert json.loads((workdir / "02_filters.json").read_text())["rows_out"] == 3


@pytest.mark.parametrize("where", ["file/work", "file"], ids=["under a file", "is a file"])
def test_an_unusable_workdir_is_one_line_and_exit_2(tmp_path, where):
    (tmp_path / "file").write_text("not a folder")
    code, output = curate("run", "-c", str(write_config(tmp_path, workdir=where)))
    assert code == 2
    assert output.startswith(f"error: workdir '{tmp_path / where}': cannot write there (")
    assert output.count("\n") == 1
    assert output.count("\n") == 1  # one line, no traceback


# A process whose child guards itself against the process's death, says so, and sleeps.
GUARDED = """
import os, subprocess, sys, time
guard = "import sys, time; from curation.engines import local\\n" + sys.argv[1]
subprocess.Popen([sys.executable, "-c", guard, str(os.getpid())])
time.sleep(120)
"""
GUARDS = {
    "kernel (Linux)": "local.die_with_parent(int(sys.argv[1])); print(flush=True); time.sleep(120)",
    "watchdog thread (elsewhere)": "print(flush=True); local._watch_parent(int(sys.argv[1]))",
}


@pytest.mark.parametrize("guard", GUARDS.values(), ids=GUARDS.keys())
def test_a_guarded_worker_dies_when_its_parent_is_killed(guard):
    psutil = pytest.importorskip("psutil")
    parent = subprocess.Popen([sys.executable, "-c", GUARDED, guard], stdout=subprocess.PIPE,
                              env=os.environ | {"PYTHONPATH": str(ROOT)}, text=True)  # fmt: skip
    parent.stdout.readline()  # the child's guard is in place
    [child] = psutil.Process(parent.pid).children()
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    try:
        child.wait(timeout=10)  # raises TimeoutExpired if it outlives its parent
    finally:
        if child.is_running():
            child.kill()


@pytest.mark.slow
def test_kill_9_of_a_run_leaves_no_pii_worker_behind(tmp_path):
    psutil = pytest.importorskip("psutil")
    pytest.importorskip("presidio_analyzer")
    lines = [
        f"def f{k}(x):\n    return x * {k}  # call Mary Jones at 555-0{k:03d}" for k in range(40)
    ]
    files = {f"m{i}.py": f"# Maintainer: Jane Roe <jane{i}@example.com>\n" + "\n".join(lines)
             for i in range(120)}  # fmt: skip
    config = write_config(tmp_path, stages=("ingest", "filters", "pii"), files=files,
                          extra="[pii]\nworkers = 2\nbatch_size = 1\n")  # fmt: skip
    run = subprocess.Popen(
        [sys.executable, "-c", "from codecurate.cli import main; main()", "run", "-c", str(config)],
        env=os.environ | {"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    parent = psutil.Process(run.pid)

    def workers() -> list:
        found = []
        for child in parent.children(recursive=True):
            with suppress(psutil.Error):  # a child that just ended
                if "spawn_main" in " ".join(child.cmdline()):
                    found.append(child)
        return found

    deadline = time.monotonic() + 120
    while len(workers()) < 2 and time.monotonic() < deadline and run.poll() is None:
        time.sleep(0.2)
    time.sleep(3)  # let them load their PII engines and start on batches
    children = parent.children(recursive=True)
    assert run.poll() is None, "the run finished before it could be killed: grow the corpus"
    assert len(workers()) == 2
    run.send_signal(signal.SIGKILL)
    run.wait()
    _, alive = psutil.wait_procs(children, timeout=10)
    for survivor in alive:
        survivor.kill()
    assert alive == []  # workers and the resource tracker alike


@pytest.mark.parametrize("with_pii", [True, False], ids=["pii stage", "no pii stage"])
def test_a_pipeline_quarantines_malformed_json_only_redacted_or_hashed(tmp_path, with_pii):
    pytest.importorskip("presidio_analyzer")
    from codecurate.config import load_config
    from codecurate.pipeline import run_pipeline

    export = tmp_path / "export"
    export.mkdir()
    line = '{"number": 9, "body": "mail jane.roe@example.com, key AKIAIOSFODNN7EXAMPLE'
    (export / "issues.jsonl").write_text(line + "\n")
    stages = ["ingest", "filters", "pii"] if with_pii else ["ingest", "filters"]
    config = tmp_path / "curate.toml"
    config.write_text(
        f'workdir = "work"\nstages = {json.dumps(stages)}\n[ingest]\n'
        '[[ingest.sources]]\ntype = "github"\npath = "export"\n[pii]\nner = false\n'
    )
    run_pipeline(load_config(config), until="ingest")
    [row] = pl.read_parquet(tmp_path / "work" / "quarantine.parquet").to_dicts()
    assert row["reason"] == "malformed_json"
    if with_pii:
        assert row["raw"] == '{"number": 9, "body": "mail <EMAIL>, key <KEY>'
    else:
        assert row["raw"] == digest(line)
