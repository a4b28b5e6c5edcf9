"""The review loop against the real argilla-server, started locally by `LocalArgilla` (its
own virtualenv, SQLite, a real Redis, codecurate's database search engine); annotators
submit over REST as they would from the web UI."""

from __future__ import annotations

import json
import os
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import argilla as rg
import httpx
import polars as pl
import psutil
import pytest
from conftest import free_port
from pydantic import BaseModel
from typer.testing import CliRunner

from annotators.quality import quality_flags
from argilla_setup.auto_review import auto_review
from argilla_setup.config import ReviewConfig
from argilla_setup.push_pull import pull, push
from argilla_setup.server import LocalArgilla
from argilla_setup.settings import FLAG_LABELS, ensure_dataset
from argilla_setup.stage import ReviewStage
from argilla_setup.users import Roster, apply_roster
from codecurate import cli
from curation import Manifest, Runner, Stage, StageContext
from curation.errors import CurateError
from curation.sources.common import finish_records

pytestmark = pytest.mark.slow
TEAM = {"alice": "alice-secret-1", "bob": "bob-secret-12", "carol": "carol-secret-1"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalArgilla, str]]:
    # its home is <workdir>/argilla, where the review stage and `curate argilla` look
    local = LocalArgilla(tmp_path_factory.mktemp("work") / "argilla", port=free_port())
    state = local.up()
    try:
        yield local, state.url
    finally:
        local.down()


@pytest.fixture(scope="module")
def client(server: tuple[LocalArgilla, str]) -> rg.Argilla:
    local, url = server
    return rg.Argilla(api_url=url, api_key=local.owner_credentials()["api_key"])


@pytest.fixture(scope="module")
def team(server, client, tmp_path_factory) -> dict[str, httpx.Client]:
    """alice, bob and carol, annotators in workspace `review`, logged in."""
    _, url = server
    with pytest.MonkeyPatch.context() as env:
        for name, password in TEAM.items():
            env.setenv(f"{name.upper()}_PASSWORD", password)
        roster = Roster.model_validate({"workspaces": ["review"], "users": [
            {"username": name, "workspaces": ["review"], "password_env": f"{name.upper()}_PASSWORD"}
            for name in TEAM
        ]})  # fmt: skip
        apply_roster(client, roster, tmp_path_factory.mktemp("passwords"))
    return {name: login(url, name, password) for name, password in TEAM.items()}


def annotated(n: int, flagged: bool = True) -> pl.DataFrame:
    rows = [{"kind": "code", "source": "repo", "path": f"src/m{i}.py", "language": "python",
             "content": f"def f{i}(x):\n    return x + {i}\n"} for i in range(n)]  # fmt: skip
    frame = finish_records(rows)
    return frame.with_columns(
        content_clean=pl.col("content"),
        instruction=pl.format("Write a function f{} that adds a constant.", pl.int_range(n)),
        task=pl.lit("instruction_for_code"),
        annotator=pl.lit("openai:gpt-4o-mini"),
        quality_flags=pl.lit(["too_short"] if flagged else [], dtype=pl.List(pl.String)),
        cost_usd=pl.lit(0.0001),
    ).sort("path")


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


def server_ids(dataset: rg.Dataset) -> dict[str, object]:
    """Argilla's own id of each record, by the record id we gave it."""
    return {str(r.id): r._server_id for r in dataset.records}


def pending_queue(session: httpx.Client, dataset: rg.Dataset) -> list[str]:
    """The record ids in a reviewer's Pending queue: the search Argilla 2.8's web UI sends
    for that tab (read from its bundle): no response of theirs, and the record pending."""
    terms = [{"type": "terms", "scope": scope, "values": ["pending"]}
             for scope in ({"entity": "response", "property": "status"},
                           {"entity": "record", "property": "status"})]  # fmt: skip
    found = session.post(f"/api/v1/me/datasets/{dataset.id}/records/search",
                         json={"query": {}, "filters": {"and": terms}})  # fmt: skip
    found.raise_for_status()
    return sorted(item["record"]["external_id"] for item in found.json()["items"])


class GivenConfig(BaseModel):
    ids: list[str]


class Given(Stage):
    """The records the annotate stage wrote: the review stage's input."""

    name: ClassVar[str] = "annotate"
    is_source: ClassVar[bool] = True

    def __init__(self, frame: pl.DataFrame) -> None:
        self.frame = frame
        self.config = GivenConfig(ids=frame["id"].to_list())

    def input_fingerprint(self) -> str:
        return ",".join(self.config.ids)

    def run(self, records: pl.LazyFrame | None, ctx: StageContext) -> pl.DataFrame:
        return self.frame


def sync(local: LocalArgilla, frame: pl.DataFrame, **review: object) -> Manifest:
    """`curate argilla sync` on these records: the review stage, run by the runner."""
    workdir = local.home.parent
    config = ReviewConfig(port=local.port, workspace="review", **review)
    stages = [Given(frame), ReviewStage(config, workdir)]
    return Runner(workdir).run(stages, force=["annotate", "review"])[-1]


def curate_toml(folder: Path, workdir: Path, port: int) -> Path:
    """A config for the `curate argilla` commands: the workdir and the local server's port."""
    path = folder / "curate.toml"
    path.write_text(f'workdir = "{workdir}"\n\n[[ingest.sources]]\ntype = "dir"\npath = "."\n\n'
                    f"[review]\nport = {port}\n")  # fmt: skip
    return path


def test_the_local_server_is_the_real_argilla_with_our_search_engine(server):
    _, url = server
    status = httpx.get(f"{url}/api/v1/status").json()
    assert status["version"] == "2.8.0" and status["search_engine"]["engine"] == "codecurate-sql"


def test_a_roster_is_applied_once(client, tmp_path, monkeypatch):
    monkeypatch.setenv("ERIN_PASSWORD", "erin-secret-1")
    roster = Roster.model_validate({"users": [
        {"username": "erin", "workspaces": ["roster"], "password_env": "ERIN_PASSWORD"},
    ]})  # fmt: skip
    assert apply_roster(client, roster, tmp_path) == [
        "workspace roster created",
        "user erin (annotator) created",
        "user erin added to roster",
    ]
    assert apply_roster(client, roster, tmp_path) == []  # applying again changes nothing
    assert list(tmp_path.iterdir()) == []  # her password came from the environment


def test_push_review_and_pull(client, team, tmp_path):
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
    assert len({r.fields["context"] for r in pushed}) == 6
    assert pushed[0].suggestions["corrected_instruction"].agent == "openai:gpt-4o-mini"

    on_server = server_ids(dataset)
    ids = changed["id"].to_list()
    alice, bob = team["alice"], team["bob"]
    submit(alice, on_server[ids[0]], {"quality": "good"})
    fix = {"quality": "needs_fix", "corrected_instruction": "Write f1 adding one."}
    submit(alice, on_server[ids[1]], fix)
    submit(bob, on_server[ids[1]], fix)
    submit(alice, on_server[ids[2]], {"quality": "reject", "issues": ["not_code"]})
    submit(alice, on_server[ids[3]], {}, status="discarded")
    submit(alice, on_server[ids[4]], {"quality": "good"})
    submit(bob, on_server[ids[4]], {"quality": "reject"})

    pulled = pull(client, dataset, changed)
    agreed = pulled.numbers["agreement"]
    assert (agreed["records_with_two_or_more"], agreed["unanimous"], agreed["rate"]) == (2, 1, 0.5)
    rows = pulled.records.select("review_status", "final_instruction", "reviewers",
                                 "review_labels")  # fmt: skip
    assert rows.row(0) == ("accepted", "Write f0, which adds zero.", ["alice"], [])
    assert rows.row(1) == ("corrected", "Write f1 adding one.", ["alice", "bob"], [])
    assert rows.row(2) == ("rejected", None, ["alice"], ["not_code"])
    assert rows.row(3) == ("pending", None, [], [])  # discarded is not a vote
    assert rows.row(4) == ("pending", None, ["alice", "bob"], ["disagreement"])
    assert rows.row(5) == ("pending", None, [], [])
    assert pulled.numbers["annotators"]["alice"]["discarded"] == 1


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


def test_ties_and_conflicting_corrections_go_back_to_the_pending_queue(server, client, team):
    local, _ = server
    records = annotated(3)
    tie, conflict, agreed = records["id"].to_list()
    sync(local, records, dataset="rounds", min_submitted=2)
    dataset = ensure_dataset(client, "rounds", "review", min_submitted=2)
    on_server = server_ids(dataset)
    alice, bob, carol = team["alice"], team["bob"], team["carol"]
    submit(alice, on_server[tie], {"quality": "good"})
    submit(bob, on_server[tie], {"quality": "reject"})
    submit(alice, on_server[conflict], {"quality": "needs_fix", "corrected_instruction": "Add 1."})
    submit(bob, on_server[conflict], {"quality": "needs_fix", "corrected_instruction": "Inc x."})
    submit(alice, on_server[agreed], {"quality": "good"})
    submit(bob, on_server[agreed], {"quality": "good"})
    assert pending_queue(carol, dataset) == []  # Argilla calls all three completed

    manifest = sync(local, records, dataset="rounds", min_submitted=2)
    assert manifest.extra["undecided"] == {
        "disagreement": 1,
        "conflicting_corrections": 1,
        "correction_missing": 0,
    }
    assert manifest.extra["sent_back"] == 2
    again = {f"{tie}-round-2", f"{conflict}-round-2"}
    assert set(pending_queue(carol, dataset)) == again
    assert set(pending_queue(alice, dataset)) == again  # she may change her mind
    workdir = local.home.parent
    reviewed = pl.read_parquet(workdir / "02_review" / "*.parquet").sort("path")
    assert reviewed["correction_candidates"].to_list()[1] == ["Add 1.", "Inc x."]
    context = {str(r.id): r.fields["context"] for r in dataset.records}
    assert "1. Add 1." in context[f"{conflict}-round-2"]
    assert "2. Inc x." in context[f"{conflict}-round-2"]
    # a rerun does not send them back twice while their round waits for votes
    assert sync(local, records, dataset="rounds", min_submitted=2).extra["sent_back"] == 0

    on_server = server_ids(dataset)
    submit(carol, on_server[f"{tie}-round-2"], {"quality": "reject"})
    submit(carol, on_server[f"{conflict}-round-2"],
           {"quality": "needs_fix", "corrected_instruction": "Inc x."})  # fmt: skip
    manifest = sync(local, records, dataset="rounds", min_submitted=2)
    reviewed = pl.read_parquet(workdir / "02_review" / "*.parquet").sort("path")
    assert reviewed.select("review_status", "final_instruction").rows() == [
        ("rejected", None), ("corrected", "Inc x."), ("accepted", reviewed["instruction"][2]),
    ]  # fmt: skip
    assert manifest.extra["undecided"]["disagreement"] == 0
    assert manifest.extra["agreement"]["by_round"]["1"]["records_with_two_or_more"] == 3


def test_a_record_that_cannot_be_pushed_is_quarantined_and_the_others_go_on(server):
    local, _ = server
    records = annotated(3).with_columns(
        meta=pl.when(pl.col("path") == "src/m1.py").then(pl.lit("{not json")).otherwise(None)
    )
    manifest = sync(local, records, dataset="broken")
    assert manifest.extra["pushed"] == 2 and manifest.quarantined == {"stage_error": 1}
    quarantine = pl.read_parquet(local.home.parent / "quarantine.parquet")
    [detail] = quarantine.filter(pl.col("reason") == "stage_error")["detail"].to_list()
    assert detail.startswith("JSONDecodeError: ")
    reviewed = pl.read_parquet(local.home.parent / "02_review" / "*.parquet")
    assert sorted(reviewed["path"].to_list()) == ["src/m0.py", "src/m2.py"]


def test_the_machine_reviewer_answers_only_what_no_person_touched(client, team, tmp_path):
    clean = annotated(4, flagged=False)
    records = pl.concat([clean, annotated(5).tail(1)])  # m4 has a quality flag
    skipped, answered, untouched, later, flagged = records["id"].to_list()
    dataset = ensure_dataset(client, "machine", "review", min_submitted=2)
    push(dataset, records, tmp_path / "pushed.json")
    on_server = server_ids(dataset)
    submit(team["alice"], on_server[skipped], {}, status="discarded")
    submit(team["alice"], on_server[answered], {"quality": "reject"})

    assert auto_review(client, dataset, records, "review", tmp_path / "passwords") == 2
    assert auto_review(client, dataset, records, "review", tmp_path / "passwords") == 0
    submit(team["bob"], on_server[later], {"quality": "reject"})  # a person, after the machine
    rows = {row["id"]: row for row in pull(client, dataset, records).records.to_dicts()}
    assert rows[skipped]["reviewers"] == [] and rows[skipped]["review_status"] == "pending"
    assert (rows[answered]["review_status"], rows[answered]["reviewers"]) == ("rejected", ["alice"])
    assert rows[untouched]["reviewers"] == ["auto-review"]
    assert rows[untouched]["review_labels"] == ["machine_reviewed"]
    assert (rows[later]["review_status"], rows[later]["reviewers"]) == ("rejected", ["bob"])
    assert rows[later]["review_labels"] == []
    assert rows[flagged]["review_status"] == "pending"  # the machine cannot write a fix


def test_review_numbers_per_annotator_and_gold_in_the_manifest_and_status(
    server, client, team, tmp_path, monkeypatch
):
    local, _ = server
    gold = tmp_path / "gold.jsonl"
    gold.write_text("".join(json.dumps(g) + "\n" for g in (
        {"code": "def add(a, b):\n    return a + b\n", "instruction": "Write add.",
         "expected": "good", "path": "src/add.py", "source": "repo"},
        {"code": "x = 1\n", "instruction": "Implement a web server.", "expected": "reject",
         "path": "src/x.py", "source": "repo"},
    )))  # fmt: skip
    records = annotated(3)
    sync(local, records, dataset="numbers", min_submitted=2, gold=gold)
    dataset = ensure_dataset(client, "numbers", "review", min_submitted=2)
    pushed = {r.fields["instruction"]: r for r in dataset.records}
    assert len(pushed) == 5
    hidden = pushed["Write add."]
    assert hidden.metadata["annotator"] == "openai:gpt-4o-mini"  # like the others
    assert len(str(hidden.id)) == len(records["id"][0])
    on_server = {text: r._server_id for text, r in pushed.items()}
    r0, r1, r2 = records["instruction"].to_list()
    alice, bob = team["alice"], team["bob"]
    fix = {"quality": "needs_fix", "corrected_instruction": "Write f1, adding one."}
    for session in (alice, bob):
        submit(session, on_server[r0], {"quality": "good"})
        submit(session, on_server[r1], fix)
        submit(session, on_server["Implement a web server."], {"quality": "reject"})
    submit(alice, on_server[r2], {"quality": "good"})
    submit(bob, on_server[r2], {}, status="discarded")
    submit(alice, on_server["Write add."], {"quality": "good"})
    submit(bob, on_server["Write add."], {"quality": "reject"})

    manifest = sync(local, records, dataset="numbers", min_submitted=2, gold=gold)
    people = manifest.extra["annotators"]
    assert people["alice"] == {
        "answered": 3, "decided": 3, "agreed": 3, "discarded": 0, "gold_answered": 2,
        "gold_correct": 2, "agreement": 1.0, "gold_accuracy": 1.0,
    }  # fmt: skip
    assert (people["bob"]["answered"], people["bob"]["discarded"]) == (2, 1)
    assert (people["bob"]["gold_correct"], people["bob"]["gold_answered"]) == (1, 2)
    # two records both voted on, unanimous: all agreement, and alpha 1 (two categories used)
    assert manifest.extra["agreement"]["by_round"]["1"] == {
        "records_with_two_or_more": 2, "unanimous": 2, "rate": 1.0, "alpha": 1.0,
    }  # fmt: skip
    workdir = local.home.parent
    reviewed = pl.read_parquet(workdir / "02_review" / "*.parquet")
    assert reviewed.height == 3  # gold records never join the pipeline's records

    # a generated password, and the owner's: status says where they are, never what
    dave = Roster.model_validate({"users": [{"username": "dave", "workspaces": ["review"]}]})
    apply_roster(client, dave, workdir / "argilla" / "passwords")
    config = curate_toml(tmp_path, workdir, local.port)
    monkeypatch.setattr(cli.console, "width", 200)
    status = CliRunner().invoke(cli.app, ["argilla", "status", "-c", str(config)])
    assert status.exit_code == 0, status.output
    owner = local.owner_credentials()
    secrets = [(workdir / "argilla/passwords/dave.password").read_text().strip(),
               owner["password"], owner["api_key"]]  # fmt: skip
    assert [secret for secret in secrets if secret in status.output] == []
    assert f"login: dave, password in {workdir / 'argilla/passwords/dave.password'} (mode 600)" in (
        status.output
    )
    assert "100% of 3" in status.output and "1 of 2" in status.output  # alice, bob's gold
    assert "Krippendorff's alpha" in status.output and "1.000" in status.output


def test_argilla_up_on_a_taken_port_starts_its_own_server_elsewhere(server, tmp_path, monkeypatch):
    _, taken = server
    monkeypatch.setattr(cli.console, "width", 200)
    port = int(taken.rsplit(":", 1)[1])
    config = curate_toml(tmp_path, tmp_path / "work", port)
    up = CliRunner().invoke(cli.app, ["argilla", "up", "-c", str(config)])
    try:
        assert up.exit_code == 0, up.output
        assert f"port {port} is taken by another program" in up.output
        ours = LocalArgilla(tmp_path / "work" / "argilla", port=port)
        state = ours.state()
        assert state is not None and state.port != port and state.url in up.output
        assert ours.is_ours(state.url) and not ours.is_ours(taken)
    finally:
        assert CliRunner().invoke(cli.app, ["argilla", "down", "-c", str(config)]).exit_code == 0
    assert httpx.get(f"{taken}/api/v1/status").status_code == 200  # the other one still runs


def running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_a_dead_server_leaves_no_redis_behind(tmp_path):
    local = LocalArgilla(tmp_path / "argilla", port=free_port())
    state = local.up()
    os.killpg(state.server_pid, signal.SIGKILL)
    psutil.Process(state.server_pid).wait(timeout=10)
    assert local.state() is None
    assert not running(state.redis_pid)
    assert not local.state_path.exists()


def test_a_server_that_fails_to_start_leaves_nothing_running(tmp_path):
    local = LocalArgilla(tmp_path / "argilla", port=free_port())
    local.home.mkdir(parents=True)
    (local.home / "argilla.db").write_text("not a database")
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    with pytest.raises(CurateError, match="argilla-server exited with code"):
        local.up()
    started = [p.pid for p in psutil.Process().children(recursive=True) if p.pid not in before]
    assert [pid for pid in started if running(pid)] == []
    assert not local.state_path.exists()


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
    reviewed = pull(client, dataset, records).records
    assert reviewed["review_status"].to_list().count("accepted") == 1
    assert reviewed.filter(pl.col("review_status") == "accepted")["reviewers"][0].to_list() == [
        "carol"
    ]
