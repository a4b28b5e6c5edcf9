"""The objects of a GitHub export file, read whatever its layout (one JSON document,
`gh api --paginate` pages back to back, JSONL, JSONL in a `.json` file) with the line each
starts on, and checked field by field against the REST API's shapes, so that a bad object
is quarantined alone with its file, line and field named."""

from __future__ import annotations

import json
import re
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, ValidationError


@dataclass(frozen=True)
class JsonValue:
    line: int
    value: Any
    raw: str  # its text in the file


@dataclass(frozen=True)
class Malformed:
    line: int
    error: str  # json's message, with the line and column where reading failed
    raw: str  # the text from the broken value to where reading resumed


_DECODER = json.JSONDecoder()
_SPACE = re.compile(r"[ \t\r\n]*")
# Where reading resumes after a malformed value: the next line that starts a new one.
_NEXT_VALUE = re.compile(r"\n(?=[\[{])")


class _Lines:
    """Line numbers of increasing offsets, counted as they are asked for."""

    def __init__(self, text: str) -> None:
        self.text, self.offset, self.line = text, 0, 1

    def of(self, offset: int) -> int:
        self.line += self.text.count("\n", self.offset, offset)
        self.offset = offset
        return self.line

    def column(self, offset: int) -> int:
        return offset - self.text.rfind("\n", 0, offset)


def json_values(text: str) -> Iterator[JsonValue | Malformed]:
    """Each top-level value and each element of a top-level array, in file order. After a
    malformed value, reading resumes at the next line that starts with `{` or `[`."""
    lines = _Lines(text)
    pos = _skip_space(text, 0)
    while pos < len(text):
        if text[pos] == "[":
            pos = yield from _array(text, pos, lines)
            continue
        try:
            value, end = _DECODER.raw_decode(text, pos)
        except json.JSONDecodeError as e:
            bad, pos = _malformed(text, pos, e.pos, e.msg, lines)
            yield bad
            continue
        yield JsonValue(lines.of(pos), value, text[pos:end])
        pos = _skip_space(text, end)


def _array(text: str, pos: int, lines: _Lines) -> Generator[JsonValue | Malformed, None, int]:
    """The elements of the array at `pos`, one by one so that each keeps its own line;
    returns where reading goes on."""
    pos = _skip_space(text, pos + 1)
    if text.startswith("]", pos):
        return _skip_space(text, pos + 1)
    while True:
        try:
            value, end = _DECODER.raw_decode(text, pos)
        except json.JSONDecodeError as e:
            bad, resume = _malformed(text, pos, e.pos, e.msg, lines)
            yield bad
            return resume
        yield JsonValue(lines.of(pos), value, text[pos:end])
        pos = _skip_space(text, end)
        if text.startswith(",", pos):
            pos = _skip_space(text, pos + 1)
        elif text.startswith("]", pos):
            return _skip_space(text, pos + 1)
        else:
            bad, resume = _malformed(text, pos, pos, "Expecting ',' or ']'", lines)
            yield bad
            return resume


def _malformed(
    text: str, start: int, error_at: int, message: str, lines: _Lines
) -> tuple[Malformed, int]:
    """The text from `start` to the next line that starts a value, and that line's offset."""
    # from the line break before the error: the value that broke this one may start there
    resume = _NEXT_VALUE.search(text, max(error_at - 1, start))
    end = resume.end() if resume else len(text)
    line = lines.of(start)
    where = f"line {lines.of(error_at)} column {lines.column(error_at)}"
    return Malformed(line, f"{message}: {where}", text[start:end].rstrip("\n")), end


def _skip_space(text: str, pos: int) -> int:
    return _SPACE.match(text, pos).end()  # type: ignore[union-attr]  # `*` always matches


def _as_utc(value: datetime) -> datetime:
    """A timestamp in UTC; one without an offset is taken to be UTC already, as GitHub's are."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _label_names(value: Any) -> Any:
    """Label names from the API's objects, plain names, or one comma-separated string."""
    if value is None:
        return []
    if isinstance(value, str):
        return [name.strip() for name in value.split(",") if name.strip()]
    if not isinstance(value, list):
        raise ValueError(
            f"expected a list of labels or a comma-separated string, got {json_type(value)}"
        )
    names = []
    for index, label in enumerate(value):
        name = label.get("name") if isinstance(label, dict) else label
        if not isinstance(name, str):
            raise ValueError(
                f"item {index}: expected a name or an object with a string 'name', "
                f"got {json_type(label)}"
            )
        names.append(name)
    return names


Timestamp = Annotated[datetime, AfterValidator(_as_utc)]


class _Wire(BaseModel):
    """Fields we read are typed; the many others an export carries are ignored."""

    model_config = ConfigDict(extra="ignore")


class User(_Wire):
    login: str | None = None
    type: str | None = None


class CommentObject(_Wire):
    """An issue comment (`GET /repos/{repo}/issues/{n}/comments`)."""

    id: int | None = None
    issue_url: str | None = None
    user: User | None = None
    body: str | None = None
    created_at: Timestamp | None = None
    updated_at: Timestamp | None = None


class IssueObject(_Wire):
    """An issue or pull request (`GET /repos/{repo}/issues`), comments embedded or counted."""

    number: int
    title: str | None = None
    body: str | None = None
    user: User | None = None
    url: str | None = None
    html_url: str | None = None
    state: str | None = None
    created_at: Timestamp | None = None
    updated_at: Timestamp | None = None
    labels: Annotated[list[str], BeforeValidator(_label_names)] = []
    pull_request: Any = None
    comments: list[Any] | int | None = None


class GitActor(_Wire):
    name: str | None = None
    date: Timestamp | None = None


class CommitDetail(_Wire):
    message: str | None = None
    author: GitActor | None = None


class CommitObject(_Wire):
    """A commit (`GET /repos/{repo}/commits`); `author` is null when the e-mail of the commit
    is linked to no GitHub account."""

    sha: str
    html_url: str | None = None
    commit: CommitDetail
    author: User | None = None


def object_kind(obj: dict[str, Any]) -> type[IssueObject | CommentObject | CommitObject] | None:
    """Which REST object a JSON object is, by the keys that only it has."""
    if "number" in obj and "title" in obj:
        return IssueObject
    if "issue_url" in obj and "body" in obj:
        return CommentObject
    if "sha" in obj and "commit" in obj:
        return CommitObject
    return None


def json_type(value: Any) -> str:
    """The JSON name of a value's type, for messages that must not show the value."""
    names = ((bool, "a boolean"), (int | float, "a number"), (str, "a string"),
             (list, "an array"), (dict, "an object"))  # fmt: skip
    return next((name for kind, name in names if isinstance(value, kind)), "null")


def field_errors(error: ValidationError, prefix: str = "") -> str:
    """`field: what was expected (got <type>)` for each bad field; never the values."""
    parts = []
    for item in error.errors():
        field = prefix
        for part in item["loc"]:
            field += f"[{part}]" if isinstance(part, int) else f".{part}" if field else str(part)
        if item["type"] == "missing":
            parts.append(f"{field}: missing")
            continue
        if item["type"] == "value_error":  # our own validators name what they got
            parts.append(f"{field}: {item['msg'].removeprefix('Value error, ')}")
            continue
        parts.append(f"{field}: {item['msg']} (got {json_type(item['input'])})")
    return "; ".join(parts)
