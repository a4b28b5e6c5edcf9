"""The Ray engine (the [ray] extra): it keeps the local engine's contract for batch functions
and writes the local engine's files. Skipped as a whole without Ray; the engine-independent
tests are in test_engines.py, which runs without it."""

from __future__ import annotations

import sys

import polars as pl
import pytest
import test_engines
from test_engines import (
    check_a_raising_record_is_reported_and_the_rest_kept,
    check_set_up_once_per_worker_in_input_order,
    corpus,
)

from annotators.config import AnnotateConfig
from annotators.estimate import estimate
from codecurate.config import load_config
from codecurate.pipeline import run_pipeline
from curation import IngestConfig, IngestStage, Runner, stage_frame
from curation.engines import EngineConfig, LocalEngine

ray = pytest.importorskip("ray")
from curation.engines.ray_engine import RayEngine  # noqa: E402 - needs the [ray] extra


@pytest.fixture(scope="module")
def ray_cluster():
    """A local Ray with 2 CPUs for the module; engines use it and leave it running."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    # Workers cannot import the test modules: ship the tests' own classes by value.
    for module in (sys.modules[__name__], test_engines):
        ray.cloudpickle.register_pickle_by_value(module)
    yield
    ray.shutdown()


@pytest.mark.slow
def test_ray_batch_functions_are_set_up_once_per_worker_and_keep_input_order(ray_cluster):
    check_set_up_once_per_worker_in_input_order(RayEngine(workers=2))


@pytest.mark.slow
def test_ray_record_that_raises_comes_back_as_a_record_error_and_the_rest_in_order(ray_cluster):
    check_a_raising_record_is_reported_and_the_rest_kept(RayEngine(workers=2))


@pytest.mark.slow
def test_ray_engine_writes_the_local_engines_files_at_every_stage(sample, tmp_path, ray_cluster):
    outputs = {}
    for kind in ("local", "ray"):
        config = load_config(sample.parent.parent / "curate.toml")
        config.workdir = tmp_path / kind
        config.pii.workers, config.pii.batch_size = 2, 8
        config.dedup.partitions = 3  # shuffles between partitions, on a small corpus
        config.dedup.against = []  # decontamination has its own tests
        config.engine = EngineConfig(kind=kind)
        manifests = run_pipeline(config, until="annotate")  # the offline annotator
        assert {m.versions["engine"] for m in manifests} == {kind}
        outputs[kind] = {m.tag: m for m in manifests}
    assert [*outputs["local"]][-1].endswith("_annotate")
    for tag in outputs["local"]:
        local, ray_ = (stage_frame(tmp_path / kind / tag).collect() for kind in outputs)
        assert local.equals(ray_), tag  # same units, redactions and cluster partition
        assert outputs["local"][tag].output_hash == outputs["ray"][tag].output_hash
    clustered = stage_frame(tmp_path / "ray" / "04_dedup").collect()
    assert clustered["cluster_size"].max() > 1  # the sample's planted near-copies are found
    annotated = stage_frame(tmp_path / "ray" / [*outputs["ray"]][-1]).collect()
    assert annotated["instruction"].count() > 0  # answers prepared on Ray's workers


@pytest.mark.slow
def test_ray_engine_counts_the_same_prompt_tokens(ray_cluster):
    records = corpus(families=60).with_columns(content_clean=pl.col("content"))
    config = AnnotateConfig(tasks=["instruction_for_code"])
    local = estimate(records, config)
    assert local["prompt_tokens"][0] > 0
    assert estimate(records, config, engine=RayEngine(workers=2)).equals(local)


@pytest.mark.slow
def test_ray_engine_drops_a_row_an_earlier_shard_gives_as_the_local_one_does(tmp_path, ray_cluster):
    shards = tmp_path / "shards"
    shards.mkdir()
    pl.DataFrame({"content": ["a = 1\n", "b = 2\n"], "path": ["a.py", "b.py"]}).write_parquet(
        shards / "1.parquet"
    )
    pl.DataFrame({"content": ["b = 2\n", "c = 3\n"], "path": ["b.py", "c.py"]}).write_parquet(
        shards / "2.parquet"
    )
    outputs = []
    for name, engine in (("local", LocalEngine(workers=1)), ("ray", RayEngine(workers=2))):
        workdir = tmp_path / name
        config = IngestConfig(sources=[{"type": "hf", "path": shards}], languages=["python"])
        [manifest] = Runner(workdir, engine=engine).run([IngestStage(config, workdir / "clones")])
        assert manifest.skipped == {"duplicate_record": 1}
        assert (manifest.rows_in, manifest.rows_out) == (3, 3)
        outputs.append(stage_frame(workdir / "01_ingest").collect())
    local, ray_ = outputs
    assert sorted(local["path"]) == ["a.py", "b.py", "c.py"]
    assert local.equals(ray_)
