"""The review loop against the real argilla-server, started locally by `LocalArgilla` (its
own virtualenv, SQLite, a real Redis, codecurate's database search engine); annotators
submit over REST as they would from the web UI."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import argilla as rg
import httpx
import polars as pl
import pytest

from annotators.quality import quality_flags
from argilla_setup.local import LocalArgilla, free_port
from argilla_setup.review import FLAG_LABELS, Vote, ensure_dataset, final_record, pull, push
from argilla_setup.users import Roster, apply_roster
from curation.sources.common import finish_records

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalArgilla, str]]:
    local = LocalArgilla(tmp_path_factory.mktemp("argilla"), port=free_port())
    state = local.up()
    try:
        yield local, state.url
    finally:
        local.down()


@pytest.fixture(scope="module")
def client(server: tuple[LocalArgilla, str]) -> rg.Argilla:
    local, url = server
    return rg.Argilla(api_url=url, api_key=local.owner_credentials()["api_key"])


def annotated(n: int) -> pl.DataFrame:
    rows = [{"kind": "code", "source": "repo", "path": f"src/m{i}.py", "language": "python",
             "content": f"def f{i}(x):\n    return x + {i}\n"} for i in range(n)]  # fmt: skip
    frame = finish_records(rows)
    return frame.with_columns(
        content_clean=pl.col("content"),
        instruction=pl.format("Write a function f{} that adds a constant.", pl.int_range(n)),
        task=pl.lit("instruction_for_code"),
        annotator=pl.lit("openai:gpt-4o-mini"),
        quality_flags=pl.lit(["too_short"], dtype=pl.List(pl.String)),
        cost_usd=pl.lit(0.0001),
    )


def login(url: str, username: str, password: str) -> httpx.Client:
    token = httpx.post(f"{url}/api/v1/token", data={"username": username, "password": password})
    token.raise_for_status()
    return httpx.Client(
        base_url=url, headers={"Authorization": f"Bearer {token.json()['access_token']}"}
    )


def submit(
    session: httpx.Client, record_id: object, values: dict, status: str = "submitted"
) -> None:
    body = {"values": {k: {"value": v} for k, v in values.items()}, "status": status}
    session.post(f"/api/v1/records/{record_id}/responses", json=body).raise_for_status()


def test_the_local_server_is_the_real_argilla_with_our_search_engine(server):
    _, url = server
    status = httpx.get(f"{url}/api/v1/status").json()
    assert status["version"] == "2.8.0" and status["search_engine"]["engine"] == "codecurate-sql"


def test_push_review_and_pull(server, client, tmp_path, monkeypatch):
    _, url = server
    monkeypatch.setenv("ALICE_PASSWORD", "alice-secret-1")
    monkeypatch.setenv("BOB_PASSWORD", "bob-secret-12")
    roster = Roster.model_validate({"workspaces": ["review"], "users": [
        {"username": "alice", "workspaces": ["review"], "password_env": "ALICE_PASSWORD"},
        {"username": "bob", "workspaces": ["review"], "password_env": "BOB_PASSWORD"},
    ]})  # fmt: skip
    changes = apply_roster(client, roster, tmp_path)
    assert "user alice (annotator) created" in changes
    assert apply_roster(client, roster, tmp_path) == []  # applying again changes nothing

    records = annotated(6)
    dataset = ensure_dataset(client, "pairs", "review", min_submitted=2)
    state = tmp_path / "pushed.json"
    assert push(dataset, records, state, batch_size=4).sent == 6
    assert push(dataset, records, state).sent == 0  # nothing changed, nothing sent
    changed = records.with_columns(
        instruction=pl.when(pl.col("path") == "src/m0.py")
        .then(pl.lit("Write f0, which adds zero."))
        .otherwise("instruction")
    )
    assert push(dataset, changed, state).sent == 1
    pushed = list(dataset.records(with_suggestions=True))
    assert len(pushed) == 6  # a re-push updates, never duplicates
    by_path = {r.metadata["source"] + r.fields["context"]: r for r in pushed}
    assert len(by_path) == 6
    suggestion = pushed[0].suggestions["corrected_instruction"]
    assert suggestion.agent == "openai:gpt-4o-mini"

    server_ids = {str(r.id): r._server_id for r in pushed}
    ids = changed.sort("path")["id"].to_list()
    alice, bob = login(url, "alice", "alice-secret-1"), login(url, "bob", "bob-secret-12")
    submit(alice, server_ids[ids[0]], {"quality": "good"})
    fix = {"quality": "needs_fix", "corrected_instruction": "Write f1 adding one."}
    submit(alice, server_ids[ids[1]], fix)
    submit(bob, server_ids[ids[1]], fix)
    submit(alice, server_ids[ids[2]], {"quality": "reject", "issues": ["not_code"]})
    submit(alice, server_ids[ids[3]], {}, status="discarded")
    submit(alice, server_ids[ids[4]], {"quality": "good"})
    submit(bob, server_ids[ids[4]], {"quality": "reject"})

    result, agreed = pull(dataset, client, changed)
    result = result.sort("path")
    assert agreed == {"records_with_two_or_more": 2, "unanimous": 1, "rate": 0.5}
    rows = result.select("review_status", "final_instruction", "reviewers", "review_labels")
    assert rows.row(0) == ("accepted", "Write f0, which adds zero.", ["alice"], [])
    assert rows.row(1) == ("corrected", "Write f1 adding one.", ["alice", "bob"], [])
    assert rows.row(2) == ("rejected", None, ["alice"], ["not_code"])
    assert rows.row(3) == ("pending", None, [], [])  # discarded is not a vote
    assert rows.row(4) == ("pending", None, ["alice", "bob"], ["disagreement"])
    assert rows.row(5) == ("pending", None, [], [])


def test_a_killed_push_resumes_with_the_next_batch(client, tmp_path):
    records = annotated(10)
    dataset = ensure_dataset(client, "resume", "review", min_submitted=1)
    state = tmp_path / "pushed.json"
    calls = []

    def die_after_first(count: int) -> None:
        calls.append(count)
        if len(calls) == 1:
            raise KeyboardInterrupt  # the push is killed after its first batch

    with pytest.raises(KeyboardInterrupt):
        push(dataset, records, state, batch_size=4, on_batch=die_after_first)
    again = push(dataset, records, state, batch_size=4)
    assert (again.sent, again.unchanged) == (6, 4)
    assert len(list(dataset.records)) == 10


def test_the_review_rule():
    good, fix, bad = (
        Vote("a", "good", None),
        Vote("b", "needs_fix", "Do X."),
        Vote("c", "reject", None),
    )
    assert final_record("I", [])["review_status"] == "pending"
    assert final_record("I", [good])["final_instruction"] == "I"
    assert final_record("I", [fix, Vote("d", "needs_fix", "Do X.")])["final_instruction"] == "Do X."
    assert final_record("I", [good, good, bad])["review_status"] == "accepted"
    assert final_record("I", [good, bad])["review_labels"] == ["disagreement"]
    assert final_record("I", [Vote("a", "needs_fix", " ")])["review_status"] == "pending"


def test_the_issue_labels_offer_every_quality_flag():
    found = set()
    for text in ("", "Median.", "I'm sorry, I cannot help with that request at all.",
                 "Write a JavaScript function that mails <EMAIL_ADDRESS> totals."):  # fmt: skip
        found.update(quality_flags(text, None, "x = 1\n", "python"))
    assert found <= set(FLAG_LABELS)


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt install chromium)")
def test_an_annotator_reviews_in_the_browser(server, client, tmp_path, monkeypatch):
    from playwright.sync_api import sync_playwright

    _, url = server
    monkeypatch.setenv("CAROL_PASSWORD", "carol-secret-1")
    roster = Roster.model_validate({"users": [{"username": "carol", "workspaces": ["ui"],
                                               "password_env": "CAROL_PASSWORD"}]})  # fmt: skip
    apply_roster(client, roster, tmp_path)
    records = annotated(3)
    dataset = ensure_dataset(client, "ui-review", "ui", min_submitted=1)
    push(dataset, records, tmp_path / "pushed.json")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{url}/sign-in")
        page.get_by_label("Username").fill("carol")
        page.get_by_label("Password").fill("carol-secret-1")
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{url}/", timeout=30_000)
        page.goto(f"{url}/dataset/{dataset.id}/annotation-mode")
        page.get_by_text("Is the instruction right for this code?").wait_for(timeout=30_000)
        page.get_by_text("1 of 3").wait_for(timeout=30_000)
        page.screenshot(path=ARTIFACTS / "argilla-review.png")
        # the quality checks suggested "needs fix": the reviewer says it is good and submits
        page.get_by_role("button", name="Submit").wait_for()
        page.locator("label", has_text="good").first.click()
        page.get_by_role("button", name="Submit").click()
        page.get_by_text("2 of 3").or_(page.get_by_text("1 of 2")).wait_for(timeout=30_000)
        browser.close()
    reviewed, _ = pull(dataset, client, records)
    assert reviewed["review_status"].to_list().count("accepted") == 1
    assert reviewed.filter(pl.col("review_status") == "accepted")["reviewers"][0].to_list() == [
        "carol"
    ]
