"""Natural-language regions of source code: comments, docstrings and string literals.

The PII stage runs NER and its prose recognizers only here, never over code tokens (on
code, spaCy reads `self.as` as a URL and `Py_DECREF` as a person); dedup can drop the
comments before shingling. One scanner per family of languages, each an alternation that
consumes strings and comments left to right so a `#` inside a string is not a comment.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Final

_C_STRINGS = r'"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n]){2,}\''
_SCANNERS: Final[dict[str, re.Pattern[str]]] = {
    "python": re.compile(
        r"#[^\n]*"
        r"|[rRbBuUfF]{0,2}(?:'''[\s\S]*?'''|\"\"\"[\s\S]*?\"\"\")"
        r"|[rRbBuUfF]{0,2}(?:'(?:\\.|[^'\\\n])*'|\"(?:\\.|[^\"\\\n])*\")"
    ),
    "c_like": re.compile(r"//[^\n]*|/\*[\s\S]*?\*/|" + _C_STRINGS + r"|`(?:\\.|[^`\\])*`"),
    "hash": re.compile(r"#[^\n]*|\"(?:\\.|[^\"\\])*\"|'[^'\n]*'"),
    "sql": re.compile(r"--[^\n]*|/\*[\s\S]*?\*/|'(?:''|[^'])*'|\"(?:\"\"|[^\"])*\""),
    "sas": re.compile(r"/\*[\s\S]*?\*/|^[ \t]*\*[^;]*;|\"(?:\"\"|[^\"])*\"|'(?:''|[^'])*'", re.M),
}
_FAMILY: Final[dict[str, str]] = {
    "python": "python",
    "c": "c_like", "cpp": "c_like", "java": "c_like", "javascript": "c_like",
    "typescript": "c_like", "go": "c_like", "rust": "c_like", "csharp": "c_like",
    "kotlin": "c_like", "swift": "c_like", "scala": "c_like", "php": "c_like",
    "cypher": "c_like",
    "shell": "hash", "ruby": "hash", "perl": "hash", "r": "hash", "julia": "hash",
    "sql": "sql", "lua": "sql",
    "sas": "sas",
}  # fmt: skip


def natural_language_regions(text: str, language: str | None) -> Iterator[tuple[int, int]]:
    """(start, end) of each comment or string literal; prose (no language) is one region."""
    scanner = _SCANNERS.get(_FAMILY.get(language or "", ""))
    if scanner is None:
        if language is None:
            yield 0, len(text)
            return
        scanner = _SCANNERS["c_like"]  # a reasonable guess for an unlisted language
    for match in scanner.finditer(text):
        yield match.span()


_COMMENT_STARTS = ("#", "//", "/*", "--", "*")
_LINE_COMMENTS = ("#", "//", "--")


def comment_spans(text: str, language: str | None) -> Iterator[tuple[int, int]]:
    """(start, end) of each comment (not string literals) of a source file."""
    if language is None:
        return
    for start, end in natural_language_regions(text, language):
        if text[start:end].lstrip().startswith(_COMMENT_STARTS):
            yield start, end


def strip_comments(text: str, language: str | None) -> str:
    """The text with its comments removed (prose is returned as it is)."""
    return _without(text, comment_spans(text, language))


def _without(text: str, spans: Iterable[tuple[int, int]]) -> str:
    """The text with the (ordered, disjoint) spans cut out."""
    parts, position = [], 0
    for start, end in spans:
        parts.append(text[position:start])
        position = end
    parts.append(text[position:])
    return "".join(parts)


# Words that only licence and copyright notices use at the top of a file.
_LICENSE_MARKERS = re.compile(
    r"copyright|\(c\)\s*\d|©|licen[cs]e|spdx-|all rights reserved|permission is hereby granted"
    r"|redistribution and use|public domain",
    re.IGNORECASE,
)


def license_header_spans(text: str, language: str | None) -> list[tuple[int, int]]:
    """(start, end) of each leading comment block that holds licence or copyright text.

    The leading blocks are the comments before the first code (in Python, a module
    docstring too), after a `#!` line: a run of line comments on adjacent lines is one
    block, a block comment or docstring is one of its own. A block counts when a licence
    or copyright marker is in it (Apache, MIT, BSD, GPL, SPDX...).
    """
    if language is None:
        return []
    python = _FAMILY.get(language) == "python"
    position = text.find("\n") + 1 if text.startswith("#!") else 0
    blocks: list[list[int]] = []
    joins = False  # whether the last block is a run of line comments
    for start, end in natural_language_regions(text, language):
        if start < position:
            continue  # inside the `#!` line
        gap = text[position:start]
        region = text[start:end].lstrip()
        if gap.strip() or not (region.startswith(_COMMENT_STARTS) or python):
            break  # code (or, outside Python, a string literal): the header is over
        line_comment = region.startswith(_LINE_COMMENTS)
        if joins and line_comment and gap.count("\n") <= 1:
            blocks[-1][1] = end
        else:
            blocks.append([start, end])
        joins, position = line_comment, end
    return [(s, e) for s, e in blocks if _LICENSE_MARKERS.search(text, s, e)]


def strip_license_header(text: str, language: str | None) -> str:
    """The text without its leading licence and copyright blocks. A file that is nothing
    but such a header is returned whole: stripped, every one would compare as empty."""
    stripped = _without(text, license_header_spans(text, language))
    return stripped if stripped.strip() else text
