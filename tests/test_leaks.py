"""Nothing unredacted after the pii stage: values planted in code, comments, issue text,
comments on issues, commit messages, a folder name and a malformed export line must not
appear in any file of the workdir except 01_ingest and 02_filters, which keep the raw
input by design."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import polars as pl
from conftest import write_tree

from codecurate.config import parse_config
from codecurate.pipeline import run_pipeline

# Each value is one kind of PII, planted once or more below.
PLANTED = {
    "email in code": "ines.moreau@datalab-mail.fr",
    "key id in code": "AKIAQWERTYUIOPASDF12",
    "password in code": "Zq8#vLm2!Rt7",
    "name in a comment": "Ingrid Halvorsen",
    "email in issue": "tomas.vidal@correo-norte.es",
    "key id in issue": "AKIAZXCVBNMASDFGHJ34",
    "secret after its key id": "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",
    "phone in a comment": "+44 20 7946 0958",
    "email in a commit": "lena.park@mailbox-east.org",
    "email as a folder": "ravi.menon@consult-west.in",
    "token in a malformed line": "ghp_Zx8Lm2Qw9Er4Ty6Ui1Op3As5Df7Gh0Jk2Lz4X",
    "email in a malformed line": "omar.haddad@bureau-sud.fr",
}

CODE = '''"""Sync invoices to the ledger service.

Maintained by Ingrid Halvorsen <ines.moreau@datalab-mail.fr>.
"""

AWS_KEY = "AKIAQWERTYUIOPASDF12"
DB_PASSWORD = "Zq8#vLm2!Rt7"


def sync(batch):
    """Send one batch of invoices and return how many were accepted."""
    return len([invoice for invoice in batch if invoice.total > 0])
'''

ISSUE = {
    "url": "https://api.github.com/repos/acme/ledger/issues/3",
    "html_url": "https://github.com/acme/ledger/issues/3",
    "number": 3,
    "title": "Upload fails with 403",
    "body": "Uploading fails with 403. My AWS key AKIAZXCVBNMASDFGHJ34 / "
    "q8Zr3vT0aWx9Lm2Kp4Yb7Nc1Dg6Hf5Js0Ru8oT3x got rejected; write to me at "
    "tomas.vidal@correo-norte.es if you need the logs.",
    "user": {"login": "tvidal", "type": "User"},
    "created_at": "2024-03-01T10:00:00Z",
    "comments": [
        {
            "id": 11,
            "body": "Same here, call me on +44 20 7946 0958 and we can debug it together.",
            "user": {"login": "ihalvorsen", "type": "User"},
            "created_at": "2024-03-02T10:00:00Z",
        }
    ],
}
COMMIT = {
    "sha": "9f1c2e3d4b5a69788796a5b4c3d2e1f0a9b8c7d6",
    "html_url": "https://github.com/acme/ledger/commit/9f1c2e3d4b5a69788796a5b4c3d2e1f0a9b8c7d6",
    "commit": {
        "message": "Fix the retry loop of the uploader\n\nReported by lena.park@mailbox-east.org.",
        "author": {"date": "2024-03-03T10:00:00Z"},
    },
    "author": {"login": "lpark", "type": "User"},
}
MALFORMED = (
    '{"number": 4, "title": "token ghp_Zx8Lm2Qw9Er4Ty6Ui1Op3As5Df7Gh0Jk2Lz4X leaked", '
    '"body": "mail omar.haddad@bureau-sud.fr'
)


def workdir_texts(workdir: Path) -> dict[str, str]:
    """Every file of the workdir as text: Parquet decoded, SQLite tables dumped."""
    texts = {}
    for path in sorted(p for p in workdir.rglob("*") if p.is_file()):
        name = path.relative_to(workdir).as_posix()
        if path.suffix == ".parquet":
            frame = pl.read_parquet(path)
            texts[name] = json.dumps(frame.to_dicts(), default=str, ensure_ascii=False)
        elif path.suffix == ".sqlite":
            with sqlite3.connect(path) as db:
                tables = [
                    row[0]
                    for row in db.execute("select name from sqlite_master where type = 'table'")
                ]
                rows = [db.execute(f"select * from {t}").fetchall() for t in tables]
            texts[name] = json.dumps(rows, default=str, ensure_ascii=False)
        else:
            texts[name] = path.read_bytes().decode("utf-8", errors="replace")
    return texts


def test_no_planted_value_leaves_the_pii_stage(tmp_path):
    repo = write_tree(
        tmp_path / "repo",
        {"ledger/sync.py": CODE, "people/ravi.menon@consult-west.in/notes.py": CODE + "\n# v2\n"},
    )
    export = tmp_path / "gh"
    export.mkdir()
    (export / "issues.jsonl").write_text(json.dumps(ISSUE) + "\n" + MALFORMED + "\n")
    (export / "commits.jsonl").write_text(json.dumps(COMMIT) + "\n")
    config = parse_config(
        {
            "workdir": str(tmp_path / "work"),
            "stages": ["ingest", "filters", "pii", "dedup", "annotate"],
            "ingest": {"sources": [{"type": "dir", "path": str(repo)},
                                   {"type": "github", "path": str(export)}]},
            "pii": {"workers": 1},
            "annotate": {"provider": "offline",
                         "tasks": ["instruction_for_code", "qa_from_issue"]},
        },
        tmp_path / "curate.toml",
    )  # fmt: skip
    run_pipeline(config)
    texts = workdir_texts(tmp_path / "work")
    # the stages before pii hold the raw input: their parts, and their parts' store
    raw_input = {name for name in texts if name.removeprefix(".parts/").startswith(
        ("01_ingest/", "02_filters/"))}  # fmt: skip
    assert {"01_ingest/part-00000.parquet", "02_filters/part-00000.parquet"} <= raw_input
    assert "ravi.menon@consult-west.in" in texts["01_ingest/part-00000.parquet"]  # planted, read
    leaks = {
        (what, name)
        for name, text in texts.items()
        if name not in raw_input
        for what, value in PLANTED.items()
        if value in text
    }
    assert leaks == set()
