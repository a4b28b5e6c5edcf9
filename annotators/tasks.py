"""Annotation tasks: which records each applies to, and its prompt templates (files in
`prompts/`, versioned by their hash, which is recorded with every annotation)."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from importlib.resources import files
from string import Template
from typing import Any, Final

from curation.errors import ConfigError

# task name -> the record kind it reads
TASK_KINDS: Final[dict[str, str]] = {
    "instruction_for_code": "code",
    "qa_from_issue": "issue",
    "explain_fix_from_commit": "commit",
}
# The judge of a finetune's evaluation compares two answers to one instruction; it reads
# generations, not records.
JUDGE_TASK: Final = "judge_pair"
# task name -> the JSON keys its answer must hold (the first becomes `instruction`, the
# second `response`; for code the response is the code itself)
TASK_FIELDS: Final[dict[str, tuple[str, ...]]] = {
    "instruction_for_code": ("instruction",),
    "qa_from_issue": ("question", "answer"),
    "explain_fix_from_commit": ("question", "answer"),
    JUDGE_TASK: ("better", "reason"),
}
_FENCED = re.compile(r"```(?:json)?\s*(\{.*\})\s*```", re.DOTALL)


class MalformedOutput(ValueError):
    """A model answer that is not the JSON object its task asks for."""


@dataclass(frozen=True)
class Task:
    name: str
    kind: str
    system: str
    user: Template  # `$name` placeholders: code written with braces stays untouched
    prompt_hash: str

    @property
    def fields(self) -> tuple[str, ...]:
        return TASK_FIELDS[self.name]

    def messages(self, record: dict[str, Any]) -> list[dict[str, str]]:
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
        return self.render(values)

    def render(self, values: dict[str, str]) -> list[dict[str, str]]:
        """The system prompt and the user template filled with `values`."""
        return [
            {"role": "system", "content": self.system},
            {"role": "user", "content": self.user.substitute(values)},
        ]

    def parse(self, text: str) -> dict[str, str]:
        """The answer's fields, or MalformedOutput saying what is wrong with it.

        Models often wrap JSON in a markdown fence even when asked not to; that is accepted.
        """
        fenced = _FENCED.search(text)
        try:
            data = json.loads(fenced.group(1) if fenced else text)
        except json.JSONDecodeError as e:
            raise MalformedOutput(f"not JSON: {e.msg} at char {e.pos}") from None
        if not isinstance(data, dict):
            raise MalformedOutput(f"expected a JSON object, got {type(data).__name__}")
        missing = [f for f in self.fields if not isinstance(data.get(f), str)]
        if missing:
            raise MalformedOutput(f"missing string field(s): {', '.join(missing)}")
        return {f: data[f].strip() for f in self.fields}

    def retry_messages(
        self, messages: list[dict[str, str]], answer: str, error: str
    ) -> list[dict[str, str]]:
        """The conversation once more, with the bad answer and what to fix: one retry."""
        keys = ", ".join(f'"{f}"' for f in self.fields)
        return [
            *messages,
            {"role": "assistant", "content": answer},
            {"role": "user", "content": f"That answer was not usable ({error}). Reply with "
             f"one JSON object with the string keys {keys} and nothing else."},
        ]  # fmt: skip

    def columns(self, answer: dict[str, str], record: dict[str, Any]) -> tuple[str, str | None]:
        """(instruction, response) for the record schema."""
        if self.name == "instruction_for_code":
            return answer["instruction"], record.get("content_clean")
        return answer["question"], answer["answer"]


def load_task(name: str) -> Task:
    """A task with its templates read from the package's prompt files."""
    if name not in TASK_FIELDS:
        raise ConfigError(f"unknown annotation task {name!r}; tasks: {', '.join(TASK_KINDS)}")
    prompts = files("annotators").joinpath("prompts")
    system = prompts.joinpath(f"{name}.system.txt").read_text()
    user = prompts.joinpath(f"{name}.user.txt").read_text()
    digest = hashlib.sha256(f"{system}\0{user}".encode()).hexdigest()[:16]
    return Task(name, TASK_KINDS.get(name, "generation"), system, Template(user), digest)
