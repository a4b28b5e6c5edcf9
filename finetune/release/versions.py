"""Version numbers, where a version's folder is, and the checksums that prove it unchanged.

Every file of a version is listed with its sha256 in `checksums.sha256` (the format
`sha256sum -c` reads); reading a version verifies them, so a rewritten, missing or added
file is refused with the file's name.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Literal

import polars as pl

from curation.errors import ConfigError, CurateError
from curation.schema import SPLITS
from finetune.release.config import NAME_PATTERN

CHECKSUMS = "checksums.sha256"
_CHECKSUM_LINE = re.compile(r"^([0-9a-f]{64})  (\S.*)$")


class VersionChanged(CurateError):
    """A version's files are not the ones it was exported with."""


def parse_version(text: str) -> tuple[int, int, int]:
    """`1.2.0` -> (1, 2, 0); anything else is a ConfigError."""
    parts = text.split(".")
    if len(parts) != 3 or not all(p.isdigit() and p.isascii() for p in parts):
        raise ConfigError(f"version {text!r}: expected MAJOR.MINOR.PATCH, e.g. 1.2.0")
    major, minor, patch = (int(p) for p in parts)
    return major, minor, patch


def bump(version: str | None, part: Literal["major", "minor", "patch"]) -> str:
    """The next version after `version` (the first is 1.0.0)."""
    if version is None:
        return "1.0.0"
    major, minor, patch = parse_version(version)
    if part == "major":
        return f"{major + 1}.0.0"
    if part == "minor":
        return f"{major}.{minor + 1}.0"
    return f"{major}.{minor}.{patch + 1}"


def check_name(name: str) -> str:
    """A dataset name that stays one folder under the export root."""
    if not re.match(NAME_PATTERN, name):
        raise ConfigError(
            f"dataset name {name!r}: letters, digits, '.', '_' and '-' only, "
            "starting with a letter or digit"
        )
    return name


def split_ref(ref: str) -> tuple[str, str | None]:
    """`name@1.2.0` -> (name, "1.2.0"); `name` -> (name, None), both checked."""
    name, at, version = ref.partition("@")
    check_name(name)
    if at:
        parse_version(version)
    return name, version if at else None


def version_folder(root: Path, name: str, version: str) -> Path:
    """`<root>/<name>/<version>`, refused if it resolves outside the root (a symlink)."""
    check_name(name)
    parse_version(version)
    folder = root / name / version
    if not folder.resolve().is_relative_to(root.resolve()):
        raise CurateError(f"{name}@{version} resolves outside the export root {root}")
    return folder


def shard_path(split: str) -> str:
    """Where a split's Parquet file is inside a version (the layout the Hub reads)."""
    return f"data/{split}-00000-of-00001.parquet"


def read_rows(folder: Path, columns: list[str]) -> pl.DataFrame:
    """`columns` of every split of a version folder, with the split as a column."""
    return pl.concat(
        pl.read_parquet(folder / shard_path(s), columns=columns).with_columns(split=pl.lit(s))
        for s in SPLITS
        if (folder / shard_path(s)).exists()
    )


def file_sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def write_checksums(folder: Path) -> str:
    """List every file of `folder` with its sha256; returns the list's own sha256."""
    files = sorted(p.relative_to(folder).as_posix() for p in _files(folder))
    text = "".join(f"{file_sha256(folder / path)}  {path}\n" for path in files)
    (folder / CHECKSUMS).write_text(text)
    return hashlib.sha256(text.encode()).hexdigest()


def verify(folder: Path, ref: str, checksums_sha256: str | None = None) -> None:
    """Raise VersionChanged naming the first file that differs from the export.

    `checksums_sha256` (from the registry) also catches a checksums file rewritten to match
    rewritten data. Each file is read once, in chunks.
    """
    listing = folder / CHECKSUMS
    if not listing.is_file():
        raise VersionChanged(
            f"{ref} has no {CHECKSUMS}: it cannot be verified (exported by "
            "an older codecurate, or damaged); export a new version"
        )
    if checksums_sha256 is not None and file_sha256(listing) != checksums_sha256:
        raise VersionChanged(
            f"{ref}: {CHECKSUMS} is not the one written at export (sha256 in "
            "versions.json differs); restore the version from its original"
        )
    expected = _read_checksums(listing, ref)
    present = {p.relative_to(folder).as_posix() for p in _files(folder)}
    added = sorted(present - set(expected))
    if added:
        raise VersionChanged(f"{ref}: {added[0]} was added after export; remove it")
    for path, digest in expected.items():
        if path not in present:
            raise VersionChanged(f"{ref}: {path} is missing; restore the version from its original")
        if file_sha256(folder / path) != digest:
            raise VersionChanged(
                f"{ref}: {path} changed after export (its sha256 differs from "
                f"{CHECKSUMS}); restore the version from its original"
            )


def _files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p != folder / CHECKSUMS and not p.is_dir()]


def _read_checksums(listing: Path, ref: str) -> dict[str, str]:
    expected: dict[str, str] = {}
    for number, line in enumerate(listing.read_text().splitlines(), start=1):
        match = _CHECKSUM_LINE.match(line)
        if match is None:
            raise VersionChanged(f"{ref}: {CHECKSUMS} line {number} is not '<sha256>  <path>'")
        expected[match[2]] = match[1]
    return expected
