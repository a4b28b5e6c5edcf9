"""GitHub exports: bot and auto-generated text dropped with reasons, replies cleaned."""

import json
from pathlib import Path

import pytest
from conftest import ingest

from curation.quarantine import digest

API = "https://api.github.com/repos/o/r"


def user(login: str, kind: str = "User") -> dict:
    return {"login": login, "id": 1, "type": kind}


def issue(number: int, body: str, author: dict, comments: list | None = None, **extra) -> dict:
    return {
        "url": f"{API}/issues/{number}",
        "html_url": f"https://github.com/o/r/issues/{number}",
        "number": number,
        "title": f"Issue {number}",
        "body": body,
        "user": author,
        "state": "open",
        "created_at": f"2024-01-0{number}T00:00:00Z",
        "labels": [],
        "comments": comments if comments is not None else 0,
        **extra,
    }


def comment(number: int, cid: int, body: str, author: dict) -> dict:
    return {
        "id": cid,
        "issue_url": f"{API}/issues/{number}",
        "body": body,
        "user": author,
        "created_at": f"2024-02-01T00:00:{cid:02d}Z",
    }


def export(tmp_path: Path, lines: list, name: str = "export.jsonl") -> Path:
    path = tmp_path / "gh" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    return path.parent


def run(tmp_path: Path, folder: Path):
    return ingest(tmp_path, sources=[{"type": "github", "path": folder}])


@pytest.mark.parametrize(
    ("author", "body", "reason"),
    [
        (user("helper", "Bot"), "Automated report", "bot_author_type"),
        (user("ci-helper[bot]"), "Automated report", "bot_login_suffix"),
        (user("dependabot"), "Bumps x from 1 to 2.", "bot_known_account"),
        (user("Renovate"), "Dependency Dashboard", "bot_known_account"),
        (
            user("maintainer"),
            "This issue has been automatically marked as stale because it "
            "has not had recent activity.",
            "bot_template",
        ),
        (user("maintainer"), "The crash happens when the config is empty.", None),
    ],
)
def test_issue_authors_and_templates_decide_the_drop_reason(tmp_path, author, body, reason):
    records, _, _ = run(tmp_path, export(tmp_path, [issue(1, body, author)]))
    assert records["filter_reason"].to_list() == [reason]
    assert records["kind"].to_list() == ["issue"]


def test_thread_keeps_human_comments_in_order_and_counts_removed_ones(tmp_path):
    comments = [
        comment(1, 3, "Third, by a person.", user("carol")),
        comment(1, 1, "First, by a person.", user("alice")),
        comment(1, 2, "## [Codecov](https://codecov.io) Report", user("codecov[bot]", "Bot")),
        comment(1, 4, "All committers have signed the CLA.", user("bob")),
    ]
    records, manifest, _ = run(tmp_path, export(tmp_path, [issue(1, "Body.", user("a"), comments)]))
    content = records["content"][0]
    assert content.index("First, by a person.") < content.index("Third, by a person.")
    assert "Codecov" not in content and "CLA" not in content
    assert manifest.skipped == {"comment:bot_author_type": 1, "comment:bot_template": 1}
    assert json.loads(records["meta"][0])["comments_kept"] == 2


def test_quoted_email_replies_and_notification_footers_are_stripped(tmp_path):
    reply = (
        "Fixed in the next release.\n\n"
        "On Thu, May 2, 2024 at 10:01 AM Alice <notifications@github.com> wrote:\n"
        "> Can you reproduce this?\n> It fails on Linux.\n\n"
        "—\nReply to this email directly, view it on GitHub, or unsubscribe.\n"
        "You are receiving this because you were mentioned."
    )
    records, _, _ = run(
        tmp_path, export(tmp_path, [issue(1, "x", user("a"), [comment(1, 1, reply, user("b"))])])
    )
    content = records["content"][0]
    assert "Fixed in the next release." in content
    for gone in ("wrote:", "Can you reproduce", "Reply to this email", "receiving this"):
        assert gone not in content


def test_comments_exported_separately_join_their_issue_by_issue_url(tmp_path):
    folder = export(tmp_path, [issue(7, "Body.", user("a"))])
    (folder / "comments.jsonl").write_text(
        json.dumps(comment(7, 1, "A separate comment.", user("b")))
        + "\n"
        + json.dumps(comment(99, 2, "Its issue is not exported.", user("b")))
        + "\n"
    )
    records, _, quarantine = run(tmp_path, folder)
    assert "A separate comment." in records["content"][0]
    assert quarantine["reason"].to_list() == ["comment_without_issue"]


def test_malformed_lines_are_quarantined_and_the_rest_still_read(tmp_path):
    folder = export(
        tmp_path,
        [
            issue(1, "Fine.", user("a")),
            '{"number": 2, "title": "cut',
            "[1, 2]",  # an array is a page of objects: each element is read
            {"something": "else"},
        ],
    )
    records, _, quarantine = run(tmp_path, folder)
    assert records["path"].to_list() == ["issues/1"]
    assert quarantine.select("reason", "path").rows() == [
        ("malformed_json", "export.jsonl:2"),
        ("not_an_object", "export.jsonl:3"),
        ("not_an_object", "export.jsonl:3"),
        ("unknown_shape", "export.jsonl:4"),
    ]
    # no pii stage in this run: the raw line is kept as its hash (see curation.quarantine)
    assert quarantine["raw"][0] == digest('{"number": 2, "title": "cut')


def test_paginated_pages_pretty_arrays_and_jsonl_in_json_are_all_read(tmp_path):
    pages = json.dumps([issue(1, "a", user("a"))]) + json.dumps([issue(2, "b", user("a"))])
    pretty = json.dumps([issue(3, "c", user("a")), issue(4, {"not": "text"}, user("a"))], indent=2)
    lines = json.dumps(issue(5, "e", user("a"))) + "\n" + json.dumps(issue(6, "f", user("a")))
    folder = export(tmp_path, [pages], name="pages.json")
    (folder / "pretty.json").write_text(pretty)
    (folder / "lines.json").write_text(lines)
    records, _, quarantine = run(tmp_path, folder)
    assert sorted(records["path"]) == [f"issues/{n}" for n in (1, 2, 3, 5, 6)]
    [(path, detail)] = quarantine.select("path", "detail").rows()
    line = 1 + pretty[: pretty.index('"number": 4')].rsplit("{", 1)[0].count("\n")
    assert path == f"pretty.json:{line}"
    assert detail == "body: Input should be a valid string (got an object)"


def test_labels_given_as_a_string_are_split_on_commas(tmp_path):
    folder = export(tmp_path, [issue(1, "x", user("a"), labels="bug, ui,")])
    records, _, _ = run(tmp_path, folder)
    assert json.loads(records["meta"][0])["labels"] == ["bug", "ui"]


def test_the_same_issue_in_two_files_is_kept_once_at_its_latest_update(tmp_path):
    old = issue(1, "Old body.", user("a"), [comment(1, 1, "A comment.", user("b"))])
    new = {**old, "body": "New body.", "updated_at": "2024-03-01T00:00:00Z"}
    folder = export(tmp_path, [new], name="a.jsonl")  # read first: the older copy comes after
    export(tmp_path, [{**old, "updated_at": "2024-01-05T00:00:00Z"}], name="b.jsonl")
    records, manifest, _ = run(tmp_path, folder)
    [content] = records["content"].to_list()
    assert "New body." in content and content.count("A comment.") == 1
    assert manifest.skipped == {"duplicate_comment": 1, "duplicate_issue": 1}


def test_comments_of_a_quarantined_issue_say_so(tmp_path):
    folder = export(tmp_path, [issue(7, "Body.", user("a"), created_at="yesterday")])
    (folder / "comments.jsonl").write_text(json.dumps(comment(7, 1, "Me too.", user("b"))))
    _, _, quarantine = run(tmp_path, folder)
    assert quarantine.select("reason", "detail").rows()[1] == (
        "comment_without_issue",
        "its issue object is quarantined",
    )


def commit(sha: str, message: str, author: dict | None) -> dict:
    return {
        "sha": sha,
        "html_url": f"https://github.com/o/r/commit/{sha}",
        "commit": {"message": message, "author": {"name": "x", "date": "2024-01-01T00:00:00Z"}},
        "author": author,
    }


def test_commits_drop_tool_written_messages_and_strip_trailers(tmp_path):
    folder = export(
        tmp_path,
        [
            commit(
                "a" * 40,
                "Fix overflow in parser\n\nSigned-off-by: Ann <ann@example.com>",
                user("ann"),
            ),
            commit("b" * 40, "Merge pull request #3 from ann/fix", user("ann")),
            commit("c" * 40, "Bump lodash from 4.17.20 to 4.17.21", None),
            commit("d" * 40, "Update docs", user("github-actions[bot]", "Bot")),
        ],
    )
    records, _, _ = run(tmp_path, folder)
    rows = {row["commit_sha"][0]: row for row in records.iter_rows(named=True)}
    assert rows["a"]["content"] == "Fix overflow in parser"
    assert rows["a"]["filter_reason"] is None and rows["a"]["kind"] == "commit"
    assert rows["b"]["filter_reason"] == "auto_generated"
    assert rows["c"]["filter_reason"] == "auto_generated"
    assert rows["d"]["filter_reason"] == "bot_author_type"


def test_commits_whose_author_has_no_account_are_kept(tmp_path):
    # `author` is null when the commit's e-mail is linked to no account: here for every row
    folder = export(
        tmp_path, [commit("a" * 40, "Fix parser", None), commit("b" * 40, "Docs", None)]
    )
    records, _, quarantine = run(tmp_path, folder)
    assert records.select("commit_sha", "filter_reason").rows() == [
        ("a" * 40, None),
        ("b" * 40, None),
    ]
    assert quarantine.height == 0


def test_sample_export_drops_the_planted_bots(sample, tmp_path):
    records, manifest, _ = run(tmp_path, sample / "github" / "acme-billing")
    reasons = dict(zip(records["path"], records["filter_reason"], strict=True))
    assert reasons["issues/14"] == "bot_author_type"  # dependabot[bot]
    assert reasons["issues/16"] == "bot_known_account"  # renovate
    assert reasons["issues/12"] is None
    assert manifest.quarantined == {"malformed_json": 1}
