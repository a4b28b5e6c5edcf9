"""A verified version, handed to a trainer: in memory, or copied for `load_from_disk`."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from curation.errors import CurateError
from finetune.release.registry import LINEAGE, Version


def load_version(folder: Path) -> Any:
    """A version's DatasetDict, read with plain `datasets` into memory.

    A private, throwaway cache: `datasets` keys its cache on names and file stamps that two
    version folders can share (`<name>/1.0.0` in two roots), and then serves the wrong data.
    """
    from datasets import load_dataset

    with tempfile.TemporaryDirectory() as cache:
        return load_dataset(str(folder), cache_dir=cache, keep_in_memory=True)


def pull(version: Version, out: Path) -> Path:
    """Save a verified version to `out` for `datasets.load_from_disk`, with its card and
    lineage beside the data."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise CurateError(f"--out {out} exists and is not an empty folder: pull into a new one")
    load_version(version.folder).save_to_disk(str(out))
    for name in ("README.md", LINEAGE):
        shutil.copyfile(version.folder / name, out / name)
    return out
