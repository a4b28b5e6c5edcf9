"""The stage runner: manifests, resume after a crash, quarantine, schema checks."""

import json
from typing import ClassVar

import polars as pl
import pytest
from pydantic import BaseModel

from curation import Runner, Stage, StageContext, StageError
from curation.sources.common import finish_records


class SourceConfig(BaseModel):
    texts: list[str]
    bad: list[str] = []


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
    out = pl.read_parquet(tmp_path / "02_upper.parquet")
    assert out.filter(pl.col("filter_reason").is_null())["content_clean"].to_list() == [
        "A = 1",
        "C = 3",
    ]


def test_rerun_after_a_crash_resumes_at_the_failed_stage(tmp_path):
    Upper.crash = True
    with pytest.raises(RuntimeError, match="killed"):
        Runner(tmp_path).run(stages())
    first = json.loads((tmp_path / "01_ingest.json").read_text())
    assert not (tmp_path / "02_upper.json").exists()
    assert not (tmp_path / "02_upper.parquet").exists()

    Upper.crash = False
    ingest, upper = Runner(tmp_path).run(stages())
    assert ingest.resumed and not upper.resumed
    assert json.loads((tmp_path / "01_ingest.json").read_text()) == first  # not rewritten
    assert upper.rows_out == 2


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
    (tmp_path / "01_ingest.parquet").write_bytes(b"garbage")
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
    module.write_text("RULE = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))

    class Coded(Upper):
        code: ClassVar[tuple[str, ...]] = ("pkg_stage_code",)

    run = lambda: Runner(tmp_path / "w").run([stages()[0], Coded(UpperConfig())])  # noqa: E731
    run()
    assert run()[1].resumed
    module.write_text("RULE = 2\n")
    assert not run()[1].resumed
