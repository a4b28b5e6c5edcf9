"""The bot filter: accounts, login patterns, templates outside quotes and code, thread filters."""

import json
from pathlib import Path

import polars as pl
import pytest
from conftest import ingest

from curation.sources.bots import bot_reason

SHA = "3d5c478a07c7acf1f4e35cd6cb36f6631dd8b0bb"
STALE = (
    "This issue has been automatically marked as stale because it has not had recent "
    "activity. It will be closed if no further activity occurs."
)


def reason_of(login: str, body: str, author_type: str | None = None) -> str | None:
    frame = pl.DataFrame(
        {"login": [login], "author_type": [author_type], "body": [body]},
        schema={"login": pl.String, "author_type": pl.String, "body": pl.String},
    )
    expr = bot_reason(pl.col("login"), pl.col("author_type"), pl.col("body"))
    return frame.select(expr)[0, 0]


@pytest.mark.parametrize(
    ("login", "body", "reason"),
    [
        ("helper", "Build finished.", "bot_author_type"),
        ("vercel[bot]", "Preview ready.", "bot_login_suffix"),
        ("codecov-io", "Coverage is 91%.", "bot_known_account"),
        ("ConfluentCLABot", "Please sign.", "bot_login_pattern"),
        ("x-clabot", "Please sign.", "bot_login_pattern"),
        ("AmplabJenkins", "Test PASSed.", "bot_login_pattern"),
        ("talbot", "I fixed the parser.", None),
        ("alice", "The crash happens when the config is empty.", None),
    ],
)
def test_accounts_and_login_patterns_decide_the_reason(login, body, reason):
    author_type = "Bot" if login == "helper" else "User"
    assert reason_of(login, body, author_type) == reason


@pytest.mark.parametrize(
    "body",
    [
        f"Deploy preview ready!\n\nBuilt with commit {SHA}\n\nhttps://deploy-preview-4--site.netlify.app",
        "**The latest updates on your projects**. Learn more about [Vercel for Git ↗︎]"
        "(https://vercel.link/github-learn-more)\n\n| Name | Status |\n| :--- | :--- |\n"
        "| **web** | ✅ Ready |",
        "A stale label has been added to this issue, because it has been open for 30 days with "
        "no activity. If you think this issue should remain open, please add a new comment.",
        "Kudos, SonarCloud Quality Gate passed!\n\n[0 Bugs](https://sonarcloud.io/project/issues)"
        "  \n[0 Code Smells](https://sonarcloud.io/project/issues)",
        STALE,
    ],
    ids=["netlify-preview", "vercel-preview", "stale-label", "sonarcloud", "stale"],
)
def test_tool_text_posted_through_a_persons_account_is_a_template(body):
    assert reason_of("maintainer", body) == "bot_template"


def test_a_review_quoting_a_stale_yml_diff_is_kept():
    review = (
        ".github/stale.yml:31\n```diff\n markComment: >\n"
        "-  This issue has been automatically marked as stale because it has not had\n"
        "+  This issue has been automatically marked as stale because it had no\n```\n"
        "Can you please make it *has no*?"
    )
    assert reason_of("rthadur", review) is None


def test_a_person_quoting_a_bot_or_pasting_ci_output_in_code_is_kept():
    quoting = f"> {STALE}\n\nIt is not stale: the crash still happens on 2.3."
    pasting = (
        "The build fails on Linux:\n\n```\nTest build #41314 has finished for PR 8336\n"
        " * This patch fails Spark unit tests.\n```\nIt passes locally, any idea?"
    )
    assert reason_of("bob", quoting) is None
    assert reason_of("bob", pasting) is None


def test_a_template_is_dropped_only_when_it_is_most_of_the_prose():
    mostly_own_words = "Thanks for the review! I reworded the docs section you mentioned.\n\n"
    assert reason_of("erin", mostly_own_words + "Deploy preview ready!") is None
    assert reason_of("erin", "Thanks!\n\nDeploy preview ready! The site is up.") == "bot_template"


def issue(number: int, body: str, login: str, comments: list) -> dict:
    return {
        "url": f"https://api.github.com/repos/o/r/issues/{number}",
        "html_url": f"https://github.com/o/r/issues/{number}",
        "number": number,
        "title": f"Issue {number}",
        "body": body,
        "user": {"login": login, "type": "User"},
        "created_at": "2024-01-01T00:00:00Z",
        "comments": [comment(i, author, text) for i, (author, text) in enumerate(comments, 1)],
    }


def comment(cid: int, login: str, body: str) -> dict:
    return {
        "id": cid,
        "body": body,
        "user": {"login": login, "type": "User"},
        "created_at": f"2024-02-01T00:00:{cid:02d}Z",
    }


def run(tmp_path: Path, issues: list[dict], **options: object):
    path = tmp_path / "gh" / "issues.jsonl"
    path.parent.mkdir(parents=True)
    path.write_text("".join(json.dumps(obj) + "\n" for obj in issues))
    return ingest(tmp_path, sources=[{"type": "github", "path": path.parent, **options}])


def test_thread_keeps_the_review_and_removes_bot_text_whoever_posted_it(tmp_path):
    review = "```diff\n-  " + STALE + "\n```\nmaybe `past 2 years`?"
    comments = [("rongrong", review), ("maintainer", STALE), ("x-clabot", "Please sign the CLA.")]
    records, manifest, _ = run(tmp_path, [issue(1, "Improve the stale message.", "a", comments)])
    assert "maybe `past 2 years`?" in records["content"][0]
    assert manifest.skipped == {"comment:bot_template": 1, "comment:bot_login_pattern": 1}


def test_an_issue_opened_by_pasting_a_bots_comment_is_dropped(tmp_path):
    pasted = (
        "A stale label has been added to this issue, because it has been open for 30 days with "
        "no activity.\n\n_Originally posted by @github-actions[bot] in "
        "https://github.com/o/other/issues/7#issuecomment-1_"
    )
    records, _, _ = run(tmp_path, [issue(1, pasted, "someone", [])])
    assert records["filter_reason"].to_list() == ["bot_template"]


def test_issue_level_filters_are_off_by_default_and_give_their_reasons(tmp_path):
    short = issue(1, "Typo in README.", "a", [])
    monologue = issue(2, "x" * 300, "a", [("a", "More logs."), ("a", "Even more logs.")])
    dialogue = issue(3, "x" * 300, "a", [("b", "Which version?"), ("a", "2.3, on Linux.")])
    threads = [short, monologue, dialogue]
    default, _, _ = run(tmp_path / "default", threads)
    assert default["filter_reason"].to_list() == [None, None, None]

    options = {"min_thread_chars": 200, "single_participant_max_events": 2}
    filtered, _, _ = run(tmp_path / "bigcode", threads, **options)
    reasons = dict(zip(filtered["path"], filtered["filter_reason"], strict=True))
    assert reasons == {
        "issues/1": "thread_too_short",
        "issues/2": "single_participant_too_long",
        "issues/3": None,
    }
