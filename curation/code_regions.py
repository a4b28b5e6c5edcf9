"""Natural-language regions of source code: comments, docstrings and string literals.

The PII stage runs NER and its prose recognizers only here, never over code tokens (on
code, spaCy reads `self.as` as a URL and `Py_DECREF` as a person); dedup can drop the
comments before shingling. One scanner per family of languages, each an alternation that
consumes strings and comments left to right so a `#` inside a string is not a comment.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
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


def comment_spans(text: str, language: str | None) -> Iterator[tuple[int, int]]:
    """(start, end) of each comment (not string literals) of a source file."""
    if language is None:
        return
    for start, end in natural_language_regions(text, language):
        if text[start:end].lstrip().startswith(_COMMENT_STARTS):
            yield start, end


def strip_comments(text: str, language: str | None) -> str:
    """The text with its comments removed (prose is returned as it is)."""
    parts, position = [], 0
    for start, end in comment_spans(text, language):
        parts.append(text[position:start])
        position = end
    parts.append(text[position:])
    return "".join(parts)
