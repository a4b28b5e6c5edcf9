"""Per-language checks: what of a record runs, and how each language is verified.

Every language with a tree-sitter grammar is parsed; Python is compiled and, when it carries
asserts or doctests, run; SQL and Cypher run against the configured fixtures.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cache
from typing import Any

from curation.errors import ConfigError
from curation.verify.config import VerifyConfig
from curation.verify.sandbox import Outcome, Sandbox

VERIFIED_KINDS = ("code", "pair")
# Our language names that tree-sitter-language-pack spells otherwise.
GRAMMAR_NAMES = {"shell": "bash"}
_FENCE = re.compile(r"```[\w+-]*\n(.*?)(?:```|$)", re.DOTALL)
# Doctests anywhere, asserts at the top level: running a module only defines its functions,
# so an assert inside one would not run.
_HAS_TESTS = re.compile(r"^(?:\s*>>>|assert\b)", re.MULTILINE)


def read_fixtures(config: VerifyConfig) -> dict[str, str]:
    """The configured fixture scripts by language (`sql`, `cypher`)."""
    fixtures = {}
    for language, key in (("sql", "sql_fixture"), ("cypher", "cypher_fixture")):
        path = getattr(config, key)
        if path is None:
            continue
        if not path.is_file():
            raise ConfigError(f"verify.{key}: no fixture file at {str(path)!r}")
        fixtures[language] = path.read_text()
    return fixtures


def query_task(language: str, query: str, fixtures: Mapping[str, str],
               sql_engine: str) -> dict[str, Any]:  # fmt: skip
    """The sandbox task that runs a SQL or Cypher query against its fixture."""
    return {"kind": language, "code": query, "fixture": fixtures[language], "engine": sql_engine}


class FixtureQueries:
    """Runs SQL/Cypher queries in the sandbox against `[verify]`'s fixtures: their rows, or
    None when a query fails (execution accuracy in `curate evaluate`)."""

    def __init__(self, config: VerifyConfig) -> None:
        self.fixtures = read_fixtures(config)
        self.languages = frozenset(self.fixtures)
        self.sql_engine = config.sql_engine
        self.sandbox = Sandbox(config)

    def __call__(self, language: str, query: str) -> list[list[Any]] | None:
        outcome = self.sandbox.run(query_task(language, query, self.fixtures, self.sql_engine))
        return outcome.rows if outcome.ok else None


def code_of(text: str) -> str:
    """The code in an answer: its first fenced block, or all of it (the rule of
    `finetune.evaluate.code_of`, which may not import this package)."""
    match = _FENCE.search(text)
    return (match.group(1) if match else text).strip()


def code_to_verify(record: Mapping[str, Any]) -> str | None:
    """A code record's cleaned content; a pair's answer (its code); None for prose kinds."""
    if record["kind"] not in VERIFIED_KINDS:
        return None
    if record["kind"] == "code":
        return record.get("content_clean") or record["content"]
    answer = record.get("response") or record.get("content_clean") or record["content"]
    return code_of(answer)


@cache
def _parser(language: str) -> Any | None:
    from tree_sitter_language_pack import get_parser

    name = GRAMMAR_NAMES.get(language, language)
    try:
        return get_parser(name)  # type: ignore[arg-type]
    except (LookupError, ValueError):
        return None  # no grammar for it in the pack


def has_grammar(language: str) -> bool:
    return _parser(language) is not None


def parse_error(code: str, language: str) -> str | None:
    """`parse_error: line N` at the first node tree-sitter could not parse, else None."""
    tree = _parser(language).parse(code.encode("utf-8", "surrogatepass"))
    if not tree.root_node.has_error:
        return None
    node = tree.root_node
    while not (node.is_error or node.is_missing):  # down to the first node that failed
        child = next((c for c in node.children if c.has_error or c.is_missing), None)
        if child is None:
            break
        node = child
    return f"parse_error: line {node.start_point[0] + 1}"


def verify_code(code: str, language: str | None, sandbox: Sandbox, fixtures: Mapping[str, str],
                sql_engine: str, standalone: bool) -> Outcome | None:  # fmt: skip
    """The verdict on one piece of code; None when no check applies to its language.
    `standalone` code (a pair's answer) must run by itself; a repository's file may not."""
    if language == "python":
        return sandbox.run({"kind": "python", "code": code, "standalone": standalone,
                            "run": bool(_HAS_TESTS.search(code))})  # fmt: skip
    if language == "cypher":
        if "cypher" not in fixtures:
            return None
        return sandbox.run(query_task("cypher", code, fixtures, sql_engine))
    if language == "sql" and "sql" in fixtures:
        # the engine's own parser decides: the grammar refuses some valid dialect syntax
        return sandbox.run(query_task("sql", code, fixtures, sql_engine))
    if language is None or not has_grammar(language):
        return None
    error = parse_error(code, language)
    if error is not None:
        return Outcome(False, error)
    return Outcome(True, checks=("parse",))
