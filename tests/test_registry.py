"""Stages register themselves: a stage added through the registry alone gets its own
`curate.toml` table, takes its place in `stages` and runs in the pipeline."""

from pathlib import Path
from typing import ClassVar

import polars as pl
import pytest
from pydantic import BaseModel, ConfigDict
from typer.testing import CliRunner

from codecurate import stages as registry
from codecurate.cli import app
from codecurate.config import load_config
from codecurate.lineage import lineage
from codecurate.pipeline import run_pipeline
from codecurate.report import write_run_report
from curation import ConfigError, Manifest, Stage, stage_frame
from curation.story import Story, StoryContext, StoryTable


class SignConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    signature: str = "# signed"


class SignStage(Stage):
    """Writes each record's content with a signature line as its clean content."""

    name: ClassVar[str] = "sign"

    def __init__(self, config: SignConfig, workdir: Path) -> None:
        self.config = config
        self.workdir = workdir

    def run(self, records, ctx):
        ctx.extra["signed"] = records.select(pl.len()).collect().item()
        return records.with_columns(content_clean=pl.col("content") + f"{self.config.signature}\n")


def sign_story(manifest: Manifest, ctx: StoryContext) -> Story:
    """The toy stage's own story, read from its own manifest."""
    signed = manifest.extra["signed"]
    return Story(
        settings=f"every record signed with {manifest.config['signature']!r}",
        text=f"{signed} records signed.",
        tables=(StoryTable("signatures", ("signature", "records"),
                           [(manifest.config["signature"], signed)]),),
        lineage={"signatures": [manifest.config["signature"]]},
    )  # fmt: skip


@pytest.fixture
def sign_registered(monkeypatch):
    monkeypatch.setattr(registry, "REGISTRY", dict(registry.REGISTRY))
    registry.register(
        registry.StageEntry("sign", f"{__name__}:SignStage", f"{__name__}:SignConfig",
                            position=25, takes=("workdir",), story=f"{__name__}:sign_story")
    )  # fmt: skip


def write_config(tmp_path: Path, stages: str, table: str = "") -> Path:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "tool.py").write_text('def tool():\n    return "a tool"\n')
    path = tmp_path / "curate.toml"
    source = '[ingest]\nsources = [{type = "dir", path = "src"}]\n'
    path.write_text(f'workdir = "work"\nstages = {stages}\n{source}{table}')
    return path


def test_a_registered_stage_reads_its_own_table_and_runs_in_its_place(tmp_path, sign_registered):
    config = load_config(
        write_config(tmp_path, '["ingest", "filters", "sign"]', '[sign]\nsignature = "# ok"\n')
    )
    manifests = run_pipeline(config)
    assert [m.tag for m in manifests] == ["01_ingest", "02_filters", "03_sign"]
    out = pl.read_parquet(tmp_path / "work" / "03_sign" / "*.parquet")
    assert out["content_clean"].to_list() == ['def tool():\n    return "a tool"\n# ok\n']


def test_a_registered_stage_tells_its_story_in_status_the_report_and_the_lineage(
    tmp_path, sign_registered
):
    path = write_config(tmp_path, '["ingest", "filters", "sign"]', '[sign]\nsignature = "# ok"\n')
    config = load_config(path)
    manifests = run_pipeline(config)

    status = CliRunner().invoke(app, ["status", "-c", str(path)], terminal_width=200)
    assert status.exit_code == 0, status.output
    assert "03_sign: signatures" in status.output and "# ok" in status.output

    page = write_run_report(config, path).read_text()
    assert "<h2>03_sign</h2><p>1 records signed.</p><h3>signatures</h3>" in page

    records = (
        stage_frame(tmp_path / "work" / "03_sign")
        .collect()
        .with_columns(annotator=pl.lit(None, pl.String))
    )
    run = lineage(records, manifests, StoryContext(tmp_path / "work", tmp_path))
    assert run["signatures"] == ["# ok"]
    assert run["settings"][-1] == {"stage": "sign", "text": "every record signed with '# ok'"}
    assert run["inputs"] == [{"type": "dir", "location": "src"}]  # ingest's own entry


def test_a_stage_without_a_story_is_told_by_its_settings(tmp_path, monkeypatch):
    monkeypatch.setattr(registry, "REGISTRY", dict(registry.REGISTRY))
    registry.register(
        registry.StageEntry("sign", f"{__name__}:SignStage", f"{__name__}:SignConfig",
                            position=25, takes=("workdir",))
    )  # fmt: skip
    config = load_config(write_config(tmp_path, '["ingest", "sign"]'))
    [_, sign] = run_pipeline(config)
    told = registry.story_of(sign, StoryContext(tmp_path / "work", tmp_path))
    assert (told.settings, told.tables, told.lineage) == ("signature = # signed", (), {})


def test_a_registered_stages_table_is_validated_by_its_config_model(tmp_path, sign_registered):
    path = write_config(tmp_path, '["ingest", "sign"]', '[sign]\nsignatur = "x"\n')
    with pytest.raises(ConfigError, match=r"sign\.signatur: Extra inputs"):
        load_config(path)


def test_a_registered_stage_keeps_its_position_in_stages(tmp_path, sign_registered):
    path = write_config(tmp_path, '["ingest", "sign", "filters"]')
    with pytest.raises(ConfigError, match="in this order: ingest, filters, sign, pii"):
        load_config(path)


def test_a_stage_nobody_registered_is_unknown(tmp_path):
    path = write_config(tmp_path, '["ingest", "sign"]')
    with pytest.raises(ConfigError, match=r"stages: unknown stage 'sign'; stages are: ingest, "):
        load_config(path)


def test_a_stage_cannot_take_a_position_another_holds(monkeypatch):
    monkeypatch.setattr(registry, "REGISTRY", dict(registry.REGISTRY))
    entry = registry.StageEntry("late", f"{__name__}:SignStage", f"{__name__}:SignConfig", 20)
    with pytest.raises(ConfigError, match="position 20 is 'filters'"):
        registry.register(entry)


def test_a_stage_may_take_only_known_run_settings(monkeypatch):
    monkeypatch.setattr(registry, "REGISTRY", dict(registry.REGISTRY))
    entry = registry.StageEntry("late", f"{__name__}:SignStage", f"{__name__}:SignConfig", 99,
                                takes=("cache",))  # fmt: skip
    with pytest.raises(ConfigError, match="takes 'cache'; run settings are: workdir"):
        registry.register(entry)


def test_the_default_stages_are_the_registered_defaults_in_order():
    assert [e.name for e in registry.registered() if e.default] == [
        "ingest", "filters", "pii", "dedup", "annotate",
    ]  # fmt: skip
