"""The workdir a run writes into: made ready, and held by one run at a time."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from curation.errors import WorkdirError

LOCK_FILE = "curate.lock"


def prepare(workdir: Path) -> None:
    """Create the workdir, or say in one line why it cannot be (a file in the way, no
    permission); one that cannot be written fails when `hold` opens its lock."""
    try:
        workdir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise WorkdirError(f"workdir {workdir}: cannot create it ({e.strerror})") from None


@contextmanager
def hold(workdir: Path) -> Iterator[None]:
    """Hold the workdir for the length of a run; a second run fails naming the PID of the
    first. The lock is the kernel's (flock on `curate.lock`), so a run that died, even by
    `kill -9`, holds nothing: the next run takes it over without cleaning up."""
    path = workdir / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise WorkdirError(f"workdir {workdir}: cannot write there ({e.strerror})") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise WorkdirError(
                f"workdir {workdir} is in use by another curate run (PID {holder}); "
                "wait for it to finish, or stop it"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock; the file stays, so no two runs lock two files
