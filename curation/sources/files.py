"""Source code from plain directories and git repositories (local clones or anything
`git clone` reaches)."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

import polars as pl
from pydantic import BaseModel, ConfigDict

from curation.errors import SourceError
from curation.languages import language_from_name, language_from_shebang
from curation.runner import StageContext
from curation.sources.common import batched, fingerprint_files, finish_records
from curation.sources.license import SPDX_HEADER_PATTERN, detect_repo_license

BINARY_SNIFF_BYTES = 8192


class DirSourceConfig(BaseModel):
    """A plain directory of source files."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["dir"] = "dir"
    path: Path
    name: str | None = None  # the `source` of its records; defaults to the folder's name


class GitSourceConfig(BaseModel):
    """A git repository: a local clone, or a URL that `git clone` can reach."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["git"] = "git"
    url: str
    ref: str | None = None  # branch or tag to clone; a local clone is read at its HEAD
    name: str | None = None  # defaults to the remote URL


@dataclass(frozen=True)
class WalkOptions:
    """The ingest settings that decide which files become records."""

    languages: frozenset[str]
    max_file_bytes: int
    exclude_dirs: frozenset[str]
    generated_files: tuple[str, ...]  # regexes over the relative path
    batch_size: int


@dataclass(frozen=True)
class Checkout:
    """A tree of files to read, and what is known about where it came from."""

    root: Path
    source: str
    paths: list[str]
    commit_sha: str | None = None
    created_at: datetime | None = None


def list_dir(root: Path, options: WalkOptions, ctx: StageContext | None) -> list[str]:
    """Relative paths under `root`, vendored folders pruned and counted, symlinks skipped."""
    if not root.is_dir():
        raise SourceError(f"source folder {str(root)!r} does not exist or is not a folder")
    paths: list[str] = []
    for folder, dirs, files in os.walk(root):
        kept_dirs = []
        for name in sorted(dirs):
            if name in options.exclude_dirs or name.startswith("."):
                if ctx is not None and not name.startswith("."):
                    ctx.skip("vendored_dir")
                continue
            kept_dirs.append(name)
        dirs[:] = kept_dirs
        base = Path(folder).relative_to(root)
        for name in files:
            full = Path(folder) / name
            if full.is_symlink():
                if ctx is not None:
                    ctx.skip("symlink")
                continue
            paths.append((base / name).as_posix())
    return sorted(paths)


def git(args: list[str], cwd: Path | None = None) -> str:
    """Run git and return its stdout; failures become SourceError with git's own message."""
    try:
        done = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, check=True, timeout=600
        )
    except FileNotFoundError as e:
        raise SourceError("git is not installed; install it to ingest git sources") from e
    except subprocess.CalledProcessError as e:
        raise SourceError(f"git {' '.join(args)} failed: {e.stderr.strip()}") from e
    return done.stdout


def is_local_repo(url: str) -> bool:
    return (Path(url).expanduser() / ".git").exists()


def clone_or_update(config: GitSourceConfig, clone_root: Path) -> Path:
    """A shallow clone of a remote under `clone_root`, refreshed when it already exists."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", config.url.rstrip("/").removesuffix(".git"))[-120:]
    dest = clone_root / slug
    ref = config.ref or "HEAD"
    if (dest / ".git").exists():
        git(["fetch", "--depth", "1", "origin", ref], cwd=dest)
        git(["checkout", "--quiet", "--detach", "FETCH_HEAD"], cwd=dest)
    else:
        clone_root.mkdir(parents=True, exist_ok=True)
        branch = ["--branch", config.ref] if config.ref else []
        git(["clone", "--quiet", "--depth", "1", *branch, config.url, str(dest)])
    return dest


def git_checkout(
    config: GitSourceConfig, clone_root: Path, options: WalkOptions, ctx: StageContext | None
) -> Checkout:
    """Tracked files of a repository at its checked-out commit."""
    local = is_local_repo(config.url)
    root = Path(config.url).expanduser() if local else clone_or_update(config, clone_root)
    if local and config.ref:
        raise SourceError(
            f"git source {config.url!r}: 'ref' applies to remote URLs; check the ref out "
            "in the local clone instead"
        )
    sha = git(["rev-parse", "HEAD"], cwd=root).strip()
    when = git(["log", "-1", "--format=%cI", "HEAD"], cwd=root).strip()
    origin = (
        git(["config", "--default", "", "--get", "remote.origin.url"], cwd=root).strip()
        if local
        else ""
    )
    paths = []
    vendored: set[str] = set()
    for path in git(["ls-files", "-z"], cwd=root).split("\0"):
        if not path:
            continue
        parts = path.split("/")[:-1]
        hit = next((i for i, p in enumerate(parts) if p in options.exclude_dirs), None)
        if hit is not None:
            vendored.add("/".join(parts[: hit + 1]))
            continue
        if (root / path).is_symlink():
            if ctx is not None:
                ctx.skip("symlink")
            continue
        paths.append(path)
    if ctx is not None and vendored:
        ctx.skip("vendored_dir", len(vendored))
    return Checkout(
        root=root,
        source=config.name or origin or (config.url if not local else root.resolve().name),
        paths=sorted(paths),
        commit_sha=sha,
        created_at=datetime.fromisoformat(when),
    )


def dir_checkout(
    config: DirSourceConfig, options: WalkOptions, ctx: StageContext | None
) -> Checkout:
    root = config.path.expanduser()
    return Checkout(
        root=root,
        source=config.name or root.resolve().name,
        paths=list_dir(root, options, ctx),
    )


def fingerprint_checkout(checkout: Checkout) -> str:
    """Changes when any listed file or the commit changes."""
    salt = f"{checkout.source}\0{checkout.commit_sha}"
    return fingerprint_files(checkout.root, checkout.paths, salt)


def _language(root: Path, path: str) -> str | None:
    name = path.rsplit("/", 1)[-1]
    language = language_from_name(name)
    if language is None and "." not in name.lstrip("."):
        with (root / path).open("rb") as f:
            language = language_from_shebang(f.read(256))
    return language


def read_checkout(
    checkout: Checkout, options: WalkOptions, ctx: StageContext
) -> Iterator[pl.DataFrame]:
    """Records for the files of the requested languages; what cannot be read is quarantined."""
    generated = [re.compile(p) for p in options.generated_files]
    repo_license = detect_repo_license(checkout.root)
    wanted: list[tuple[str, str]] = []
    for path in checkout.paths:
        if any(p.search(path) for p in generated):
            ctx.skip("generated_file")
            continue
        language = _language(checkout.root, path)
        if language is None or language not in options.languages:
            ctx.skip("other_language")
            continue
        wanted.append((path, language))

    def rows() -> Iterator[dict]:
        for path, language in ctx.track(wanted, f"ingest {checkout.source}", len(wanted)):
            text = _read_text(checkout, path, options, ctx)
            if text is not None:
                yield {
                    "kind": "code",
                    "source": checkout.source,
                    "path": path,
                    "language": language,
                    "license": repo_license,
                    "commit_sha": checkout.commit_sha,
                    "created_at": checkout.created_at,
                    "content": text,
                }

    for batch in batched(rows(), options.batch_size):
        frame = finish_records(batch)
        # A file's own SPDX header is more specific than the repository's licence file.
        yield frame.with_columns(
            license=pl.coalesce(
                pl.col("content").str.slice(0, 4096).str.extract(SPDX_HEADER_PATTERN, 1),
                pl.col("license"),
            )
        )


def _read_text(
    checkout: Checkout, path: str, options: WalkOptions, ctx: StageContext
) -> str | None:
    full = checkout.root / path
    where = {"source": checkout.source, "path": path}
    size = full.stat().st_size
    if size > options.max_file_bytes:
        detail = f"{size} bytes > max_file_bytes={options.max_file_bytes}"
        ctx.quarantine("too_large", size_bytes=size, detail=detail, **where)
        return None
    data = full.read_bytes()
    if b"\0" in data[:BINARY_SNIFF_BYTES]:
        ctx.quarantine("binary", size_bytes=size, detail="NUL byte in the first 8 KiB", **where)
        return None
    try:
        return data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as e:
        detail = f"not UTF-8: byte {e.object[e.start]:#04x} at offset {e.start}"
        ctx.quarantine("undecodable", size_bytes=size, detail=detail, **where)
        return None
