"""Bad inputs through the real `curate` console script: a user error is one line on stderr
and exit code 2; a bad object inside a source is quarantined (file, line, field named) and
the run goes on with exit code 0. Never a traceback: a traceback is a bug."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import pytest

REPO = Path(__file__).resolve().parents[1]
CURATE = Path(sys.executable).with_name("curate")
HEAD = 'workdir = "work"\nstages = ["ingest"]\n[ingest]\n'
SRC = HEAD + 'sources = [{type = "dir", path = "src"}]\n'
GITHUB = HEAD + 'sources = [{type = "github", path = "gh"}]\n'
HF_GLOB = HEAD + 'sources = [{type = "hf", path = "data/*.parquet"}]\n'
API = "https://api.github.com/repos/o/r"


def jsonl(*objects: object) -> str:
    return "".join(json.dumps(o) + "\n" for o in objects)


def issue(number: int, **fields: object) -> dict:
    return {
        "url": f"{API}/issues/{number}",
        "html_url": f"https://github.com/o/r/issues/{number}",
        "number": number,
        "title": f"Issue {number}",
        "body": "The parser crashes on empty input.",
        "user": {"login": "ann", "type": "User"},
        "created_at": "2024-01-02T00:00:00Z",
        "updated_at": "2024-01-02T00:00:00Z",
        **fields,
    }


def comment(number: int, **fields: object) -> dict:
    return {
        "id": 10,
        "issue_url": f"{API}/issues/{number}",
        "body": "I see it too on 2.1.",
        "user": {"login": "bob", "type": "User"},
        "created_at": "2024-01-03T00:00:00Z",
        **fields,
    }


def commit(**fields: object) -> dict:
    sha = "a" * 40
    return {
        "sha": sha,
        "html_url": f"https://github.com/o/r/commit/{sha}",
        "commit": {"message": "Fix overflow in parser", "author": {"date": "2024-01-01T00:00:00Z"}},
        "author": {"login": "ann", "type": "User"},
        **fields,
    }


def parquet(frame: dict) -> Callable[[Path], bytes]:
    def write(path: Path) -> bytes:
        pl.DataFrame(frame).write_parquet(path)
        return path.read_bytes()

    return write


@dataclass
class Case:
    config: str
    files: dict[str, str | bytes | Callable[[Path], bytes]] = field(default_factory=dict)
    args: tuple[str, ...] = ("ingest", "-c", "curate.toml")
    exit_code: int = 2
    error: str | None = None  # what the one error line says (a substring)
    quarantined: tuple[tuple[str, str, str], ...] = ()  # (reason, path, part of the detail)
    skipped: dict[str, int] = field(default_factory=dict)
    records: int | None = None  # rows kept in 01_ingest
    stdout: str | None = None
    setup: Callable[[Path], None] | None = None


CASES = {
    # --- the config file ---
    "config not UTF-8": Case(
        config="",
        files={"curate.toml": b'workdir = "w\xff"\n'},
        error="curate.toml: not UTF-8 (byte 0xff at offset 12)",
    ),
    "config not TOML": Case(config="[ingest\n", error="curate.toml: not valid TOML"),
    "config is a folder": Case(
        config=SRC, args=("ingest", "-c", "."), error=". is a folder; pass the config file"
    ),
    "bad regex in generated_files": Case(
        config=SRC + "generated_files = ['(unclosed']\n",
        error="curate.toml: ingest.generated_files: [0] '(unclosed' is not a regular expression",
    ),
    "unknown language": Case(
        config=SRC + "languages = ['cobol']\n",
        error="curate.toml: ingest.languages: unknown language 'cobol'",
    ),
    "unwritable workdir": Case(
        config=SRC.replace('workdir = "work"', 'workdir = "blocker/work"'),
        files={"blocker": "a file where the workdir's parent should be\n", "src/a.py": "x = 1\n"},
        error="blocker/work': cannot write there",
    ),
    "same source listed twice": Case(
        config=HEAD + 'sources = [{type = "dir", path = "src"}, {type = "dir", path = "./src"}]\n',
        files={"src/a.py": "x = 1\n"},
        error="curate.toml: ingest.sources[1] is ingest.sources[0] again (dir ",
    ),
    "two folders with one name": Case(
        config=HEAD
        + 'sources = [{type = "dir", path = "a/src"}, {type = "dir", path = "b/src"}]'
        + "\n",
        files={"a/src/x.py": "x = 1\n", "b/src/x.py": "x = 2\n"},
        error="ingest.sources[1] and ingest.sources[0] would both name their records 'src'",
    ),
    "missing source folder": Case(config=SRC, error="source folder"),
    "missing GitHub export": Case(config=GITHUB, error="GitHub export"),
    "hf glob matching nothing": Case(config=HF_GLOB, error="no dataset at"),
    "GitHub objects without html_url": Case(
        config=GITHUB,
        files={"gh/issues.jsonl": jsonl({"number": 1, "title": "t", "body": "b"})},
        error="objects carry no html_url; set 'repo'",
    ),
    "unknown --language": Case(
        config="",
        files={"a.py": "x = 1\n"},
        args=("dedup", "scan", "a.py", "--language", "cobol"),
        error="--language: unknown language 'cobol'",
    ),
    "option out of range": Case(
        config="",
        files={"a.py": "x = 1\n"},
        args=("dedup", "scan", "a.py", "--threshold", "2"),
        error="threshold: Input should be less than 1 (got 2.0)",
    ),
    "missing file to scan": Case(
        config="", args=("dedup", "scan", "nope.py"), error="nope.py: no such file or folder"
    ),
    "named pipe to scan": Case(
        config="",
        args=("pii", "scan", "pipe"),
        setup=lambda root: os.mkfifo(root / "pipe"),
        error="pipe: not a regular file or folder",
    ),
    # --- GitHub exports: each bad object quarantined alone, the rest read ---
    "commit author null": Case(
        config=GITHUB,
        files={"gh/commits.jsonl": jsonl(commit(author=None))},
        exit_code=0,
        records=1,
    ),
    "created_at yesterday": Case(
        config=GITHUB,
        files={"gh/issues.jsonl": jsonl(issue(1, created_at="yesterday"), issue(2))},
        exit_code=0,
        records=1,
        quarantined=(("bad_field", "issues.jsonl:1", "created_at: Input should be a valid date"),),
    ),
    "comment id a string": Case(
        config=GITHUB,
        files={
            "gh/issues.jsonl": jsonl(issue(1)),
            "gh/comments.jsonl": jsonl(comment(1, id="ten"), comment(1, id=11)),
        },
        exit_code=0,
        records=1,
        quarantined=(("bad_field", "comments.jsonl:1", "id: Input should be a valid integer"),),
    ),
    "comment that is a string": Case(
        config=GITHUB,
        files={"gh/issues.jsonl": jsonl(issue(1, comments=["+1", comment(1)]))},
        exit_code=0,
        records=1,
        quarantined=(
            ("bad_field", "issues.jsonl:1", "comments[0]: expected an object, got a str"),
        ),
    ),
    "body an object": Case(
        config=GITHUB,
        files={"gh/issues.jsonl": jsonl(issue(1, body={"text": "x"}), issue(2))},
        exit_code=0,
        records=1,
        quarantined=(
            ("bad_field", "issues.jsonl:1", "body: Input should be a valid string (got an obj"),
        ),
    ),
    "labels a number": Case(
        config=GITHUB,
        files={"gh/issues.jsonl": jsonl(issue(1, labels=7))},
        exit_code=0,
        records=0,
        quarantined=(
            ("bad_field", "issues.jsonl:1", "labels: expected a list of labels or a comma-sep"),
        ),
    ),
    "same issue in two files": Case(
        config=GITHUB,
        files={"gh/a.jsonl": jsonl(issue(1)), "gh/b.json": json.dumps([issue(1), issue(2)])},
        exit_code=0,
        records=2,
        skipped={"duplicate_issue": 1},
    ),
    "gh api --paginate pages": Case(
        config=GITHUB,
        files={"gh/issues.json": json.dumps([issue(1), issue(2)]) + json.dumps([issue(3)])},
        exit_code=0,
        records=3,
    ),
    "JSONL in a .json file": Case(
        config=GITHUB, files={"gh/issues.json": jsonl(issue(1), issue(2))}, exit_code=0, records=2
    ),
    "malformed line": Case(
        config=GITHUB,
        files={"gh/issues.jsonl": jsonl(issue(1)) + '{"title": "cut\n' + jsonl(issue(3))},
        exit_code=0,
        records=2,
        quarantined=(("malformed_json", "issues.jsonl:2", "Invalid control character at: line 2"),),
    ),
    "a value that is not an object": Case(
        config=GITHUB,
        files={"gh/issues.jsonl": jsonl(issue(1), "just text")},
        exit_code=0,
        records=1,
        quarantined=(("not_an_object", "issues.jsonl:2", "expected an object, got a string"),),
    ),
    "an object of no known shape": Case(
        config=GITHUB,
        files={"gh/issues.jsonl": jsonl({"event": "labeled"})},
        exit_code=0,
        records=0,
        quarantined=(("unknown_shape", "issues.jsonl:1", "keys of no issue (number, title)"),),
    ),
    # --- Hugging Face datasets ---
    "hf glob over files with different schemas": Case(
        config=HF_GLOB,
        files={
            "data/a.parquet": parquet({"content": ["x = 1\n"], "path": ["a.py"]}),
            "data/b.parquet": parquet({"path": ["b.py"], "stars": [3], "content": ["y = 2\n"]}),
        },
        exit_code=0,
        records=2,
    ),
    "hf integer content": Case(
        config=HF_GLOB,
        files={
            "data/a.parquet": parquet({"content": [1, 2], "path": ["a.py", "b.py"]}),
            "data/b.parquet": parquet({"content": ["x = 1\n"], "path": ["c.py"]}),
        },
        exit_code=0,
        records=1,
        quarantined=(
            ("bad_field", "a.parquet:row 0", "content: expected a string, got Int64"),
            ("bad_field", "a.parquet:row 1", "content: expected a string, got Int64"),
        ),
    ),
    "hf null content": Case(
        config=HF_GLOB,
        files={"data/a.parquet": parquet({"content": ["x = 1\n", None], "path": ["a.py", "b.py"]})},
        exit_code=0,
        records=1,
        quarantined=(("missing_content", "a.parquet:row 1", "content: null"),),
    ),
    "hf corrupt Parquet file": Case(
        config=HF_GLOB,
        files={
            "data/bad.parquet": b"PAR1 not really parquet PAR1",
            "data/good.parquet": parquet({"content": ["x = 1\n"], "path": ["a.py"]}),
        },
        exit_code=0,
        records=1,
        quarantined=(("corrupt_file", "bad.parquet", "ComputeError: parquet: File out of spec"),),
    ),
    "hf file without the mapped column": Case(
        config=HF_GLOB,
        files={
            "data/a.parquet": parquet({"content": ["x = 1\n"], "path": ["a.py"]}),
            "data/b.parquet": parquet({"text": ["y = 2\n"]}),
        },
        exit_code=0,
        records=1,
        quarantined=(("bad_schema", "b.parquet", "has no 'content' column"),),
    ),
    # --- files ---
    "named pipe in a source folder": Case(
        config=SRC,
        files={"src/a.py": "x = 1\n"},
        setup=lambda root: os.mkfifo(root / "src/p.py"),
        exit_code=0,
        records=1,
        quarantined=(("special_file", "p.py", "a named pipe, not a regular file"),),
    ),
    "NUL byte after the first 8 KiB": Case(
        config=SRC,
        files={"src/a.py": "x = 1\n", "src/b.py": b"#" * 9000 + b"\0\n"},
        exit_code=0,
        records=1,
        quarantined=(("binary", "b.py", "NUL byte at offset 9000"),),
    ),
    "folder symlink loop": Case(
        config=SRC,
        files={"src/pkg/a.py": "x = 1\n"},
        setup=lambda root: (root / "src/pkg/loop").symlink_to(".."),
        exit_code=0,
        records=1,
        skipped={"dir_symlink_already_read": 1},
    ),
    "curate init names the table to edit": Case(
        config="",
        args=("init", "new.toml"),
        exit_code=0,
        stdout="wrote new.toml: edit [ingest.sources], then run: curate run -c new.toml",
    ),
}


@pytest.mark.slow  # a process per case, ~3 s each (the CLI imports the Argilla SDK)
@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_bad_input_is_one_line_or_quarantined_never_a_traceback(tmp_path, case):
    if case.config:
        (tmp_path / "curate.toml").write_text(case.config)
    for relative, content in case.files.items():
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if callable(content):
            content(path)
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    if case.setup is not None:
        case.setup(tmp_path)
    done = subprocess.run(
        [str(CURATE), *case.args],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,  # a read that blocks (a named pipe) fails here instead of hanging
    )
    assert "Traceback" not in done.stdout + done.stderr, done.stderr
    assert done.returncode == case.exit_code, done.stderr
    if case.error is not None:
        [line] = done.stderr.strip().splitlines()
        assert line.startswith("error: ") and case.error in line, line
    if case.stdout is not None:
        assert done.stdout.strip() == case.stdout
    if case.records is not None:
        assert pl.read_parquet(tmp_path / "work/01_ingest/*.parquet").height == case.records
    if case.exit_code == 0 and case.args[0] == "ingest":
        quarantine = pl.read_parquet(tmp_path / "work/quarantine.parquet")
        rows = quarantine.select("reason", "path", "detail").rows()
        assert len(rows) == len(case.quarantined), rows
        for (reason, path, detail), expected in zip(rows, case.quarantined, strict=True):
            assert (reason, path) == expected[:2] and expected[2] in detail, rows
        manifest = json.loads((tmp_path / "work/01_ingest.json").read_text())
        assert {k: v for k, v in manifest["skipped"].items() if k in case.skipped} == case.skipped
