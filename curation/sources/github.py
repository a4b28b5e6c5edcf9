"""GitHub issues (with their comments) and commits from REST-API-shaped JSON exports.

Bot and auto-generated text is dropped with a reason: whole records (an issue opened by
a bot, a merge commit) get a `filter_reason`; bot comments inside a human thread are
removed from it and counted. Quoted e-mail replies and notification footers are stripped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, Final, Literal

import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from curation.errors import SourceError
from curation.runner import StageContext
from curation.sources.bots import bot_reason, thread_reason
from curation.sources.common import batched, fingerprint_files, finish_records, pick

# Quoted e-mail replies ("On <date>, <name> wrote:" then "> ..." lines) and the
# footers that GitHub and mailing lists append to notification mails.
REPLY_NOISE: Final = (
    r"(?m)^On [^\n]{0,300}wrote:[ \t]*\n(?:[ \t]*>[^\n]*(?:\n|$))*"
    r"|(?s)\n*(?:—|--)[ \t]*\n(?:Reply to this email directly|You are receiving this because).*$"
    r"|(?s)\n*You are receiving this because you (?:were mentioned|authored|commented).*$"
    r"|(?s)\n*You received this message because you are subscribed to.*$"
    r"|(?m)^Sent from my (?:iPhone|iPad|Android|mobile)[^\n]*$"
)

# Commit messages that tools write.
AUTO_COMMIT_MESSAGE: Final = (
    r"^(?:Merge (?:pull request #\d+|branch '|remote-tracking branch '|tag '|[0-9a-f]{7,40} into)"
    r"|Bump \S+ from \S+ to \S+|Update dependency \S+|\[pre-commit\.ci\]|chore\(deps(?:-dev)?\):"
    r"|Automated (?:commit|update)|Auto-?generated|Revert \"Revert)"
)
GIT_TRAILERS: Final = (
    r"(?m)^(?:Signed-off-by|Co-authored-by|Reviewed-by|Acked-by|Tested-by|Reported-by"
    r"|Change-Id|Reviewed-on|Cc):[^\n]*\n?"
)


class GitHubSourceConfig(BaseModel):
    """Exported GitHub issues, comments and commits (JSON or JSONL in the REST API's shape)."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["github"] = "github"
    path: Path  # a file, or a folder of *.json / *.jsonl files
    repo: str | None = None  # "owner/name", when the objects carry no html_url
    # BigCode's issue-level filters, off by default: a short bug report or a question nobody
    # answered yet is still a good record here. BigCode's values: 200, 7000 and 10.
    min_thread_chars: int = Field(default=0, ge=0)
    single_participant_max_chars: int | None = Field(default=None, gt=0)
    single_participant_max_events: int | None = Field(default=None, gt=0)


def export_files(path: Path) -> list[Path]:
    """The JSON/JSONL files of an export: `path` itself, or those inside it."""
    if path.is_file():
        return [path]
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.suffix in {".json", ".jsonl"})
    raise SourceError(f"GitHub export {str(path)!r} does not exist")


def fingerprint_export(path: Path) -> str:
    return fingerprint_files(path.parent, [f.relative_to(path.parent) for f in export_files(path)])


def export_name(file: Path, root: Path) -> str:
    """A file's name in quarantine rows: relative to the export folder."""
    return file.relative_to(root).as_posix() if file != root else file.name


def read_objects(file: Path, ctx: StageContext, root: Path) -> Iterator[dict[str, Any]]:
    """JSON objects of a file; malformed lines are quarantined, the rest still read."""
    text = file.read_text(encoding="utf-8", errors="replace")
    name = export_name(file, root)
    where = {"source": root.name}
    if file.suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            ctx.quarantine("malformed_json", path=name, detail=str(e), raw=text, **where)
            return
        items = data if isinstance(data, list) else [data]
        lines = [(None, item) for item in items]
    else:
        lines = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                lines.append((number, json.loads(line)))
            except json.JSONDecodeError as e:
                path = f"{name}:{number}"
                ctx.quarantine("malformed_json", path=path, detail=str(e), raw=line, **where)
    for number, item in lines:
        if isinstance(item, dict):
            yield item
        else:
            path = f"{name}:{number}" if number else name
            ctx.quarantine("not_an_object", path=path, raw=json.dumps(item)[:1000], **where)


def repo_url(html_url: str | None, fallback_repo: str | None) -> str | None:
    if html_url:
        match = re.match(r"(https?://[^/]+/[^/]+/[^/]+)/", html_url)
        if match:
            return match.group(1)
    return f"https://github.com/{fallback_repo}" if fallback_repo else None


def _when(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def _comment_row(comment: dict[str, Any], issue_key: str | None) -> dict[str, Any]:
    return {
        "issue_key": issue_key or comment.get("issue_url"),
        "comment_id": comment.get("id"),
        "login": pick(comment, "user", "login"),
        "author_type": pick(comment, "user", "type"),
        "body": comment.get("body") or "",
        "created_at": _when(comment.get("created_at")),
    }


def split_export(config: GitHubSourceConfig, ctx: StageContext) -> tuple[list, list, list]:
    """Issues, comments and commits of an export, by the shape of each object."""
    issues, comments, commits = [], [], []
    for file in export_files(config.path):
        for obj in read_objects(file, ctx, config.path):
            if "number" in obj and "title" in obj:
                key = obj.get("url") or f"{config.repo}#{obj['number']}"
                issues.append(
                    {
                        "issue_key": key,
                        "source": repo_url(obj.get("html_url"), config.repo),
                        "number": obj["number"],
                        "title": obj.get("title") or "",
                        "body": obj.get("body") or "",
                        "login": pick(obj, "user", "login"),
                        "author_type": pick(obj, "user", "type"),
                        "created_at": _when(obj.get("created_at")),
                        "url": obj.get("html_url"),
                        "state": obj.get("state"),
                        "labels": [
                            label.get("name") if isinstance(label, dict) else str(label)
                            for label in obj.get("labels") or []
                        ],
                        "is_pull_request": "pull_request" in obj,
                    }
                )
                if isinstance(obj.get("comments"), list):
                    comments.extend(_comment_row(c, key) for c in obj["comments"])
            elif "issue_url" in obj and "body" in obj:
                comments.append(_comment_row(obj, None))
            elif "sha" in obj and isinstance(obj.get("commit"), dict):
                commits.append(
                    {
                        "sha": obj["sha"],
                        "source": repo_url(obj.get("html_url"), config.repo),
                        "message": pick(obj, "commit", "message") or "",
                        "login": pick(obj, "author", "login"),
                        "author_type": pick(obj, "author", "type"),
                        "created_at": _when(pick(obj, "commit", "author", "date")),
                        "url": obj.get("html_url"),
                    }
                )
            else:
                ctx.quarantine("unknown_shape", path=export_name(file, config.path),
                               source=config.path.name, raw=json.dumps(obj)[:1000])  # fmt: skip
    return issues, comments, commits


def clean_reply(body: pl.Expr) -> pl.Expr:
    """Body without quoted e-mail replies, notification footers and trailing blank space."""
    return body.str.replace_all(REPLY_NOISE, "").str.strip_chars()


_COMMENT_SCHEMA = {
    "issue_key": pl.String,
    "comment_id": pl.Int64,
    "login": pl.String,
    "author_type": pl.String,
    "body": pl.String,
    "created_at": pl.Datetime("us", "UTC"),
}


def issue_records(
    issues: list[dict], comments: list[dict], config: GitHubSourceConfig, ctx: StageContext
) -> pl.DataFrame:
    """One record per issue thread: title, body and the human comments in order."""
    comment_frame = pl.DataFrame(comments, schema=_COMMENT_SCHEMA).with_columns(
        reason=bot_reason(pl.col("login"), pl.col("author_type"), pl.col("body")),
        body=clean_reply(pl.col("body")),
    )
    for row in comment_frame.drop_nulls("reason").group_by("reason").len().iter_rows(named=True):
        ctx.skip(f"comment:{row['reason']}", row["len"])
    threads = (
        comment_frame.filter(pl.col("reason").is_null() & (pl.col("body") != ""))
        .sort("issue_key", "created_at", "comment_id", nulls_last=True)
        .group_by("issue_key", maintain_order=True)
        .agg(
            thread=pl.format("### Comment by @{}\n\n{}", pl.col("login"), pl.col("body")).str.join(
                "\n\n"
            ),
            comments_kept=pl.len(),
            comment_chars=pl.col("body").str.len_chars().sum(),
            commenters=pl.col("login"),
        )
    )
    issue_frame = pl.DataFrame(issues).with_columns(
        pl.col("created_at").cast(pl.Datetime("us", "UTC")),
        body=clean_reply(pl.col("body")),
    )
    frame = issue_frame.join(threads, on="issue_key", how="left").with_columns(
        filter_reason=pl.coalesce(
            bot_reason(pl.col("login"), pl.col("author_type"), pl.col("body")),
            thread_reason(
                thread_chars=pl.col("body").str.len_chars() + pl.col("comment_chars").fill_null(0),
                participants=pl.concat_list(
                    pl.col("login").cast(pl.String), pl.col("commenters").fill_null([])
                )
                .list.drop_nulls()
                .list.n_unique(),
                events=1 + pl.col("comments_kept").fill_null(0),
                min_chars=config.min_thread_chars,
                single_participant_max_chars=config.single_participant_max_chars,
                single_participant_max_events=config.single_participant_max_events,
            ),
        ),
        content=pl.concat_str(
            pl.lit("# "),
            pl.col("title"),
            pl.lit("\n\n"),
            pl.col("body"),
            pl.when(pl.col("thread").is_not_null())
            .then(pl.lit("\n\n") + pl.col("thread"))
            .otherwise(pl.lit("")),
        ),
        path=pl.format("issues/{}", pl.col("number")),
        meta=pl.struct(
            "number",
            "url",
            "state",
            "labels",
            "is_pull_request",
            comments_kept=pl.col("comments_kept").fill_null(0),
        ).struct.json_encode(),
    )
    return frame


def commit_records(commits: list[dict]) -> pl.DataFrame:
    """One record per commit message, trailers stripped; tool-written messages dropped."""
    frame = pl.DataFrame(commits).with_columns(pl.col("created_at").cast(pl.Datetime("us", "UTC")))
    message = pl.col("message").str.replace_all(GIT_TRAILERS, "").str.strip_chars()
    return frame.with_columns(
        content=message,
        filter_reason=pl.coalesce(
            bot_reason(pl.col("login"), pl.col("author_type"), message),
            pl.when(message.str.contains(AUTO_COMMIT_MESSAGE)).then(pl.lit("auto_generated")),
        ),
        path=pl.format("commits/{}", pl.col("sha")),
        commit_sha=pl.col("sha"),
        meta=pl.struct("url").struct.json_encode(),
    )


_RECORD_COLUMNS = (
    "source", "path", "content", "filter_reason", "created_at", "meta", "commit_sha",
)  # fmt: skip


def read_github_export(
    config: GitHubSourceConfig, ctx: StageContext, batch_size: int
) -> Iterator[pl.DataFrame]:
    """Records (kind issue and commit) from an export; see the module docstring."""
    issues, comments, commits = split_export(config, ctx)
    known = {issue["issue_key"] for issue in issues}
    for key in sorted({c["issue_key"] for c in comments if c["issue_key"] not in known} - {None}):
        ctx.quarantine("comment_without_issue", path=key, source=config.path.name,
                       detail="no issue object in the export")  # fmt: skip
    parts = []
    if issues:
        parts.append(
            issue_records(issues, comments, config, ctx).with_columns(kind=pl.lit("issue"))
        )
    if commits:
        parts.append(commit_records(commits).with_columns(kind=pl.lit("commit")))
    for frame in parts:
        missing = frame.filter(pl.col("source").is_null())
        if missing.height:
            raise SourceError(
                f"GitHub export {str(config.path)!r}: objects carry no html_url; set 'repo' "
                "(owner/name) on this source"
            )
        rows = frame.select("kind", *(c for c in _RECORD_COLUMNS if c in frame.columns))
        for batch in batched(rows.iter_rows(named=True), batch_size):
            yield finish_records(batch)
