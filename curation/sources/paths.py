"""Reading files, folders and stdin for quick looks outside a pipeline run."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

from curation.errors import SourceError
from curation.languages import language_from_name


def read_inputs(paths: list[str]) -> Iterator[tuple[str, str, str | None]]:
    """(name, text, language) for files, files under folders, and `-` (stdin, as prose).

    Files with no known language are read as prose; binary and non-UTF-8 files are skipped.
    """
    for raw in paths:
        if raw == "-":
            yield "<stdin>", sys.stdin.read(), None
            continue
        path = Path(raw)
        if not path.exists():
            raise SourceError(f"{raw}: no such file or folder")
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            data = file.read_bytes()
            if b"\0" in data[:8192]:
                continue
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                continue
            yield str(file), text, language_from_name(file.name)
