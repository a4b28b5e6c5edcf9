"""The live GitHub client against a local server speaking the REST API's JSON."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar
from urllib.parse import parse_qs, urlparse

import pytest
from conftest import ingest

from curation import SourceError
from curation.sources.github_api import GitHubClient, export_repo

TOKEN = "ghp_testtoken0123456789abcdefghijklmnopqr"


class FakeGitHub(BaseHTTPRequestHandler):
    """Three issues over two pages, comments for one, one commit; scripted failures."""

    failures: ClassVar[list[tuple[int, dict]]] = []
    seen_auth: ClassVar[list[str]] = []

    def log_message(self, *args):  # keep test output quiet
        pass

    def reply(self, status: int, body: object, headers: dict | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self.seen_auth.append(self.headers.get("Authorization", ""))
        if self.failures:
            status, headers = self.failures.pop(0)
            self.reply(status, {"message": "slow down"}, headers)
            return
        url = urlparse(self.path)
        page = int(parse_qs(url.query).get("page", ["1"])[0])
        base = f"http://127.0.0.1:{self.server.server_port}"
        html = "https://github.com/o/r"
        if url.path == "/repos/o/r/issues":
            numbers = [1, 2] if page == 1 else [3]
            issues = [
                {
                    "number": n,
                    "title": f"Issue {n}",
                    "body": f"Body {n}.",
                    "url": f"{base}/repos/o/r/issues/{n}",
                    "html_url": f"{html}/issues/{n}",
                    "user": {"login": "alice", "type": "User"},
                    "created_at": "2024-01-01T00:00:00Z",
                    "comments": 1 if n == 2 else 0,
                }
                for n in numbers
            ]
            links = {"Link": f'<{base}/repos/o/r/issues?page=2&per_page=2>; rel="next"'}
            self.reply(200, issues, links if page == 1 else {"X-RateLimit-Remaining": "4999"})
        elif url.path == "/repos/o/r/issues/2/comments":
            self.reply(
                200,
                [
                    {
                        "id": 5,
                        "body": "A comment.",
                        "user": {"login": "bob", "type": "User"},
                        "created_at": "2024-01-02T00:00:00Z",
                        "issue_url": f"{base}/repos/o/r/issues/2",
                    }
                ],
            )
        elif url.path == "/repos/o/r/commits":
            self.reply(
                200,
                [
                    {
                        "sha": "f" * 40,
                        "html_url": f"{html}/commit/{'f' * 40}",
                        "commit": {
                            "message": "Add parser",
                            "author": {"date": "2024-01-01T00:00:00Z"},
                        },
                        "author": {"login": "alice", "type": "User"},
                    }
                ],
            )
        else:
            self.reply(404, {"message": "Not Found"})


@pytest.fixture
def server():
    FakeGitHub.failures = []
    FakeGitHub.seen_auth = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), FakeGitHub)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()


def client(url: str, sleeps: list[float] | None = None, **kwargs) -> GitHubClient:
    record = sleeps.append if sleeps is not None else (lambda s: None)
    return GitHubClient(token=TOKEN, api_url=url, sleep=record, **kwargs)


def test_export_follows_pages_embeds_comments_and_feeds_the_source(server, tmp_path):
    counts = export_repo(client(server), "o/r", tmp_path / "gh")
    assert counts == {"issues": 3, "commits": 1}
    records, _, _ = ingest(tmp_path, sources=[{"type": "github", "path": tmp_path / "gh"}])
    assert sorted(records["path"]) == ["commits/" + "f" * 40, "issues/1", "issues/2", "issues/3"]
    issue2 = records.filter(records["path"] == "issues/2")["content"][0]
    assert "A comment." in issue2


def test_token_is_sent_but_never_shown(server, tmp_path):
    github = client(server)
    export_repo(github, "o/r", tmp_path / "gh")
    assert set(FakeGitHub.seen_auth) == {f"Bearer {TOKEN}"}
    assert TOKEN not in repr(github)
    FakeGitHub.failures = [(401, {})]
    with pytest.raises(SourceError) as error:
        export_repo(client(server, max_retries=0), "o/r", tmp_path / "gh2")
    assert TOKEN not in str(error.value)


def test_token_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    assert GitHubClient()._headers()["Authorization"] == f"Bearer {TOKEN}"


def test_rate_limits_are_waited_out_as_the_headers_say(server, tmp_path):
    reset = str(int(time.time()) + 30)
    FakeGitHub.failures = [
        (429, {"Retry-After": "7"}),
        (403, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset}),
        (502, {}),
    ]
    sleeps: list[float] = []
    counts = export_repo(client(server, sleeps), "o/r", tmp_path / "gh")
    assert counts["issues"] == 3
    assert sleeps[0] == 7.0
    assert 29 <= sleeps[1] <= 32  # until the reset, plus a second
    assert sleeps[2] == 1.0  # first backoff after a server error


def test_a_reset_beyond_max_wait_fails_clearly(server, tmp_path):
    reset = str(int(time.time()) + 3600)
    FakeGitHub.failures = [(403, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset})]
    with pytest.raises(SourceError, match="rate limit"):
        export_repo(client(server, max_wait_s=60), "o/r", tmp_path / "gh")


def test_unknown_repository_is_a_clear_error(server, tmp_path):
    with pytest.raises(SourceError, match="not found"):
        export_repo(client(server), "o/missing", tmp_path / "gh")
    with pytest.raises(SourceError, match="owner/name"):
        export_repo(client(server), "just-a-name", tmp_path / "gh")
