"""Source code from plain directories and git repositories (local clones or anything
`git clone` reaches)."""

from __future__ import annotations

import hashlib
import os
import re
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import polars as pl
from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator

from curation.errors import SourceError
from curation.languages import (
    is_c_header,
    language_from_name,
    language_from_shebang,
    language_of_file,
)
from curation.parts import MAX_PART_FACTOR
from curation.runner import StageContext
from curation.sources.common import batched, fingerprint_files, finish_records
from curation.sources.license import SPDX_HEADER_PATTERN, detect_repo_license


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

    @field_validator("url")
    @classmethod
    def _local_clone_against_the_config(cls, url: str, info: ValidationInfo) -> str:
        """A relative local clone is relative to the config file (`base` in the context)."""
        base = (info.context or {}).get("base")
        if base is None or "://" in url:
            return url
        local = Path(url).expanduser()
        local = local if local.is_absolute() else (Path(base) / local).resolve()
        return str(local) if is_local_repo(str(local)) else url


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
    """A tree of files to read, and what is known about where it came from.

    `paths` is one sorted Arrow column, not a list of Python strings: the driver lists every
    file of a source, and the column takes a quarter of the memory (5 against 21 MB for
    250,000 paths).
    """

    root: Path
    source: str
    paths: pl.Series
    commit_sha: str | None = None
    created_at: datetime | None = None


def list_dir(root: Path, source: str, options: WalkOptions, ctx: StageContext | None) -> pl.Series:
    """Relative paths under `root`, sorted: vendored folders pruned and counted, file
    symlinks skipped, and folder symlinks followed when they point inside `root` at a folder
    not read already (each folder is read once, so a link loop ends); all of them counted."""
    if not root.is_dir():
        raise SourceError(f"source folder {str(root)!r} does not exist or is not a folder")
    real_root = root.resolve()
    seen: set[Path] = set()  # real folders read so far
    links: list[str] = []  # folder symlinks met, read after the real tree

    def walked(top: Path, prefix: str) -> list[pl.Series]:
        return [
            utf8_paths(files, source, ctx)
            for files in _walk(top, prefix, options, ctx, seen, links)
        ]

    folders = walked(root, "")
    while links:
        link = links.pop(0)
        target = (root / link).resolve()
        if not target.is_relative_to(real_root):
            _count(ctx, "dir_symlink_outside_root")
        elif target in seen:
            _count(ctx, "dir_symlink_already_read")
        else:
            if ctx is not None:  # not a skip: counted where the manifest keeps extras
                ctx.extra["dir_symlinks_followed"] = ctx.extra.get("dir_symlinks_followed", 0) + 1
            folders += walked(root / link, link)
    return pl.concat([pl.Series("path", [], dtype=pl.String), *folders]).sort()


def utf8_paths(paths: list[str], source: str, ctx: StageContext | None) -> pl.Series:
    """The paths as a column. A name that is not UTF-8 (any bytes but / are a valid file name)
    cannot be a record's path: it is quarantined, its bytes escaped, and the rest kept."""
    try:
        return pl.Series("path", paths, dtype=pl.String)
    except UnicodeEncodeError:
        pass  # rare: find the names at fault one by one
    kept = []
    for path in paths:
        try:
            path.encode()
        except UnicodeEncodeError:
            if ctx is not None:
                shown = os.fsencode(path).decode("utf-8", "backslashreplace")
                ctx.quarantine("undecodable_path", source=source, path=shown,
                               detail="the file's name is not UTF-8")  # fmt: skip
            continue
        kept.append(path)
    return pl.Series("path", kept, dtype=pl.String)


def _count(ctx: StageContext | None, reason: str) -> None:
    if ctx is not None:
        ctx.skip(reason)


def _walk(
    top: Path,
    prefix: str,
    options: WalkOptions,
    ctx: StageContext | None,
    seen: set[Path],
    links: list[str],
) -> Iterator[list[str]]:
    """The files of each folder under `top`, named relative to the source root (`prefix` is
    top's name there); folder symlinks found are appended to `links` instead of entered."""

    def unreadable(error: OSError) -> None:  # os.walk would pass over it without a word
        _count(ctx, "unreadable_dir")

    for folder, dirs, files in os.walk(top, onerror=unreadable):
        real = Path(folder).resolve()
        if real in seen:  # reached through a link, then again at its real path
            dirs[:] = []
            continue
        seen.add(real)
        base = Path(prefix) / Path(folder).relative_to(top)
        kept_dirs = []
        for name in sorted(dirs):
            if name.startswith("."):
                continue
            if name in options.exclude_dirs:
                _count(ctx, "vendored_dir")
            elif (Path(folder) / name).is_symlink():
                links.append((base / name).as_posix())
            else:
                kept_dirs.append(name)
        dirs[:] = kept_dirs
        paths = []
        for name in files:
            if (Path(folder) / name).is_symlink():
                _count(ctx, "symlink")
                continue
            paths.append((base / name).as_posix())
        yield paths


def git(args: list[str], cwd: Path | None = None) -> str:
    """Run git and return its stdout; failures become SourceError with git's own message.
    Bytes that are not UTF-8 (a file's name) come through as surrogates, as os.walk gives them."""
    try:
        done = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, encoding="utf-8",
            errors="surrogateescape", check=True, timeout=600,
        )  # fmt: skip
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
    source = config.name or origin or (config.url if not local else root.resolve().name)
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
        source=source,
        paths=utf8_paths(paths, source, ctx).sort(),
        commit_sha=sha,
        created_at=datetime.fromisoformat(when),
    )


def dir_checkout(
    config: DirSourceConfig, options: WalkOptions, ctx: StageContext | None
) -> Checkout:
    root = config.path.expanduser()
    source = config.name or root.resolve().name
    return Checkout(root=root, source=source, paths=list_dir(root, source, options, ctx))


def checkout_units(checkout: Checkout, target_files: int) -> list[Checkout]:
    """The checkout's files in groups of about `target_files` (in path order), each cut
    before a path whose hash is a multiple of `target_files`, and after MAX_PART_FACTOR
    times that many at the latest: a new file changes only the group it falls in."""
    units: list[Checkout] = []
    start = 0
    for end, path in enumerate(checkout.paths):
        digest = int.from_bytes(hashlib.blake2b(path.encode(), digest_size=8).digest())
        if end > start and (
            digest % target_files == 0 or end - start >= MAX_PART_FACTOR * target_files
        ):
            units.append(replace(checkout, paths=checkout.paths[start:end]))
            start = end
    if start < len(checkout.paths):
        units.append(replace(checkout, paths=checkout.paths[start:]))
    return units


def fingerprint_checkout(checkout: Checkout) -> str:
    """Changes when any listed file or the commit changes."""
    salt = f"{checkout.source}\0{checkout.commit_sha}"
    return fingerprint_files(checkout.root, checkout.paths, salt)


def _possible_languages(root: Path, path: str) -> frozenset[str]:
    """What a file can be, from its name (a `.h` header is C or C++ until read) or, for a
    name without an extension, its `#!` line."""
    name = path.rsplit("/", 1)[-1]
    if is_c_header(name):
        return frozenset({"c", "cpp"})
    language = language_from_name(name)
    if language is None and "." not in name.lstrip("."):
        with (root / path).open("rb") as f:
            language = language_from_shebang(f.read(256))
    return frozenset({language} if language else ())


def _special_file(full: Path) -> str | None:
    """What a path is when it is not a regular file (reading a named pipe would block)."""
    mode = full.lstat().st_mode
    if stat.S_ISREG(mode):
        return None
    kinds = ((stat.S_ISFIFO, "a named pipe"), (stat.S_ISSOCK, "a socket"),
             (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
             (stat.S_ISDIR, "a folder"))  # fmt: skip
    return next((kind for test, kind in kinds if test(mode)), "not a regular file")


def read_checkout(
    checkout: Checkout, options: WalkOptions, ctx: StageContext
) -> Iterator[pl.DataFrame]:
    """Records for the files of the requested languages; what cannot be read is quarantined."""
    generated = [re.compile(p) for p in options.generated_files]
    repo_license = detect_repo_license(checkout.root)
    wanted: list[str] = []
    for path in checkout.paths:
        if any(p.search(path) for p in generated):
            ctx.skip("generated_file")
            continue
        where = {"source": checkout.source, "path": path}
        try:
            special = _special_file(checkout.root / path)
            if special is not None:
                ctx.quarantine("special_file", detail=f"{special}, not a regular file", **where)
                continue
            possible = _possible_languages(checkout.root, path)
        except OSError as e:
            ctx.quarantine("unreadable", detail=f"{type(e).__name__}: {e.strerror}", **where)
            continue
        if possible & options.languages:
            wanted.append(path)
        else:
            ctx.skip("other_language")

    def rows() -> Iterator[dict]:
        for path in ctx.track(wanted, f"ingest {checkout.source}", len(wanted)):
            try:
                row = _file_row(checkout, path, options, ctx)
            except Exception as e:  # one file's failure must not lose the others
                detail = f"{type(e).__name__}: {e}"
                ctx.quarantine("stage_error", source=checkout.source, path=path, detail=detail)
                continue
            if row is not None:
                row["license"] = repo_license
                yield row

    for batch in batched(rows(), options.batch_size):
        frame = finish_records(batch)
        # A file's own SPDX header is more specific than the repository's licence file.
        yield frame.with_columns(
            license=pl.coalesce(
                pl.col("content").str.slice(0, 4096).str.extract(SPDX_HEADER_PATTERN, 1),
                pl.col("license"),
            )
        )


def _file_row(
    checkout: Checkout, path: str, options: WalkOptions, ctx: StageContext
) -> dict[str, Any] | None:
    """A file's record row, or None when it is quarantined or not a wanted language."""
    text = _read_text(checkout, path, options, ctx)
    if text is None:
        return None
    language = language_of_file(path.rsplit("/", 1)[-1], text)
    if language not in options.languages:
        ctx.skip("other_language")
        return None
    return {
        "kind": "code",
        "source": checkout.source,
        "path": path,
        "language": language,
        "commit_sha": checkout.commit_sha,
        "created_at": checkout.created_at,
        "content": text,
    }


def _read_text(
    checkout: Checkout, path: str, options: WalkOptions, ctx: StageContext
) -> str | None:
    where = {"source": checkout.source, "path": path}
    try:
        with (checkout.root / path).open("rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size > options.max_file_bytes:
                detail = f"{size} bytes > max_file_bytes={options.max_file_bytes}"
                ctx.quarantine("too_large", size_bytes=size, detail=detail, **where)
                return None
            data = f.read()
    except OSError as e:
        ctx.quarantine("unreadable", detail=f"{type(e).__name__}: {e.strerror}", **where)
        return None
    nul = data.find(b"\0")
    if nul >= 0:
        detail = f"NUL byte at offset {nul}"
        ctx.quarantine("binary", size_bytes=len(data), detail=detail, **where)
        return None
    try:
        return data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as e:
        detail = f"not UTF-8: byte {e.object[e.start]:#04x} at offset {e.start}"
        ctx.quarantine("undecodable", size_bytes=len(data), detail=detail, **where)
        return None
