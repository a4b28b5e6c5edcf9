"""Checks on each annotation, recorded as `quality_flags` and shown to reviewers.

They catch what ruined the seed project's finetune: answers that copy the code, restate it
line by line, or describe it instead of asking for it; plus empty, refusing, wrong-language
and over- or under-long answers, and answers that mention redacted values.
"""

from __future__ import annotations

import re
from typing import Final

from curation.code_regions import strip_comments

MIN_WORDS: Final = 4
MAX_WORDS: Final = 250
COPY_SHARE: Final = 0.5  # share of the answer's word 5-grams found verbatim in the code
MIN_STEPS: Final = 4  # numbered or bulleted lines that make a line-by-line walk-through

_PLACEHOLDER = re.compile(r"<[A-Z][A-Z_]*(?:_\d+)?>")
_REFUSAL = re.compile(
    r"\b(?:I(?:'m| am) sorry|I can(?:'|no)t (?:help|assist|provide)|I'm unable|as an AI\b|"
    r"I (?:cannot|won't) (?:help|do that))",
    re.IGNORECASE,
)
_DESCRIBES = re.compile(
    r"^\s*(?:this|the (?:above|given|following)) (?:code|function|script|module|class|program|"
    r"snippet|file)\b",
    re.IGNORECASE,
)
_STEP = re.compile(r"^\s*(?:\d+[.)]|[-*•]|(?:first|then|next|finally)\b)", re.IGNORECASE | re.M)
_LINE_REF = re.compile(r"\bline \d+\b", re.IGNORECASE)
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\d+|\S")
# The programming languages a request may name; a request naming another one than the
# record's is flagged.
LANGUAGE_WORDS: Final[dict[str, str]] = {
    "python": "python", "javascript": "javascript", "typescript": "typescript", "java": "java",
    "c++": "cpp", "golang": "go", "rust": "rust", "ruby": "ruby", "php": "php", "kotlin": "kotlin",
    "swift": "swift", "scala": "scala", "sas": "sas", "sql": "sql", "cypher": "cypher",
    "bash": "shell", "shell": "shell", "c#": "csharp",
}  # fmt: skip
_LANGUAGE = re.compile(
    r"(?<![\w+#])(" + "|".join(re.escape(w) for w in LANGUAGE_WORDS) + r")(?![\w+#])", re.I
)
# languages whose names also cover another's ("SQL" in a SAS program is PROC SQL)
_COMPATIBLE: Final[dict[str, set[str]]] = {
    "javascript": {"typescript"}, "typescript": {"javascript"}, "sas": {"sql"},
    "cpp": {"c"}, "c": {"cpp"}, "shell": set(),
}  # fmt: skip


def _shingles(text: str, n: int = 5) -> set[tuple[str, ...]]:
    words = _WORD.findall(text)
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def copies_code(answer: str, code: str, language: str | None) -> bool:
    """Most of the answer is the code's own text (its comments may be quoted: they are what
    the code is for, in words)."""
    shingles = _shingles(answer)
    if not shingles:
        return False
    return len(shingles & _shingles(strip_comments(code, language))) / len(shingles) >= COPY_SHARE


def restates_code(answer: str) -> bool:
    """A walk-through or a description of the code instead of a request for it."""
    steps = len(_STEP.findall(answer))
    return steps >= MIN_STEPS or bool(_LINE_REF.search(answer)) or bool(_DESCRIBES.match(answer))


def wrong_language(answer: str, language: str | None) -> bool:
    """The answer names another programming language, or is mostly in a non-Latin script."""
    letters = [c for c in answer if c.isalpha()]
    if letters and sum(c.isascii() for c in letters) / len(letters) < 0.8:
        return True
    if not language:
        return False
    named = {LANGUAGE_WORDS[m.lower()] for m in _LANGUAGE.findall(answer)}
    allowed = {language} | _COMPATIBLE.get(language, set())
    return bool(named) and not named & allowed


def quality_flags(
    instruction: str, response: str | None, code: str | None, language: str | None
) -> list[str]:
    """Every flag that applies to one annotation; an empty list means none did.

    `code` is the code the instruction asks for; None for tasks over prose (issues), whose
    `response` is the model's answer and is checked with the instruction.
    """
    text = f"{instruction}\n{response or ''}".strip()
    if not instruction.strip():
        return ["empty"]
    flags = []
    words = len(instruction.split())
    if words < MIN_WORDS:
        flags.append("too_short")
    if words > MAX_WORDS:
        flags.append("too_long")
    if code is not None and copies_code(instruction, code, language):
        flags.append("copies_code")
    if code is not None and restates_code(instruction):
        flags.append("restates_code")
    if wrong_language(instruction, language):
        flags.append("wrong_language")
    if _PLACEHOLDER.search(text):
        flags.append("mentions_placeholder")
    if _REFUSAL.search(text):
        flags.append("refuses")
    return flags
