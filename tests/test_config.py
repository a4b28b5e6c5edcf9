"""curate.toml: validated on load, errors name the key, paths relative to the file."""

from pathlib import Path

import pytest

from codecurate.config import load_config, template
from curation import ConfigError

MINIMAL = '[ingest]\nsources = [{type = "dir", path = "src"}]\n'


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "curate.toml"
    path.write_text(text)
    return path


def test_the_init_template_is_a_valid_config(tmp_path):
    config = load_config(write(tmp_path, template()))
    assert config.stages == ["ingest", "filters", "pii", "dedup", "annotate"]
    assert config.ingest.sources[0].path == (tmp_path / "src").resolve()


def test_relative_paths_are_relative_to_the_config_file(tmp_path):
    config = load_config(write(tmp_path, 'workdir = "out"\n' + MINIMAL))
    assert config.workdir == (tmp_path / "out").resolve()


def test_a_local_git_clone_is_relative_to_the_config_file_and_a_url_stays(tmp_path, monkeypatch):
    (tmp_path / "repos" / "lib" / ".git").mkdir(parents=True)
    path = write(tmp_path, '[ingest]\nsources = [{type = "git", url = "repos/lib"}, '
                           '{type = "git", url = "https://example.org/lib.git"}]\n')  # fmt: skip
    monkeypatch.chdir(tmp_path / "repos")  # not where the config is
    local, remote = load_config(path).ingest.sources
    assert local.url == str((tmp_path / "repos" / "lib").resolve())
    assert remote.url == "https://example.org/lib.git"


def test_path_fields_of_every_stage_table_are_relative_to_the_config_file(tmp_path):
    tables = (
        '[dedup]\nagainst = ["idx/a.parquet"]\nwrite_index = "idx/b.parquet"\n'
        '[annotate]\nledger = "ledger.sqlite"\n[review]\ngold = "gold.jsonl"\n'
    )
    config = load_config(write(tmp_path, MINIMAL + tables))
    base = tmp_path.resolve()
    assert config.dedup.against == [base / "idx" / "a.parquet"]
    assert config.dedup.write_index == base / "idx" / "b.parquet"
    assert config.annotate.ledger == base / "ledger.sqlite"
    assert config.review.gold == base / "gold.jsonl"


def test_an_unknown_stage_is_named_with_the_stages_there_are(tmp_path):
    with pytest.raises(ConfigError, match=r"stages: unknown stage 'verfy'; stages are: ingest"):
        load_config(write(tmp_path, 'stages = ["ingest", "verfy"]\n' + MINIMAL))


def test_indexes_and_fixtures_are_relative_to_the_config_file(tmp_path):
    text = MINIMAL + (
        '[dedup]\nagainst = ["idx/humaneval.parquet"]\nwrite_index = "idx/run.parquet"\n'
        '[verify]\nsql_fixture = "fx/schema.sql"\ncypher_fixture = "fx/graph.cypher"\n'
    )
    config = load_config(write(tmp_path, text))
    base = tmp_path.resolve()
    assert config.dedup.against == [base / "idx" / "humaneval.parquet"]
    assert config.dedup.write_index == base / "idx" / "run.parquet"
    assert (config.verify.sql_fixture, config.verify.cypher_fixture) == (
        base / "fx" / "schema.sql",
        base / "fx" / "graph.cypher",
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            MINIMAL + "[filters]\nmax_line_length = 'long'\n",
            r"filters\.max_line_length: .*integer.*'long'",
        ),
        (
            MINIMAL + "[filters]\nmax_line_length = 0\n",
            r"filters\.max_line_length: .*greater than 0",
        ),
        (MINIMAL + "[filters]\nmax_line_lenght = 10\n", r"filters\.max_line_lenght: Extra inputs"),
        (
            '[ingest]\nsources = [{type = "svn", path = "x"}]\n',
            r"ingest\.sources\[0\]: .*'dir', 'git'",
        ),
        ('[ingest]\nsources = [{type = "dir"}]\n', r"ingest\.sources\[0\]\.path: Field required"),
        ("[ingest]\nsources = []\n", r"ingest\.sources: .*at least 1"),
        (
            '[ingest]\nsources = [{type = "git", url = "x", pth = "y"}]\n',
            r"ingest\.sources\[0\]\.pth",
        ),
        ('stages = ["filters"]\n' + MINIMAL, "first stage must be 'ingest'"),
        ("workdir = 'w'\n", r"ingest: Field required"),
        (MINIMAL.replace("]\n", "]\nlanguages = ['klingon']\n", 1), "unknown language 'klingon'"),
    ],
)
def test_errors_name_the_key_and_the_expected_value(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, text))


def test_invalid_toml_and_missing_file_are_clear(tmp_path):
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "[ingest\n"))
    with pytest.raises(ConfigError, match="curate init"):
        load_config(tmp_path / "nope.toml")
