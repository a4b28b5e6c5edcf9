"""SPDX ids from a repository's licence file or a file's SPDX header."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Final

LICENSE_FILENAMES: Final = (
    "LICENSE", "LICENSE.md", "LICENSE.txt", "LICENSE.rst", "LICENCE", "LICENCE.md",
    "LICENCE.txt", "COPYING", "COPYING.md", "COPYING.txt", "UNLICENSE",
)  # fmt: skip

# (SPDX id, phrases that must all appear, case-insensitive), most specific first:
# LGPL texts mention the GPL, and BSD-3 contains BSD-2's clauses.
_SIGNATURES: Final[tuple[tuple[str, tuple[str, ...]], ...]] = (
    ("AGPL-3.0-only", ("gnu affero general public license", "version 3")),
    ("LGPL-3.0-only", ("gnu lesser general public license", "version 3")),
    ("LGPL-2.1-only", ("gnu lesser general public license", "version 2.1")),
    ("GPL-3.0-only", ("gnu general public license", "version 3")),
    ("GPL-2.0-only", ("gnu general public license", "version 2")),
    ("Apache-2.0", ("apache license", "version 2.0")),
    ("MPL-2.0", ("mozilla public license", "2.0")),
    ("BSD-3-Clause", ("redistribution and use in source and binary forms", "neither the name")),
    ("BSD-2-Clause", ("redistribution and use in source and binary forms",)),
    ("MIT", ("permission is hereby granted, free of charge",)),
    ("ISC", ("permission to use, copy, modify, and/or distribute this software for any purpose",)),
    ("Unlicense", ("this is free and unencumbered software released into the public domain",)),
    ("BSL-1.0", ("boost software license",)),
    ("CC0-1.0", ("cc0 1.0 universal",)),
)

# Used by the ingest stage as a Polars regex over file contents.
SPDX_HEADER_PATTERN: Final = (
    r"SPDX-License-Identifier:\s*([A-Za-z0-9.+\-]+(?:\s+(?:OR|AND|WITH)\s+[A-Za-z0-9.+\-]+)*)"
)


def spdx_from_text(text: str) -> str | None:
    """SPDX id of a licence text, by the phrases each licence must contain."""
    folded = re.sub(r"\s+", " ", text.lower())
    for spdx, phrases in _SIGNATURES:
        if all(phrase in folded for phrase in phrases):
            return spdx
    return None


def detect_repo_license(root: Path) -> str | None:
    """SPDX id of the licence file at a repository's root, if one is recognisable."""
    for name in LICENSE_FILENAMES:
        candidate = root / name
        if candidate.is_file():
            text = candidate.read_text(encoding="utf-8", errors="replace")[:50_000]
            header = re.search(SPDX_HEADER_PATTERN, text)
            return header.group(1) if header else spdx_from_text(text)
    return None
