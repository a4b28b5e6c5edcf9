"""Engines: the Ray engine writes the local engine's files; dedup phases scale and resume."""

from __future__ import annotations

import os
import random
import sys
from pathlib import Path

import polars as pl
import pytest

from annotators.config import AnnotateConfig
from annotators.estimate import estimate
from codecurate.config import load_config
from codecurate.pipeline import run_pipeline
from curation import StageContext, stage_frame
from curation.dedup import DedupConfig, DedupStage
from curation.dedup.minhash import star_components
from curation.engines import BatchFunction, EngineConfig, LocalEngine
from curation.sources.common import finish_records

ray = pytest.importorskip("ray")
from curation.engines.ray_engine import RayEngine  # noqa: E402 - needs the [ray] extra


@pytest.fixture(scope="module")
def ray_cluster():
    """A local Ray with 2 CPUs for the module; engines use it and leave it running."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    # Workers cannot import this test module: ship the test's own classes by value.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield
    ray.shutdown()


class SetupCount(BatchFunction):
    """Reports, per batch, the worker's process id and how often it was set up."""

    def __init__(self) -> None:
        self.setups = 0

    def setup(self) -> None:
        self.setups += 1

    def __call__(self, batch: pl.DataFrame) -> pl.DataFrame:
        return batch.select("n").with_columns(pid=pl.lit(os.getpid()), setups=pl.lit(self.setups))


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["local", "ray"])
def test_batch_functions_are_set_up_once_per_worker_and_keep_input_order(engine, request):
    if engine == "ray":
        request.getfixturevalue("ray_cluster")
    runner = RayEngine(workers=2) if engine == "ray" else LocalEngine(workers=2)
    numbers = pl.DataFrame({"n": range(100)}).lazy()
    out = pl.concat(runner.map_batches(numbers, SetupCount(), batch_size=10))
    assert out["n"].to_list() == list(range(100))
    assert out["setups"].unique().to_list() == [1]
    assert out["pid"].n_unique() <= 2 and os.getpid() not in out["pid"]


class FailOnSeven(BatchFunction):
    """Doubles n; raises on any batch holding 7, naming it."""

    def __call__(self, batch: pl.DataFrame) -> pl.DataFrame:
        if 7 in batch["n"]:
            raise ValueError("seven is not allowed\nsecond line")
        return batch.with_columns(double=pl.col("n") * 2)


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["local", "ray"])
def test_a_record_that_raises_comes_back_as_a_record_error_and_the_rest_in_order(engine, request):
    if engine == "ray":
        request.getfixturevalue("ray_cluster")
    runner = RayEngine(workers=2) if engine == "ray" else LocalEngine(workers=2)
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
    """A local engine whose first partition-task call after `crash_at` maps raises."""

    def __init__(self, crash_after_tasks: int) -> None:
        super().__init__(workers=1)
        self.crash_after_tasks = crash_after_tasks
        self.maps = 0
        self.tasks = 0

    def map_batches(self, *args, **kwargs):
        self.maps += 1
        return super().map_batches(*args, **kwargs)

    def run_tasks(self, fn, tasks):
        self.tasks += 1
        if self.tasks == self.crash_after_tasks + 1:
            raise RuntimeError("worker lost")
        return super().run_tasks(fn, tasks)


def test_dedup_resumes_from_its_finished_phases_after_a_crash(tmp_path):
    records, config = corpus(), DedupConfig(partitions=3)
    engine = CrashOnce(crash_after_tasks=2)  # signatures, candidates, roots done; verify fails
    ctx = StageContext(tmp_path, "04_dedup", engine=engine, run_key="same input")
    with pytest.raises(RuntimeError, match="worker lost"):
        list(DedupStage(config).run(records, ctx))
    assert sorted(p.name for p in (tmp_path / "04_dedup.work" / "_done").iterdir()) == [
        "candidates.json", "roots.json", "signatures.json"
    ]  # fmt: skip
    resumed = pl.concat(DedupStage(config).run(records, ctx)).sort("id")
    assert engine.maps == 1  # signatures were not computed again
    assert resumed.equals(dedup(records, partitions=3))
    assert not (tmp_path / "04_dedup.work").exists()  # removed once the stage is done


@pytest.mark.slow
def test_ray_engine_writes_the_local_engines_pii_and_dedup_files(sample, tmp_path, ray_cluster):
    outputs = {}
    for kind in ("local", "ray"):
        config = load_config(sample.parent.parent / "curate.toml")
        config.workdir = tmp_path / kind
        config.pii.workers, config.pii.batch_size = 2, 8
        config.dedup.partitions = 3  # shuffles between partitions, on a small corpus
        config.engine = EngineConfig(kind=kind)
        manifests = run_pipeline(config, until="dedup")
        assert {m.versions["engine"] for m in manifests} == {kind}
        outputs[kind] = {m.tag: m for m in manifests}
    for tag in ("03_pii", "04_dedup"):
        local, ray_ = (stage_frame(tmp_path / kind / tag).collect() for kind in outputs)
        assert local.equals(ray_), tag  # same redactions, same cluster partition
        assert outputs["local"][tag].output_hash == outputs["ray"][tag].output_hash
    clustered = stage_frame(tmp_path / "ray" / "04_dedup").collect()
    assert clustered["cluster_size"].max() > 1  # the sample's planted near-copies are found


@pytest.mark.slow
def test_ray_engine_counts_the_same_prompt_tokens(ray_cluster):
    records = corpus(families=60).with_columns(content_clean=pl.col("content"))
    config = AnnotateConfig(tasks=["instruction_for_code"])
    local = estimate(records, config)
    assert local["prompt_tokens"][0] > 0
    assert estimate(records, config, engine=RayEngine(workers=2)).equals(local)


def test_engine_flags_are_checked(tmp_path):
    from typer.testing import CliRunner

    from codecurate.cli import app

    config = Path(__file__).resolve().parents[1] / "curate.toml"
    result = CliRunner().invoke(app, ["run", "-c", str(config), "--engine", "spark"])
    assert result.exit_code != 0 and "expected local or ray" in result.output
    result = CliRunner().invoke(app, ["run", "-c", str(config), "--ray-address", "auto"])
    assert result.exit_code != 0 and "--ray-address needs --engine ray" in result.output
