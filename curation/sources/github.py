"""GitHub issues (with their comments) and commits from REST-API-shaped JSON exports.

Bot and auto-generated text is dropped with a reason: whole records (an issue opened by
a bot, a merge commit) get a `filter_reason`; bot comments inside a human thread are
removed from it and counted. Quoted e-mail replies and notification footers are stripped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final, Literal

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from curation.errors import SourceError
from curation.runner import StageContext
from curation.sources.bots import bot_reason, thread_reason
from curation.sources.common import batched, fingerprint_files, finish_records
from curation.sources.github_objects import (
    CommentObject,
    IssueObject,
    JsonValue,
    Malformed,
    field_errors,
    json_type,
    json_values,
    object_kind,
)

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


def read_objects(file: Path, ctx: StageContext, root: Path) -> Iterator[JsonValue]:
    """The JSON objects of a file, any layout (see github_objects); malformed text and values
    that are not objects are quarantined with their line, the rest still read."""
    name = export_name(file, root)
    try:
        text = file.read_bytes().decode("utf-8-sig", errors="replace")
    except OSError as e:
        detail = f"{type(e).__name__}: {e.strerror}"
        ctx.quarantine("unreadable", source=root.name, path=name, detail=detail)
        return
    for item in json_values(text):
        where = {"source": root.name, "path": f"{name}:{item.line}", "raw": item.raw}
        if isinstance(item, Malformed):
            ctx.quarantine("malformed_json", detail=item.error, **where)
        elif not isinstance(item.value, dict):
            detail = f"expected an object, got {json_type(item.value)}"
            ctx.quarantine("not_an_object", detail=detail, **where)
        else:
            yield item


def repo_url(html_url: str | None, fallback_repo: str | None) -> str | None:
    if html_url:
        match = re.match(r"(https?://[^/]+/[^/]+/[^/]+)/", html_url)
        if match:
            return match.group(1)
    return f"https://github.com/{fallback_repo}" if fallback_repo else None


def _comment_row(comment: CommentObject, issue_key: str | None) -> dict[str, Any]:
    return {
        "issue_key": issue_key or comment.issue_url,
        "comment_id": comment.id,
        "login": comment.user.login if comment.user else None,
        "author_type": comment.user.type if comment.user else None,
        "body": comment.body or "",
        "created_at": comment.created_at,
        "updated_at": comment.updated_at,
    }


def _is_newer(new: datetime | None, old: datetime | None) -> bool:
    """Whether a copy updated at `new` replaces one updated at `old` (ties: the later read)."""
    return old is None or (new is not None and new >= old)


@dataclass
class ExportRows:
    """An export's issues, comments and commits as rows, each object checked as it is read.
    An object seen twice (the same issue in two export files) is kept once: issues and
    comments at their latest `updated_at`, commits as first read; the others are counted."""

    config: GitHubSourceConfig
    ctx: StageContext
    issues: dict[str, dict[str, Any]] = field(default_factory=dict)
    comments: dict[Any, dict[str, Any]] = field(default_factory=dict)
    commits: dict[str, dict[str, Any]] = field(default_factory=dict)
    set_aside: set[str] = field(default_factory=set)  # keys of quarantined issues

    def add(self, item: JsonValue, path: str) -> None:
        """One object of the export, or its quarantine row with the field that is wrong."""
        where = {"source": self.config.path.name, "path": path, "raw": item.raw}
        kind = object_kind(item.value)
        if kind is None:
            detail = (
                "has the keys of no issue (number, title), comment (issue_url, body) "
                "or commit (sha, commit)"
            )
            self.ctx.quarantine("unknown_shape", detail=detail, **where)
            return
        try:
            parsed = kind.model_validate(item.value)
        except ValidationError as e:
            self.ctx.quarantine("bad_field", detail=field_errors(e), **where)
            if kind is IssueObject:
                self.set_aside.add(self._issue_key(item.value.get("url"), item.value["number"]))
            return
        if isinstance(parsed, IssueObject):
            self._add_issue(parsed, where)
        elif isinstance(parsed, CommentObject):
            self._add_comment(_comment_row(parsed, None))
        elif parsed.sha in self.commits:
            self.ctx.skip("duplicate_commit")
        else:
            self.commits[parsed.sha] = {
                "sha": parsed.sha,
                "source": repo_url(parsed.html_url, self.config.repo),
                "message": parsed.commit.message or "",
                "login": parsed.author.login if parsed.author else None,
                "author_type": parsed.author.type if parsed.author else None,
                "created_at": parsed.commit.author.date if parsed.commit.author else None,
                "url": parsed.html_url,
            }

    def _issue_key(self, url: Any, number: Any) -> str:
        return url if isinstance(url, str) and url else f"{self.config.repo}#{number}"

    def _add_issue(self, issue: IssueObject, where: dict[str, Any]) -> None:
        key = self._issue_key(issue.url, issue.number)
        row = {
            "issue_key": key,
            "source": repo_url(issue.html_url, self.config.repo),
            "number": issue.number,
            "title": issue.title or "",
            "body": issue.body or "",
            "login": issue.user.login if issue.user else None,
            "author_type": issue.user.type if issue.user else None,
            "created_at": issue.created_at,
            "updated_at": issue.updated_at,
            "url": issue.html_url,
            "state": issue.state,
            "labels": issue.labels,
            "is_pull_request": issue.pull_request is not None,
        }
        if key in self.issues:
            self.ctx.skip("duplicate_issue")
        if key not in self.issues or _is_newer(issue.updated_at, self.issues[key]["updated_at"]):
            self.issues[key] = row
        # every copy's comments, each kept once: an older export may embed ones a newer lacks
        for index, comment in enumerate(issue.comments if isinstance(issue.comments, list) else []):
            at = {**where, "raw": json.dumps(comment)}  # the comment, not its whole issue
            if not isinstance(comment, dict):
                detail = f"comments[{index}]: expected an object, got {json_type(comment)}"
                self.ctx.quarantine("bad_field", detail=detail, **at)
                continue
            try:
                self._add_comment(_comment_row(CommentObject.model_validate(comment), key))
            except ValidationError as e:
                self.ctx.quarantine("bad_field", detail=field_errors(e, f"comments[{index}]"), **at)

    def _add_comment(self, row: dict[str, Any]) -> None:
        if row["comment_id"] is None:  # nothing to know a second copy by
            self.comments[len(self.comments), None] = row
            return
        key = (row["issue_key"], row["comment_id"])
        if key in self.comments:
            self.ctx.skip("duplicate_comment")
            if not _is_newer(row["updated_at"], self.comments[key]["updated_at"]):
                return
        self.comments[key] = row


def split_export(config: GitHubSourceConfig, ctx: StageContext) -> ExportRows:
    """Issues, comments and commits of an export, by the shape of each object."""
    rows = ExportRows(config, ctx)
    for file in export_files(config.path):
        name = export_name(file, config.path)
        for item in read_objects(file, ctx, config.path):
            path = f"{name}:{item.line}"
            try:
                rows.add(item, path)
            except Exception as e:  # one object's failure must not lose the others
                detail = f"{type(e).__name__}: {e}"
                ctx.quarantine("stage_error", source=config.path.name, path=path, detail=detail)
    return rows


def clean_reply(body: pl.Expr) -> pl.Expr:
    """Body without quoted e-mail replies, notification footers and trailing blank space."""
    return body.str.replace_all(REPLY_NOISE, "").str.strip_chars()


_TIME = pl.Datetime("us", "UTC")
# Frames are built with their schema: a column the API left null in every row (a commit's
# `author`) must still be a String column for the bot checks.
_COMMENT_SCHEMA = {
    "issue_key": pl.String,
    "comment_id": pl.Int64,
    "login": pl.String,
    "author_type": pl.String,
    "body": pl.String,
    "created_at": _TIME,
}
_ISSUE_SCHEMA = {
    "issue_key": pl.String, "source": pl.String, "number": pl.Int64, "title": pl.String,
    "body": pl.String, "login": pl.String, "author_type": pl.String, "created_at": _TIME,
    "url": pl.String, "state": pl.String, "labels": pl.List(pl.String),
    "is_pull_request": pl.Boolean,
}  # fmt: skip
_COMMIT_SCHEMA = {
    "sha": pl.String, "source": pl.String, "message": pl.String, "login": pl.String,
    "author_type": pl.String, "created_at": _TIME, "url": pl.String,
}  # fmt: skip


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
    issue_frame = pl.DataFrame(issues, schema=_ISSUE_SCHEMA).with_columns(
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
    frame = pl.DataFrame(commits, schema=_COMMIT_SCHEMA)
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
    rows = split_export(config, ctx)
    issues, comments, commits = (
        list(rows.issues.values()), list(rows.comments.values()), list(rows.commits.values())
    )  # fmt: skip
    for key in sorted({c["issue_key"] for c in comments} - set(rows.issues) - {None}):
        detail = (
            "its issue object is quarantined"
            if key in rows.set_aside
            else "no issue object in the export"
        )
        ctx.quarantine("comment_without_issue", path=key, source=config.path.name, detail=detail)
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
