"""The `curate` command line: every command has help with an example; errors are one line."""

import shutil

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from codecurate.cli import app

runner = CliRunner()


def all_commands(group=None, prefix=()):
    group = group or get_command(app)
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            yield from all_commands(command, (*prefix, name))
        else:
            yield (*prefix, name)


@pytest.mark.parametrize("command", list(all_commands()), ids=" ".join)
def test_every_command_has_help_with_an_example(command):
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Example:" in result.output


def test_init_writes_a_config_and_refuses_to_overwrite(tmp_path):
    path = tmp_path / "curate.toml"
    assert runner.invoke(app, ["init", str(path)]).exit_code == 0
    assert "[ingest]" in path.read_text()
    result = runner.invoke(app, ["init", str(path)])
    assert result.exit_code == 2 and "--force" in result.output


def test_run_then_status_on_the_sample_corpus(sample, tmp_path):
    shutil.copytree(sample, tmp_path / "sample")
    config = tmp_path / "curate.toml"
    text = (sample.parent.parent / "curate.toml").read_text()
    config.write_text(
        text.replace('workdir = "data/work"', 'workdir = "work"').replace("data/sample/", "sample/")
    )
    result = runner.invoke(app, ["run", "-c", str(config)])
    assert result.exit_code == 0, result.output
    for expected in ("01_ingest", "02_filters", "exact_duplicate", "too_large", "bot_author_type"):
        assert expected in result.output
    status = runner.invoke(app, ["status", "-c", str(config)])
    assert (
        status.exit_code == 0 and "resumed" not in status.output and "02_filters" in status.output
    )
    again = runner.invoke(app, ["run", "-c", str(config)])
    assert again.output.count("resumed") == 2


def test_config_errors_are_one_line_with_exit_code_2(tmp_path):
    config = tmp_path / "curate.toml"
    config.write_text(
        '[ingest]\nsources = [{type = "dir", path = "x"}]\n[filters]\nmin_chars = -1\n'
    )
    result = runner.invoke(app, ["run", "-c", str(config)])
    assert result.exit_code == 2
    assert "filters.min_chars" in result.output and "Traceback" not in result.output
