"""Annotation tasks: which records each applies to, and its prompt templates (files in
`prompts/`, versioned by their hash, which is recorded with every annotation)."""

from __future__ import annotations

import hashlib
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


@dataclass(frozen=True)
class Task:
    name: str
    kind: str
    system: str
    user: Template  # `$name` placeholders: code written with braces stays untouched
    prompt_hash: str

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
        return [
            {"role": "system", "content": self.system},
            {"role": "user", "content": self.user.substitute(values)},
        ]


def load_task(name: str) -> Task:
    """A task with its templates read from the package's prompt files."""
    if name not in TASK_KINDS:
        raise ConfigError(f"unknown annotation task {name!r}; tasks: {', '.join(TASK_KINDS)}")
    prompts = files("annotators").joinpath("prompts")
    system = prompts.joinpath(f"{name}.system.txt").read_text()
    user = prompts.joinpath(f"{name}.user.txt").read_text()
    digest = hashlib.sha256(f"{system}\0{user}".encode()).hexdigest()[:16]
    return Task(name, TASK_KINDS[name], system, Template(user), digest)
