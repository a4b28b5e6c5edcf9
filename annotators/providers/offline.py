"""The offline annotator: the request a file answers, written from its own docstrings and
comments. No network, no cost; the embedded default that `make demo` runs.

Only files that document themselves get an instruction; the rest are `skipped`, never
given an invented one.
"""

from __future__ import annotations

import ast
import json
import re
from typing import Any

from annotators.providers.base import Params, Prompt, Reply, Unanswerable
from annotators.quality import LICENCE_WORDS
from curation.code_regions import comment_spans

# A prompt's record fields that hold the answer written ahead, or why there is none.
PREPARED, SKIP_REASON = "offline_reply", "offline_skip_reason"
LANGUAGE_NAMES = {
    "python": "Python", "c": "C", "cpp": "C++", "java": "Java", "javascript": "JavaScript",
    "typescript": "TypeScript", "go": "Go", "rust": "Rust", "sas": "SAS", "sql": "SQL",
    "cypher": "Cypher", "shell": "shell",
}  # fmt: skip
# Comments that say nothing about what the code does.
_BOILERPLATE = re.compile(
    r"SPDX-|copyright|licen[cs]e|generated|produced by|do not edit|never edit|-\*-|^!|eslint|"
    r"noqa|pragma|TODO|FIXME|XXX|HACK|NOTE\b",
    re.IGNORECASE,
)
_PLACEHOLDER = re.compile(r"<[A-Z][A-Z_]*(?:_\d+)?>")
_COMMENT_MARKS = re.compile(r"^\s*(?:/\*+|\*+/?|//+|#+|--+)\s?|\s*\*+/\s*$", re.MULTILINE)
# separator rules (---- or ====) and Doxygen commands (\brief, @file) are layout, not words
_DOC_MARKUP = re.compile(r"[-=*#~_/]{4,}|[\\@](?:brief|file|details|defgroup|ingroup|addtogroup)\b")
# "This is a private header for X", "This module provides X": the X is the purpose
_SELF_REFERENCE = re.compile(
    r"^(?:this|the) (?:(?:file|header|module|library|package) )?"
    r"(?:is|contains|provides|defines|implements|declares|holds)\s+",
    re.IGNORECASE,
)
_LINE_COMMENTS = ("//", "#", "--")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s")
# Verbs a summary line starts with ("Match payments...", "Computes totals..."): such a line
# reads as "... to match payments", "... that computes totals", a noun phrase as "for ...".
VERBS = frozenset({
    "add", "allow", "apply", "build", "calculate", "check", "compare", "compute", "convert",
    "count", "create", "declare", "decode", "define", "deploy", "encode", "expose", "fetch",
    "filter", "find", "format", "generate", "get", "handle", "implement", "load", "make",
    "manage", "map", "match", "merge", "open", "pair", "parse", "print", "provide", "read",
    "register", "remove", "render", "represent", "return", "run", "send", "serve", "set",
    "sort", "split", "stop", "store", "test", "track", "update", "validate", "wrap", "write",
})  # fmt: skip


def first_sentence(text: str) -> str | None:
    """The first sentence of a docstring or comment, without redacted values; None if empty."""
    paragraph = " ".join(text.strip().split("\n\n")[0].split())
    sentence = _SENTENCE_END.split(paragraph, maxsplit=1)[0].strip()
    if not sentence or _PLACEHOLDER.search(sentence) or _BOILERPLATE.search(sentence):
        return None
    return sentence.rstrip(".:") + "."


def _lower_first(sentence: str) -> str:
    # keep acronyms (I2C, HTTP) and identifiers as written
    word = sentence.split(" ", 1)[0]
    return sentence if word[1:2].isupper() or "_" in word else sentence[:1].lower() + sentence[1:]


def _purpose(sentence: str) -> str:
    """A summary sentence joined to a request: 'to match...', 'that computes...', 'for ...'."""
    phrase = _SELF_REFERENCE.sub("", _lower_first(sentence).rstrip("."), count=1)
    first = phrase.split(" ", 1)[0]
    if first in VERBS:
        return f"to {phrase}"
    if first.endswith("s") and (first[:-1] in VERBS or first[:-2] in VERBS):
        return f"that {phrase}"
    return f"for {phrase}"


def python_instruction(code: str) -> str | None:
    """A request built from a module's docstring and its documented public definitions."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return None
    summary = first_sentence(ast.get_docstring(tree) or "")
    parts = []
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            continue
        doc = first_sentence(ast.get_docstring(node) or "")
        if node.name.startswith("_") or doc is None:
            continue
        if isinstance(node, ast.ClassDef):
            name = f"a class `{node.name}`"
        else:
            args = ", ".join(a.arg for a in node.args.args)
            name = f"a function `{node.name}({args})`"
        parts.append(f"{name} ({_lower_first(doc).rstrip('.')})")
    if summary is None and not parts:
        return None
    request = "Write a Python module"
    request += f" {_purpose(summary)}" if summary else ""
    if parts:
        request += ". It should provide " + "; ".join(parts)
    return request + "."


def header_comments(code: str, language: str | None) -> list[str]:
    """The comments before the file's first line of code (preprocessor lines aside), each run
    of line comments on consecutive lines joined into one block: what the file says about
    itself. A `//` licence header is one block, not twelve one-line comments; comments
    further down are about one definition, not the file."""
    blocks: list[str] = []
    previous_end, previous_marker = 0, None
    for start, end in comment_spans(code, language):
        gap = code[previous_end:start]
        if any(line.strip() and not line.lstrip().startswith("#") for line in gap.splitlines()):
            break
        comment = code[start:end].lstrip()
        marker = next((m for m in _LINE_COMMENTS if comment.startswith(m)), None)
        text = _DOC_MARKUP.sub(" ", _COMMENT_MARKS.sub(" ", comment))
        if blocks and marker and marker == previous_marker and gap.count("\n") <= 1:
            blocks[-1] += "\n" + text
        else:
            blocks.append(text)
        previous_end, previous_marker = end, marker
    return blocks


def comment_instruction(code: str, language: str | None) -> str | None:
    """A request built from the first comment block that describes the file; licence and
    copyright headers are never used."""
    for block in header_comments(code, language):
        if LICENCE_WORDS.search(block):
            continue
        sentence = first_sentence(block)
        if sentence is not None and len(sentence.split()) >= 3:
            name = LANGUAGE_NAMES.get(language or "", language or "source")
            return f"Write {name} code {_purpose(sentence)}."
    return None


def offline_reply(task: str, record: dict[str, Any]) -> Reply:
    """The offline annotator's answer for a record (its content_clean and language), or
    Unanswerable when it has nothing to say."""
    if task != "instruction_for_code":
        raise Unanswerable(f"the offline annotator does not do {task}")
    code = record.get("content_clean") or ""
    language = record.get("language")
    instruction = (
        python_instruction(code) if language == "python" else None
    ) or comment_instruction(code, language)
    if instruction is None:
        raise Unanswerable("no docstring or descriptive comment to write an instruction from")
    return Reply(json.dumps({"instruction": instruction}), 0, 0)


class OfflineProvider:
    name = "offline"

    async def complete(self, prompt: Prompt, params: Params) -> Reply:
        # The stage writes each answer where its record is (annotators.prepare): the prompt
        # then carries that answer, and no code, to the process that books it.
        if PREPARED in prompt.record:
            if prompt.record[PREPARED] is None:
                raise Unanswerable(prompt.record[SKIP_REASON])
            return Reply(prompt.record[PREPARED], 0, 0)
        return offline_reply(prompt.task, prompt.record)

    async def aclose(self) -> None:
        return None
