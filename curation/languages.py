"""Which language a file is written in: from its name, its `#!` line, and for what a name
leaves open (a `.h` header: C or C++? a text from stdin) from its content."""

from __future__ import annotations

import re
from typing import Final

from curation.code_regions import strip_comments
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


# C++ syntax that C has no use for, each at the start of a line where that matters
# (`extern "C"` is not here: C headers carry it for C++ readers).
CPP_SYNTAX: Final = re.compile(
    r"^[ \t]*(?:inline[ \t]+)?namespace\b(?![ \t]*[=;,)\]])"
    r"|^[ \t]*template[ \t]*<"
    r"|\bstd::"
    r"|^[ \t]*class[ \t]+(?:[A-Z_]+[ \t]+)*[A-Za-z_]\w*[ \t]*(?:final[ \t]*)?[:{;]"
    r"|^[ \t]*(?:public|private|protected)[ \t]*:"
    r"|^[ \t]*(?:using[ \t]+namespace[ \t]+\w|using[ \t]+[A-Za-z_]\w*[ \t]*=)"
    # <vector>, <tr1/cstdio>: C's own headers all end in .h
    r"|^[ \t]*#[ \t]*include[ \t]*<[\w/+-]+>"
    r"|^[ \t]*#[ \t]*include[ \t]*[<\"][^>\"\n]+\.(?:hpp|hh|hxx)[>\"]",
    re.M,
)
_CONDITIONAL = re.compile(r"^[ \t]*#[ \t]*(if|ifdef|ifndef|elif|else|endif)\b(.*)$")
_DEFINED_CPLUSPLUS = re.compile(r"(!)?[ \t]*defined[ \t]*\(?[ \t]*__cplusplus\b")


def without_cplusplus_blocks(text: str) -> str:
    """The lines a C compiler reads: `#ifdef __cplusplus` (or `defined(__cplusplus)`)
    branches dropped, their `#else` kept, and the other way round for `#ifndef`.
    Version tests (`#if __cplusplus >= 201103L`) are not guards: only C++ headers have them."""
    kept: list[str] = []
    # per open #if: whether it tests for C++ ("yes", "not" or None), and if we are skipping
    stack: list[tuple[str | None, bool]] = []
    for line in text.splitlines():
        match = _CONDITIONAL.match(line)
        if match is None:
            if not any(skipping for _, skipping in stack):
                kept.append(line)
            continue
        directive, condition = match.groups()
        if directive in ("if", "ifdef", "ifndef"):
            test = _cplusplus_test(directive, condition)
            stack.append((test, test == "yes"))
        elif stack and directive in ("elif", "else"):
            test = stack[-1][0]
            stack[-1] = (test, test == "not")
        elif stack and directive == "endif":
            stack.pop()
    return "\n".join(kept)


def _cplusplus_test(directive: str, condition: str) -> str | None:
    if directive != "if" and condition.split()[:1] == ["__cplusplus"]:
        return "not" if directive == "ifndef" else "yes"
    match = _DEFINED_CPLUSPLUS.search(condition)
    if match is None:
        return None
    return "not" if match.group(1) else "yes"


def header_language(text: str) -> str:
    """`cpp` for a `.h` header with C++ syntax outside comments and `__cplusplus` guards,
    else `c` (headers with only preprocessor lines, too)."""
    code = without_cplusplus_blocks(strip_comments(text, "c"))
    return "cpp" if CPP_SYNTAX.search(code) else "c"


# Lines that only code starts (or ends) with, per language, for a text without a name.
# "c" stands for C-like syntax: C, Java, JavaScript, Go and Rust share its comments and strings.
CODE_LINES: Final[dict[str, re.Pattern[str]]] = {
    "python": re.compile(
        r"^\s*(?:(?:async\s+)?def\s+\w+\s*\(|class\s+\w+\s*[(:]|import\s+[\w.]+\s*$"
        r"|from\s+[\w.]+\s+import\s|@[\w.]+|(?:if|elif|while|for|with|except)\b.*:\s*$"
        r"|(?:else|try|finally)\s*:\s*$|(?:return|raise|yield)\b|print\(|>>> |self\.|\"\"\""
        r"|[A-Za-z_][\w.]*(?:\[[^\]]*\])?\s*[-+*/]?=\s*\S|\)\s*(?:->[^:]*)?:\s*$)"
        r"|^\s+\w+:\s*[\w.\[\]|]+(?:\s*=\s*\S+)?,\s*$"  # a typed parameter
    ),
    "shell": re.compile(
        r"^\s*(?:\$\s+)?(?:sudo\s+)?(?:cd|ls|git|scp|ssh|rsync|curl|wget|export|echo|pip3?"
        r"|apt|apt-get|brew|docker|kubectl|make|cp|mv|rm|mkdir|chmod|chown|cat|grep|sed|awk"
        r"|tar|npm|npx|yarn|source|systemctl|ln|find|xargs|kill|tail|head|env|unset|cargo"
        r"|gcc|cmake|python3?|shift|exit|local|usage|set|test)(?:\s|$)"
        r"|^\s*(?:if\s+\[|for\s+\w+\s+in\s|while\s+\[|then$|fi$|do$|done$|esac$|\[\s)"
        r"|^\s*[A-Za-z_]\w*=\S|\$\{?[A-Za-z_]|;;\s*$|^\s*\w+\s*\(\)|\\$"
    ),
    "sql": re.compile(
        r"^\s*(?:SELECT\s.*\bFROM\b|select\s.*\bfrom\b|INSERT\s+INTO|insert\s+into"
        r"|UPDATE\s+\w+\s+SET|update\s+\w+\s+set|DELETE\s+FROM|delete\s+from"
        r"|CREATE\s+(?:TABLE|INDEX|VIEW)|create\s+(?:table|index|view)|ALTER\s+TABLE)"
    ),
    "c": re.compile(r"^\s*#\s*include\s*[<\"]|[;{]\s*$"),
}
# Lines that say nothing either way: comments, and closing brackets alone.
_NEUTRAL = re.compile(r"^\s*(?:#|//|/\*|\*|[)}\]]+[;,]?\s*$)")
# A line of prose: unindented, no code line, and a sentence (capitalised, four words or
# more, ending like one) or six words or more, nearly all plain words (a wrapped paragraph).
_SENTENCE = re.compile(r"^[A-Z][^\s]*(?:\s+\S+){3,}[.?!:]\s*$")
_WORD = re.compile(r"[\"'`(]*[A-Za-z]+[\"'`)]*[,.:;?!]?")


def _is_prose(line: str) -> bool:
    if line[:1].isspace() or any(pattern.search(line) for pattern in CODE_LINES.values()):
        return False
    if _SENTENCE.match(line):
        return True
    words = line.split()
    return len(words) >= 6 and sum(map(bool, map(_WORD.fullmatch, words))) >= 0.8 * len(words)


def language_from_content(text: str) -> str | None:
    """Language of a text with no name (stdin), or None for prose. A `#!` line decides;
    otherwise a text with any line of prose is prose, and one where at least half the
    lines (blank ones, comments and closing brackets aside) are code lines of a language
    (CODE_LINES; the most lines win) is code."""
    shebang = language_from_shebang(text[:256].encode("utf-8", "replace"))
    if shebang is not None:
        return shebang
    lines = [line for line in text.splitlines() if line.strip()]
    if any(_is_prose(line) for line in lines):
        return None
    lines = [line for line in lines if not _NEUTRAL.match(line)]
    if not lines:
        return None
    counts = {
        language: sum(1 for line in lines if pattern.search(line))
        for language, pattern in CODE_LINES.items()
    }
    best = max(counts, key=lambda language: counts[language])
    return best if counts[best] * 2 >= len(lines) else None


def is_c_header(filename: str) -> bool:
    """A `.h` file: C or C++, which only its content tells."""
    return filename.lower().endswith(".h")


def language_of_file(filename: str, text: str) -> str | None:
    """A file's language from its name, its content where the name leaves it open (a `.h`
    header), or its `#!` line when the name has no extension; None when none tells."""
    language = language_from_name(filename)
    if language == "c" and is_c_header(filename):
        return header_language(text)
    if language is None and "." not in filename.lstrip("."):
        return language_from_shebang(text[:256].encode("utf-8", "replace"))
    return language
