"""Annotation tasks: which records each applies to, its prompt templates (files in
`prompts/`, versioned by their hash, which is recorded with every annotation), and the answer
protocol: how the answer is asked for and read back.

Protocols (`annotate.protocol`):
- `json_schema`: the server enforces a JSON object with the task's fields (OpenAI structured
  outputs, Gemini's response schema, guided decoding on vLLM, llama.cpp, SGLang, Ollama);
- `json_object`: the older JSON mode, which enforces JSON but not its keys;
- `text`: plain text any model can keep, even a 135M one: the answer alone for one field,
  `Field: value` lines for several, shown by worked examples and cut at a blank line.
Every answer is read tolerantly whatever was asked for: JSON alone, in a fence or in prose,
`<field>` tags, labelled lines, or the plain text itself.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from string import Template
from typing import Any, Final

import polars as pl

from curation.errors import ConfigError

# task name -> the record kind it reads
TASK_KINDS: Final[dict[str, str]] = {
    "instruction_for_code": "code",
    "qa_from_issue": "issue",
    "explain_fix_from_commit": "commit",
}
# The judge of a finetune's evaluation compares two answers to one instruction; the judge of
# annotations scores an instruction against its code. They read generations, not records.
JUDGE_TASK: Final = "judge_pair"
INSTRUCTION_JUDGE_TASK: Final = "judge_instruction"
# task name -> the answer's fields (the first becomes `instruction`, the second `response`;
# for code the response is the code itself)
TASK_FIELDS: Final[dict[str, tuple[str, ...]]] = {
    "instruction_for_code": ("instruction",),
    "qa_from_issue": ("question", "answer"),
    "explain_fix_from_commit": ("question", "answer"),
    JUDGE_TASK: ("better", "reason"),
    INSTRUCTION_JUDGE_TASK: ("score", "reason"),
}
PROTOCOLS: Final = ("json_schema", "json_object", "text")
# A text answer of one field ends at its first blank line: small models ramble on after it.
TEXT_STOP: Final = ("\n\n",)
# What small models put before a one-field answer: "Sure! Here is the request:", "Request:"
_INTRO = re.compile(
    r"^(?:(?:sure|okay|certainly)\b[^\n]*?[.!:]\s*)?(?:here(?:'s| is)\b[^\n]*?:\s*)?"
    r"(?:\**(?:instruction|request|prompt|task)\**\s*:\**\s*)?",
    re.IGNORECASE,
)
_QUOTES = "\"'`“”‘’"


class MalformedOutput(ValueError):
    """A model answer that does not hold what its task asks for."""


@dataclass(frozen=True)
class AnswerFormat:
    """What a request asks of the server, per protocol: a schema to enforce, JSON mode, or
    stop sequences for plain text."""

    protocol: str
    schema: dict[str, Any] | None = None
    stop: tuple[str, ...] = ()

    @property
    def json(self) -> bool:
        return self.protocol != "text"


@dataclass(frozen=True)
class Example:
    """A worked example shown before the record under the text protocol."""

    values: dict[str, str]
    answer: dict[str, str]


@dataclass(frozen=True)
class Task:
    name: str
    kind: str
    system: str
    user: Template  # `$name` placeholders: code written with braces stays untouched
    examples: tuple[Example, ...]
    prompt_hash: str

    @property
    def fields(self) -> tuple[str, ...]:
        return TASK_FIELDS[self.name]

    def messages(self, record: dict[str, Any], protocol: str) -> list[dict[str, str]]:
        """Chat messages for one record; only its PII-stripped text is ever used."""
        code = record.get("content_clean")
        if code is None:
            raise ConfigError(
                f"record {record.get('id')} has no content_clean: run the pii stage first"
            )
        values = {
            "code": code,
            "language": record.get("language") or "",
            "path": record.get("path") or "",
            "source": record.get("source") or "",
        }
        return self.render(values, protocol)

    def render(self, values: dict[str, str], protocol: str) -> list[dict[str, str]]:
        """The system prompt with the protocol's answer form, the worked examples (text
        protocol only: models that enforce JSON need none), and the user template."""
        _check_protocol(protocol)
        messages = [{"role": "system", "content": f"{self.system.rstrip()}\n{self.form(protocol)}"}]
        if protocol == "text":
            for example in self.examples:
                messages.append({"role": "user", "content": self.user.substitute(example.values)})
                messages.append({"role": "assistant", "content": self.written(example.answer)})
        messages.append({"role": "user", "content": self.user.substitute(values)})
        return messages

    def form(self, protocol: str) -> str:
        """The line of the system prompt that says how to answer."""
        if protocol != "text":
            keys = ", ".join(f'"{f}": "..."' for f in self.fields)
            return f"Answer with JSON only: {{{keys}}}."
        if len(self.fields) == 1:
            field = self.fields[0]
            return f"Reply with the {field} only, as plain text, nothing before or after it."
        lines = "\n".join(f"{f.capitalize()}: ..." for f in self.fields)
        return f"Reply in plain text, in exactly this form:\n{lines}"

    def written(self, answer: dict[str, str]) -> str:
        """An answer as the text protocol writes it."""
        if len(self.fields) == 1:
            return answer[self.fields[0]]
        return "\n".join(f"{f.capitalize()}: {answer[f]}" for f in self.fields)

    def answer_format(self, protocol: str) -> AnswerFormat:
        """What to ask of the server for this task under `protocol`."""
        _check_protocol(protocol)
        if protocol == "json_schema":
            return AnswerFormat(protocol, schema=self.schema())
        if protocol == "text" and len(self.fields) == 1:
            return AnswerFormat(protocol, stop=TEXT_STOP)
        return AnswerFormat(protocol)

    def schema(self) -> dict[str, Any]:
        """The answer as a JSON schema, in the strict form OpenAI's structured outputs need."""
        return {
            "type": "object",
            "properties": {f: {"type": "string"} for f in self.fields},
            "required": list(self.fields),
            "additionalProperties": False,
        }

    def parse(self, text: str) -> dict[str, str]:
        """The answer's fields, or MalformedOutput saying what is wrong with it.

        Read tolerantly, whatever protocol asked for it: a JSON object (alone, fenced, or
        inside prose), `<field>` tags, `Field:` lines, or for one field the plain text.
        """
        stripped = text.strip()
        if not stripped:
            raise MalformedOutput("empty answer")
        data = self._json(stripped)
        if data is None:
            data = self._tagged(stripped) or self._labelled(stripped)
        if data is None and len(self.fields) == 1:
            data = {self.fields[0]: self._plain(stripped)}
        if data is None:
            wanted = ", ".join(f"{f.capitalize()}:" for f in self.fields)
            raise MalformedOutput(f"no JSON object and no {wanted} lines")
        missing = [f for f in self.fields if not isinstance(data.get(f), str)]
        if missing:
            raise MalformedOutput(f"missing string field(s): {', '.join(missing)}")
        return {f: data[f].strip() for f in self.fields}

    def _json(self, text: str) -> dict[str, Any] | None:
        """The JSON object in `text`; None when it has none; MalformedOutput when it starts
        one that does not parse (a truncated or broken answer, worth asking again)."""
        keys = "|".join(re.escape(f) for f in self.fields)
        start = re.search(r"\{\s*\"(?:" + keys + r")\"\s*:", text)
        if start is None:
            if text.startswith(("{", "[")):
                try:
                    data = json.loads(text)
                except json.JSONDecodeError as e:
                    raise MalformedOutput(f"not JSON: {e.msg} at char {e.pos}") from None
                if not isinstance(data, dict):
                    raise MalformedOutput(f"expected a JSON object, got {type(data).__name__}")
                return data
            return None
        try:
            data, _ = json.JSONDecoder().raw_decode(text, start.start())
        except json.JSONDecodeError as e:
            raise MalformedOutput(f"broken JSON: {e.msg} at char {e.pos}") from None
        return data

    def _tagged(self, text: str) -> dict[str, str] | None:
        found = {}
        for f in self.fields:
            match = re.search(rf"<{f}>(.*?)(?:</{f}>|$)", text, re.DOTALL | re.IGNORECASE)
            if match:
                found[f] = match.group(1)
        return found if len(found) == len(self.fields) else None

    def _labelled(self, text: str) -> dict[str, str] | None:
        """`Question: ...` / `Answer: ...` sections (bold or not), each up to the next."""
        names = "|".join(re.escape(f) for f in self.fields)
        label = re.compile(rf"^[ \t]*(?:\*\*|#+ *)?({names})(?:\*\*)?[ \t]*:(?:\*\*)?[ \t]*",
                           re.IGNORECASE | re.MULTILINE)  # fmt: skip
        marks = list(label.finditer(text))
        if not marks:
            return None
        found = {}
        for mark, following in zip(marks, [*marks[1:], None], strict=True):
            end = following.start() if following else len(text)
            found.setdefault(mark.group(1).lower(), text[mark.end() : end])
        return found if len(found) == len(self.fields) else None

    def _plain(self, text: str) -> str:
        """A one-field answer given as plain text: its introduction ("Sure! Here is the
        request:"), quotes and any code after it dropped; code alone is not an answer."""
        fence = text.find("```")
        if fence == 0:
            raise MalformedOutput("a code block, not the text asked for")
        if fence > 0:
            text = text[:fence]
        text = _INTRO.sub("", text.strip(), count=1).strip()
        if len(text) > 1 and text[0] in _QUOTES and text[-1] in _QUOTES:
            text = text[1:-1].strip()
        if not text:
            raise MalformedOutput("empty answer")
        return text

    def retry_messages(
        self, messages: list[dict[str, str]], answer: str, error: str, protocol: str
    ) -> list[dict[str, str]]:
        """The conversation once more, with the bad answer and what to fix: one retry."""
        if protocol != "text":
            keys = ", ".join(f'"{f}"' for f in self.fields)
            fix = f"Reply with one JSON object with the string keys {keys} and nothing else."
        else:
            fix = self.form("text")
        return [
            *messages,
            {"role": "assistant", "content": answer},
            {"role": "user", "content": f"That answer was not usable ({error}). {fix}"},
        ]

    def columns(self, answer: dict[str, str], record: dict[str, Any]) -> tuple[str, str | None]:
        """(instruction, response) for the record schema."""
        if self.name == "instruction_for_code":
            return answer["instruction"], record.get("content_clean")
        return answer["question"], answer["answer"]


def _check_protocol(protocol: str) -> None:
    if protocol not in PROTOCOLS:
        raise ConfigError(
            f"answer protocol {protocol!r}: one of {', '.join(PROTOCOLS)} "
            "(resolve annotate.protocol = 'auto' first)"
        )


def task_kind() -> pl.Expr:
    """The kind a task reads a record as: a pair without an instruction is code to write
    one for; a pair that has one needs none (None: no task reads it)."""
    kind = pl.col("kind")
    return (
        pl.when(kind != "pair")
        .then(kind)
        .when(pl.col("instruction").is_null())
        .then(pl.lit("code"))
    )


@cache  # read once per process: providers look a task's answer format up per request
def load_task(name: str) -> Task:
    """A task with its templates and worked examples read from the package's prompt files."""
    if name not in TASK_FIELDS:
        raise ConfigError(f"unknown annotation task {name!r}; tasks: {', '.join(TASK_KINDS)}")
    prompts = files("annotators").joinpath("prompts")
    system = prompts.joinpath(f"{name}.system.txt").read_text()
    user = prompts.joinpath(f"{name}.user.txt").read_text()
    examples_file = prompts.joinpath(f"{name}.examples.json")
    examples_text = examples_file.read_text() if examples_file.is_file() else "[]"
    examples = tuple(Example(e["values"], e["answer"]) for e in json.loads(examples_text))
    digest = hashlib.sha256(f"{system}\0{user}\0{examples_text}".encode()).hexdigest()[:16]
    return Task(name, TASK_KINDS.get(name, "generation"), system, Template(user), examples, digest)
