"""Reading files, folders and stdin for quick looks outside a pipeline run."""

from __future__ import annotations

import stat
import sys
from collections.abc import Iterator
from pathlib import Path

from curation.errors import ConfigError, SourceError
from curation.languages import canonical_language, language_from_content, language_of_file

PROSE = "prose"  # --language prose: read every input as natural language


def read_inputs(
    paths: list[str], language: str | None = None
) -> Iterator[tuple[str, str, str | None]]:
    """(name, text, language) for files, files under folders, and `-` (stdin); the language
    is None for prose. `language` sets it for every input (`prose` for none); otherwise it
    comes from the file's name, its `#!` line or its content (see languages.py), as in ingest.

    Binary and non-UTF-8 files under folders are skipped. Bad arguments raise here, before
    anything is read.
    """
    forced = _language_option(language)
    for raw in paths:
        if raw != "-" and not Path(raw).exists():
            raise SourceError(f"{raw}: no such file or folder")
        if raw != "-" and not (Path(raw).is_dir() or stat.S_ISREG(Path(raw).stat().st_mode)):
            raise SourceError(f"{raw}: not a regular file or folder (a pipe? use - for stdin)")
    return _read(paths, forced)


def _language_option(language: str | None) -> str | None:
    """The canonical name of `--language` (or `prose`); None when it is to be detected."""
    if language is None:
        return None
    if language.strip().lower() == PROSE:
        return PROSE
    try:
        return canonical_language(language)
    except ConfigError as e:
        raise ConfigError(f"--language: {e}, or {PROSE}") from None


def _read(paths: list[str], forced: str | None) -> Iterator[tuple[str, str, str | None]]:
    for raw in paths:
        if raw == "-":
            text = sys.stdin.read()
            yield "<stdin>", text, _language(forced, None, text)
            continue
        path = Path(raw)
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            data = file.read_bytes()
            if b"\0" in data:
                continue
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                continue
            yield str(file), text, _language(forced, file.name, text)


def _language(forced: str | None, filename: str | None, text: str) -> str | None:
    if forced is not None:
        return None if forced == PROSE else forced
    named = language_of_file(filename, text) if filename else None
    return named or language_from_content(text)
