"""Engines without Ray: batch functions on the local engine; dedup phases scale and resume.
The Ray engine's tests, which need the [ray] extra, are in test_engines_ray.py."""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import ClassVar

import polars as pl
import pytest
from pydantic import BaseModel

from curation import Runner, Stage, StageContext
from curation.dedup import DedupConfig, DedupStage
from curation.dedup.minhash import star_components
from curation.engines import BatchFunction, Engine, LocalEngine
from curation.errors import StageError
from curation.runner import Manifest, stage_frame
from curation.sources.common import finish_records


class SetupCount(BatchFunction):
    """Reports, per batch, the worker's process id and how often it was set up."""

    def __init__(self) -> None:
        self.setups = 0

    def setup(self) -> None:
        self.setups += 1

    def __call__(self, batch: pl.DataFrame) -> pl.DataFrame:
        return batch.select("n").with_columns(pid=pl.lit(os.getpid()), setups=pl.lit(self.setups))


def check_set_up_once_per_worker_in_input_order(runner: Engine) -> None:
    """What every engine must do with a batch function: see the tests that call it."""
    numbers = pl.DataFrame({"n": range(100)}).lazy()
    out = pl.concat(runner.map_batches(numbers, SetupCount(), batch_size=10))
    assert out["n"].to_list() == list(range(100))
    assert out["setups"].unique().to_list() == [1]
    assert out["pid"].n_unique() <= 2 and os.getpid() not in out["pid"]


@pytest.mark.slow
def test_batch_functions_are_set_up_once_per_worker_and_keep_input_order():
    check_set_up_once_per_worker_in_input_order(LocalEngine(workers=2))


@pytest.mark.slow
def test_maps_of_one_function_share_their_workers_while_the_engine_keeps_them():
    engine, fn = LocalEngine(workers=2), SetupCount()
    numbers = pl.DataFrame({"n": range(40)}).lazy()
    with engine.keeping_workers():
        parts = [pl.concat(engine.map_batches(numbers, fn, batch_size=10)) for _ in range(3)]
    workers = pl.concat(parts)["pid"]
    assert workers.n_unique() <= 2 and os.getpid() not in workers  # not a pool per part
    assert pl.concat(parts)["setups"].unique().to_list() == [1]
    # outside the block, each map has a pool of its own again
    apart = [pl.concat(engine.map_batches(numbers, fn, batch_size=10))["pid"] for _ in range(2)]
    assert set(apart[0]).isdisjoint(apart[1]) and set(apart[0]).isdisjoint(workers)


class FailOnSeven(BatchFunction):
    """Doubles n; raises on any batch holding 7, naming it."""

    def __call__(self, batch: pl.DataFrame) -> pl.DataFrame:
        if 7 in batch["n"]:
            raise ValueError("seven is not allowed\nsecond line")
        return batch.with_columns(double=pl.col("n") * 2)


def check_a_raising_record_is_reported_and_the_rest_kept(runner: Engine) -> None:
    """What every engine must do when a batch function raises: see the tests that call it."""
    numbers = pl.DataFrame({"n": range(20), "id": [f"r{i}" for i in range(20)]}).lazy()
    errors = []
    out = pl.concat(
        runner.map_batches(numbers, FailOnSeven(), batch_size=4, on_record_error=errors.append)
    )
    assert out["n"].to_list() == [n for n in range(20) if n != 7]
    assert out["double"].to_list() == [2 * n for n in range(20) if n != 7]
    assert [(e.record, e.error_type, e.message) for e in errors] == [
        ({"id": "r7"}, "ValueError", "seven is not allowed")
    ]


@pytest.mark.slow
def test_a_record_that_raises_comes_back_as_a_record_error_and_the_rest_in_order():
    check_a_raising_record_is_reported_and_the_rest_kept(LocalEngine(workers=2))


def test_star_components_label_each_node_with_its_components_smallest():
    rng = random.Random(3)
    for _ in range(30):
        nodes = rng.randint(2, 60)
        pairs = {tuple(sorted(rng.sample(range(nodes), 2), reverse=True)) for _ in range(nodes)}
        edges = pl.DataFrame(list(pairs), schema={"doc": pl.Int64, "root": pl.Int64}, orient="row")
        labels = dict(star_components(edges).iter_rows())
        assert labels == {
            n: label for n, label in reference_components(pairs).items() if n != label
        }


def reference_components(pairs: set[tuple[int, int]]) -> dict[int, int]:
    """Union-find, smallest node as the root: what star_components must agree with."""
    parent: dict[int, int] = {}

    def find(x: int) -> int:
        parent.setdefault(x, x)
        while parent[x] != x:
            x = parent[x]
        return x

    for a, b in pairs:
        ra, rb = find(a), find(b)
        parent[max(ra, rb)] = min(ra, rb)
    return {x: find(x) for x in parent}


def corpus(families: int = 12, copies: int = 3) -> pl.LazyFrame:
    """Families of near-copies (one line changed each) and unrelated files."""
    rng = random.Random(5)
    rows = []
    for family in range(families):
        lines = [f"value_{family}_{i} = compute({rng.randint(0, 10**6)}, {i})" for i in range(40)]
        for copy in range(copies):
            edited = [*lines[:-1], f"last = {copy}"]
            rows.append({"kind": "code", "source": "s", "path": f"f{family}_{copy}.py",
                         "content": "\n".join(edited)})  # fmt: skip
    return finish_records(rows).lazy()


def dedup(records: pl.LazyFrame, engine=None, **config) -> pl.DataFrame:
    stage = DedupStage(DedupConfig(**config))
    return pl.concat(stage.run(records, StageContext(None, "t", engine=engine))).sort("id")


def test_clusters_do_not_depend_on_partitions_or_where_scratch_lives(tmp_path):
    records = corpus()
    one = dedup(records, partitions=1)
    assert one["cluster_size"].value_counts()["cluster_size"].to_list() == [3]
    assert one.equals(dedup(records, partitions=5))
    assert one.equals(dedup(records, LocalEngine(scratch="memory://dedup-test"), partitions=3))


class CrashOnce(LocalEngine):
    """A local engine whose first call of the task function named `crash_at` raises; it
    notes the tasks it ran (function name, count) and how many maps it ran."""

    def __init__(self, crash_at: str) -> None:
        super().__init__(workers=1)
        self.crash_at = crash_at
        self.maps = 0
        self.ran: list[tuple[str, int]] = []

    def map_batches(self, *args, **kwargs):
        self.maps += 1
        return super().map_batches(*args, **kwargs)

    def run_tasks(self, fn, tasks):
        name = getattr(fn, "func", fn).__name__
        if name == self.crash_at:
            self.crash_at = ""
            raise RuntimeError("worker lost")
        self.ran.append((name, len(tasks)))
        return super().run_tasks(fn, tasks)


class NoConfig(BaseModel):
    pass


class CorpusSource(Stage):
    """corpus()'s records, as a source of the runner."""

    name: ClassVar[str] = "ingest"
    is_source: ClassVar[bool] = True
    config = NoConfig()

    def input_fingerprint(self) -> str:
        return "corpus"

    def run(self, records, ctx):
        return corpus()


def test_dedup_resumes_from_its_summaries_and_finished_phases_after_a_crash(tmp_path):
    engine = CrashOnce(crash_at="verify_task")  # summaries, signatures, candidates, roots
    stages = [CorpusSource(), DedupStage(DedupConfig(partitions=3))]
    with pytest.raises(StageError, match=r"RuntimeError: .* in run_tasks"):
        Runner(tmp_path / "work", engine=engine, part_rows=10).run(stages)
    assert sorted(p.name for p in (tmp_path / "work" / "02_dedup.work" / "_done").iterdir()) == [
        "candidates.json", "roots.json", "signatures.json", "texts.json"
    ]  # fmt: skip
    ingest = Manifest.read(tmp_path / "work" / "01_ingest.json")
    summarized = sum(tasks for name, tasks in engine.ran if name == "summarize_part")
    assert summarized == len(ingest.parts) > 1
    maps = engine.maps
    assert maps == len(ingest.parts) + 1  # each part's signatures, and the texts' shuffle
    crashed = len(engine.ran)

    Runner(tmp_path / "work", engine=engine, part_rows=10).run(stages)
    resumed = [name for name, tasks in engine.ran[crashed:] if tasks]
    assert resumed[0] == "verify_task" and resumed[-1] == "compute_part"
    assert not {"summarize_part", "signatures_task", "roots_task"} & set(resumed)
    assert engine.maps == maps  # the records were read by neither again
    assert not (tmp_path / "work" / "02_dedup.work").exists()  # removed once clustered
    Runner(tmp_path / "clean", engine=LocalEngine(workers=1), part_rows=10).run(stages)
    clean, work = (stage_frame(tmp_path / w / "02_dedup").collect() for w in ("clean", "work"))
    assert work.equals(clean) and clean["cluster_size"].max() == 3


def test_engine_flags_are_checked(tmp_path):
    from typer.testing import CliRunner

    from codecurate.cli import app

    config = Path(__file__).resolve().parents[1] / "curate.toml"
    result = CliRunner().invoke(app, ["run", "-c", str(config), "--engine", "spark"])
    assert result.exit_code != 0 and "expected local or ray" in result.output
    result = CliRunner().invoke(app, ["run", "-c", str(config), "--ray-address", "auto"])
    assert result.exit_code != 0 and "--ray-address needs --engine ray" in result.output
