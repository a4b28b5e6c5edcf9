"""The registry `<root>/<name>/versions.json` and how a `name@version` is opened.

The version folders are the truth and the registry is their index: it is read together
with them (a folder it lacks is listed from the folder's own lineage, an entry without a
folder is left out) and rebuilt from them when it is missing or unreadable, so `datasets
list` and `pull` always see the same versions. It is written atomically.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypedDict

from curation.errors import ConfigError, CurateError
from finetune.release.versions import (
    CHECKSUMS,
    check_name,
    file_sha256,
    parse_version,
    split_ref,
    verify,
    version_folder,
)

REGISTRY = "versions.json"
LINEAGE = "lineage.json"


class Entry(TypedDict):
    version: str
    content_hash: str | None
    checksums_sha256: str | None
    counts: dict[str, int]
    parent: str | None
    created_at: str


@dataclass(frozen=True)
class Version:
    """A verified version: its folder and what its lineage says."""

    name: str
    version: str
    folder: Path
    lineage: dict[str, Any]

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"


def read_registry(root: Path, name: str) -> list[Entry]:
    """The versions of `name`, oldest first, as the registry and the folders agree."""
    folders = _version_folders(root / check_name(name))
    stored = _stored_entries(root / name / REGISTRY)
    entries = [stored.get(v) or _entry_from_folder(folder) for v, folder in folders.items()]
    return sorted(entries, key=lambda e: parse_version(e["version"]))


def write_registry(root: Path, name: str, entries: list[Entry]) -> None:
    """Replace the registry in one step: a reader sees the old file or the new, never half."""
    path = root / check_name(name) / REGISTRY
    text = json.dumps(entries, indent=2) + "\n"
    with tempfile.NamedTemporaryFile(
        "w", dir=path.parent, prefix=".versions.", suffix=".tmp", delete=False
    ) as tmp:
        tmp.write(text)
        tmp.flush()
        os.fsync(tmp.fileno())
    os.replace(tmp.name, path)


def latest(root: Path, name: str) -> str | None:
    versions = [entry["version"] for entry in read_registry(root, name)]
    return versions[-1] if versions else None


def dataset_names(root: Path) -> list[str]:
    """Every dataset under the export root that has a registry or a version."""
    if not root.is_dir():
        return []
    return sorted(
        p.name
        for p in root.iterdir()
        if p.is_dir()
        and not p.name.startswith(".")
        and ((p / REGISTRY).exists() or _version_folders(p))
    )


def open_version(root: Path, ref: str) -> Version:
    """`name@1.2.0`, or `name` for the latest, resolved under `root` and verified."""
    name, wanted = split_ref(ref)
    entries = {e["version"]: e for e in read_registry(root, name)}
    version = wanted or (max(entries, key=parse_version) if entries else None)
    if version is None or version not in entries:
        known = ", ".join(entries) or "none"
        raise CurateError(f"no dataset {ref!r} under {root} (versions of {name}: {known})")
    folder = version_folder(root, name, version)
    verify(folder, f"{name}@{version}", entries[version]["checksums_sha256"])
    return Version(name, version, folder, json.loads((folder / LINEAGE).read_text()))


def _version_folders(dataset: Path) -> dict[str, Path]:
    if not dataset.is_dir():
        return {}
    found = {}
    for folder in dataset.iterdir():
        try:
            parse_version(folder.name)
        except ConfigError:
            continue  # the registry, a staging folder of an export in progress...
        if folder.is_dir():
            found[folder.name] = folder
    return found


def _stored_entries(path: Path) -> dict[str, Entry]:
    """The registry's entries by version; nothing if it is missing or not a registry."""
    try:
        entries = json.loads(path.read_text())
        return {e["version"]: e for e in entries if set(e) >= set(Entry.__annotations__)}
    except (OSError, ValueError, TypeError, KeyError):
        return {}  # rebuilt from the folders, which hold everything it holds


def _entry_from_folder(folder: Path) -> Entry:
    """A registry entry from what a version folder says about itself."""
    try:
        lineage = json.loads((folder / LINEAGE).read_text())
    except (OSError, ValueError):
        lineage = {}  # opening the version will say what is wrong with it
    listing = folder / CHECKSUMS
    stamp = (listing if listing.exists() else folder).stat().st_mtime
    return {
        "version": folder.name,
        "content_hash": lineage.get("content_hash"),
        "checksums_sha256": file_sha256(listing) if listing.exists() else None,
        "counts": lineage.get("counts", {}),
        "parent": lineage.get("parent"),
        "created_at": datetime.fromtimestamp(stamp, UTC).isoformat(timespec="seconds"),
    }
