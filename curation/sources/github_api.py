"""A small client for the live GitHub REST API that writes the export the GitHub source reads.

Pagination follows the `Link: rel="next"` header; rate limits are honoured from
`Retry-After` and `X-RateLimit-Remaining`/`X-RateLimit-Reset`. The token comes from
`GITHUB_TOKEN` and never appears in a message, a log line or the client's repr.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

from curation.errors import SourceError

DEFAULT_API_URL = "https://api.github.com"


class GitHubClient:
    """Reads issues, comments and commits of one repository; see the module docstring."""

    def __init__(
        self,
        token: str | None = None,
        api_url: str = DEFAULT_API_URL,
        max_wait_s: float = 900.0,
        max_retries: int = 4,
        timeout_s: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._token = token if token is not None else os.environ.get("GITHUB_TOKEN")
        self.api_url = api_url.rstrip("/")
        self.max_wait_s = max_wait_s
        self.max_retries = max_retries
        self.timeout_s = timeout_s
        self.sleep = sleep
        self.requests_made = 0

    def __repr__(self) -> str:
        return f"GitHubClient(api_url={self.api_url!r}, token={'set' if self._token else 'unset'})"

    def _headers(self) -> dict[str, str]:
        headers = {
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
            "User-Agent": "codecurate",
        }
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        return headers

    def _wait_time(self, response: httpx.Response) -> float | None:
        """Seconds to wait before retrying, or None when the response is not a rate limit."""
        if "Retry-After" in response.headers:
            return float(response.headers["Retry-After"])
        if response.headers.get("X-RateLimit-Remaining") == "0":
            reset = float(response.headers.get("X-RateLimit-Reset", time.time() + 60))
            return max(0.0, reset - time.time()) + 1.0
        return None

    def get(self, client: httpx.Client, url: str, params: dict[str, Any] | None) -> httpx.Response:
        """One GET, waiting out rate limits and retrying server and network errors.

        Rate-limit waits do not use up the retries: they are bounded by `max_wait_s`
        each, and by `max_retries` consecutive waits.
        """
        errors = waits = 0
        while True:
            try:
                response = client.get(url, params=params, headers=self._headers())
            except httpx.TransportError as e:
                errors += 1
                if errors > self.max_retries:
                    raise SourceError(f"GitHub API unreachable at {url}: {e}") from e
                self.sleep(2.0 ** (errors - 1))
                continue
            self.requests_made += 1
            if response.status_code in (403, 429):
                wait = self._wait_time(response)
                if wait is None:
                    raise SourceError(
                        f"GitHub API refused {url} ({response.status_code}); "
                        "check that GITHUB_TOKEN may read this repository"
                    )
                waits += 1
                if wait > self.max_wait_s or waits > self.max_retries:
                    raise SourceError(f"GitHub rate limit on {url}: next reset in {wait:.0f}s")
                self.sleep(wait)
                continue
            if response.status_code >= 500:
                errors += 1
                if errors > self.max_retries:
                    raise SourceError(f"GitHub API: {url} answered {response.status_code} "
                                      f"{errors} times")  # fmt: skip
                self.sleep(2.0 ** (errors - 1))
                continue
            if response.status_code == 404:
                raise SourceError(f"GitHub API: {url} not found (or private without a token)")
            if response.status_code >= 400:
                raise SourceError(f"GitHub API: {url} answered {response.status_code}")
            return response

    def paginate(self, path: str, params: dict[str, Any] | None = None) -> Iterator[dict]:
        """Every object of a list endpoint, page by page."""
        url: str | None = f"{self.api_url}{path}"
        params = {"per_page": 100, **(params or {})}
        with httpx.Client(timeout=self.timeout_s) as client:
            while url is not None:
                response = self.get(client, url, params)
                page = response.json()
                if not isinstance(page, list):
                    raise SourceError(f"GitHub API: {url} did not return a list")
                yield from page
                url = response.links.get("next", {}).get("url")
                params = None  # the next link carries its own query
                if response.headers.get("X-RateLimit-Remaining") == "0":
                    wait = self._wait_time(response) or 0.0
                    if wait > self.max_wait_s:
                        raise SourceError(f"GitHub rate limit: reset in {wait:.0f}s")
                    self.sleep(wait)

    def issues(self, repo: str, since: str | None = None) -> Iterator[dict]:
        """Issues and pull requests of `owner/name`, each with its comments embedded."""
        params = {"state": "all", "sort": "created", "direction": "asc"}
        if since:
            params["since"] = since
        for issue in self.paginate(f"/repos/{repo}/issues", params):
            if issue.get("comments"):
                issue["comments"] = list(
                    self.paginate(f"/repos/{repo}/issues/{issue['number']}/comments")
                )
            else:
                issue["comments"] = []
            yield issue

    def commits(self, repo: str, since: str | None = None) -> Iterator[dict]:
        """Commits of the default branch of `owner/name`."""
        return self.paginate(f"/repos/{repo}/commits", {"since": since} if since else None)


def export_repo(client: GitHubClient, repo: str, out_dir: Path, since: str | None = None) -> dict:
    """Write `issues.jsonl` and `commits.jsonl` for a repository; return the counts."""
    if repo.count("/") != 1:
        raise SourceError(f"repository {repo!r}: expected owner/name")
    out_dir.mkdir(parents=True, exist_ok=True)
    counts = {}
    streams = {"issues": client.issues(repo, since), "commits": client.commits(repo, since)}
    for name, items in streams.items():
        tmp = out_dir / f"{name}.jsonl.tmp"
        with tmp.open("w") as f:
            counts[name] = 0
            for item in items:
                f.write(json.dumps(item) + "\n")
                counts[name] += 1
        tmp.replace(out_dir / f"{name}.jsonl")
    return counts
