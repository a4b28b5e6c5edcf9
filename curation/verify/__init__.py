"""Verify stage: code run in a sandbox (separate interpreter, CPU/memory/file/process limits,
no network, a scratch folder) per language: tree-sitter parse for every grammar, Python
compiled and its asserts and doctests run, SQL and Cypher executed against fixtures.

The config and stage import without the `[verify]` extra; the stage names it when built.
"""

from curation.verify.config import VerifyConfig
from curation.verify.stage import VerifyStage

__all__ = ["VerifyConfig", "VerifyStage"]
