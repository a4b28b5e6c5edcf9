"""Which language a file is written in, from its name or shebang."""

from __future__ import annotations

import re
from typing import Final

from curation.errors import ConfigError

EXTENSIONS: Final[dict[str, str]] = {
    ".c": "c", ".h": "c",
    ".cc": "cpp", ".cpp": "cpp", ".cxx": "cpp", ".c++": "cpp",
    ".hh": "cpp", ".hpp": "cpp", ".hxx": "cpp", ".ipp": "cpp",
    ".py": "python", ".pyw": "python", ".pyi": "python",
    ".java": "java",
    ".js": "javascript", ".mjs": "javascript", ".cjs": "javascript", ".jsx": "javascript",
    ".ts": "typescript", ".tsx": "typescript", ".mts": "typescript", ".cts": "typescript",
    ".go": "go",
    ".rs": "rust",
    ".sas": "sas",
    ".sql": "sql", ".psql": "sql", ".ddl": "sql",
    ".cypher": "cypher", ".cyp": "cypher", ".cql": "cypher",
    ".sh": "shell", ".bash": "shell", ".zsh": "shell", ".ksh": "shell",
    ".rb": "ruby", ".kt": "kotlin", ".kts": "kotlin", ".cs": "csharp", ".php": "php",
    ".scala": "scala", ".r": "r", ".lua": "lua", ".pl": "perl", ".pm": "perl",
    ".swift": "swift", ".jl": "julia",
}  # fmt: skip

FILENAMES: Final[dict[str, str]] = {
    ".bashrc": "shell", ".bash_profile": "shell", ".profile": "shell", ".zshrc": "shell",
    "configure": "shell", "gradlew": "shell", "SConstruct": "python", "SConscript": "python",
    "Rakefile": "ruby", "Gemfile": "ruby",
}  # fmt: skip

# Interpreter named on a `#!` line (after `env` where present) -> language.
INTERPRETERS: Final[dict[str, str]] = {
    "sh": "shell", "bash": "shell", "zsh": "shell", "ksh": "shell", "dash": "shell",
    "python": "python", "python2": "python", "python3": "python",
    "node": "javascript", "nodejs": "javascript", "deno": "typescript",
    "ruby": "ruby", "perl": "perl", "lua": "lua", "Rscript": "r",
}  # fmt: skip

LANGUAGES: Final = frozenset(EXTENSIONS.values()) | frozenset(FILENAMES.values())

ALIASES: Final[dict[str, str]] = {
    "c++": "cpp", "cplusplus": "cpp", "py": "python", "js": "javascript", "ts": "typescript",
    "golang": "go", "rs": "rust", "sh": "shell", "bash": "shell", "c#": "csharp",
    "neo4j": "cypher", "opencypher": "cypher", "postgresql": "sql", "mysql": "sql",
}  # fmt: skip

_SHEBANG = re.compile(rb"^#!\s*(?:\S*/)?(?:env\s+(?:-\S+\s+)*)?([A-Za-z][\w.+-]*)")


def canonical_language(name: str) -> str:
    """Map a user-facing language name (any case, common aliases) to ours, or raise."""
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    if key not in LANGUAGES:
        raise ConfigError(f"unknown language {name!r}; known: {', '.join(sorted(LANGUAGES))}")
    return key


def language_from_name(filename: str) -> str | None:
    """Language from a file name alone: exact names first, then the extension."""
    if filename in FILENAMES:
        return FILENAMES[filename]
    dot = filename.rfind(".")
    if dot <= 0:
        return None
    return EXTENSIONS.get(filename[dot:].lower())


def language_from_shebang(head: bytes) -> str | None:
    """Language from the `#!` line of an extensionless script."""
    match = _SHEBANG.match(head)
    if match is None:
        return None
    interpreter = match.group(1).decode("ascii", "replace")
    interpreter = re.sub(r"[\d.]+$", "", interpreter) or interpreter
    return INTERPRETERS.get(interpreter) or INTERPRETERS.get(match.group(1).decode())
