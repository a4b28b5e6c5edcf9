"""Files and stdin outside a pipeline run (`curate pii scan/redact`, `curate dedup scan`): the
language comes from `--language`, the file name, the `#!` line or the content, as in ingest."""

import hashlib
import io
import json
import os

import pytest
from typer.testing import CliRunner

from codecurate.cli import app
from curation import ConfigError, SourceError
from curation.sources.paths import read_inputs

FUNCTION = "def total(items):\n    return sum(item.price for item in items)\n"


def languages(paths, language=None):
    return {name.rsplit("/", 1)[-1]: found for name, _, found in read_inputs(paths, language)}


def test_stdin_gets_its_language_from_its_content(monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("scp build.tar.gz deploy@203.0.113.7:/srv/app\n"))
    assert languages(["-"]) == {"<stdin>": "shell"}


def test_files_get_their_language_from_name_shebang_or_content(tmp_path):
    (tmp_path / "tool").write_text("#!/bin/sh\necho hi\n")
    (tmp_path / "snippet").write_text(FUNCTION)
    (tmp_path / "notes.md").write_text("We should cache the totals. Ann agreed on Monday.\n")
    (tmp_path / "ring.h").write_text("namespace io {\ntemplate <class T> class Ring;\n}\n")
    assert languages([str(tmp_path)]) == {
        "notes.md": None,
        "ring.h": "cpp",
        "snippet": "python",
        "tool": "shell",
    }


def test_the_language_option_applies_to_every_input(tmp_path):
    (tmp_path / "a.py").write_text(FUNCTION)
    (tmp_path / "b.txt").write_text("Some prose.\n")
    assert languages([str(tmp_path)], "Python") == {"a.py": "python", "b.txt": "python"}
    assert languages([str(tmp_path)], "prose") == {"a.py": None, "b.txt": None}


def test_bad_arguments_fail_before_anything_is_read(tmp_path):
    os.mkfifo(tmp_path / "pipe")  # reading it would block
    with pytest.raises(ConfigError, match=r"--language: unknown language 'cobol'.*or prose"):
        read_inputs([str(tmp_path / "pipe")], "cobol")
    with pytest.raises(SourceError, match="pipe: not a regular file or folder"):
        read_inputs([str(tmp_path / "pipe")])
    with pytest.raises(SourceError, match="nope: no such file or folder"):
        read_inputs(["-", str(tmp_path / "nope")])


def test_dedup_scan_strips_comments_by_each_input_language(tmp_path):
    body = "".join(f"def f{i}(x):\n    return x * {i} + {i * 7}\n" for i in range(30))
    for name in ("a", "b"):  # the same code under two long, different comment headers
        header = "".join(f"# {name} {hashlib.sha1(f'{name}{i}'.encode()).hexdigest()}\n"
                         for i in range(60))  # fmt: skip
        (tmp_path / name).write_text(header + body)
    scan = ["dedup", "scan", str(tmp_path), "--json", "--strip-comments"]
    result = CliRunner().invoke(app, scan)
    assert result.exit_code == 0, result.output
    [cluster] = json.loads(result.output)  # their content says Python: `#` starts comments
    assert [m["path"].rsplit("/", 1)[1] for m in cluster] == ["a", "b"]
    as_prose = CliRunner().invoke(app, [*scan, "--language", "prose"])
    assert json.loads(as_prose.output) == []
