"""A separate interpreter per task, with CPU, memory, file-size and process limits, no
network, an empty environment and a fresh scratch folder as its working directory."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

from curation.verify.config import VerifyConfig

CHILD = Path(__file__).with_name("child.py")
NetworkMode = Literal["netns", "audit_hook"]
# Threads count against RLIMIT_NPROC, which counts all the user's processes: the limit is
# what the user runs now plus this headroom (the engines run one thread each).
NPROC_HEADROOM = 32
MAX_REASON = 300


@dataclass(frozen=True)
class Outcome:
    """A task's verdict: passed, failed or unchecked (None), the reason, a query's rows."""

    ok: bool | None
    reason: str | None = None
    rows: list[list[Any]] | None = None
    checks: tuple[str, ...] = ()


@cache
def network_mode() -> NetworkMode:
    """`netns` where this user may create a network namespace (root, or a kernel that lets
    unprivileged users), else `audit_hook` (sockets refused inside Python only)."""
    probe = "import ctypes,sys; sys.exit(ctypes.CDLL(None).unshare(0x40000000) != 0)"
    done = subprocess.run([sys.executable, "-I", "-c", probe], env={}, capture_output=True)
    return "netns" if done.returncode == 0 else "audit_hook"


def _user_processes() -> int:
    """How many processes and threads this user has now (what RLIMIT_NPROC counts)."""
    uid, count = os.getuid(), 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    count += len(os.listdir(f"/proc/{entry.name}/task"))
            except OSError:
                continue  # it ended while we counted
    return count


class Sandbox:
    """Runs tasks (`{"kind": "python"|"sql"|"cypher", "code": ..., ...}`) in `child.py`.

    It protects the machine from the code, not the verdict from code written to fool it
    (the task runs in the process that writes the result): verdicts catch honest mistakes.
    """

    def __init__(self, config: VerifyConfig) -> None:
        self.config = config
        self.network = network_mode()
        # root is not bound by RLIMIT_NPROC (the audit hook refuses new processes there)
        nproc = _user_processes() + NPROC_HEADROOM if os.getuid() != 0 else 64
        self.limits = {"cpu_s": config.cpu_seconds, "memory_mb": config.memory_mb,
                       "file_mb": config.file_mb, "nproc": nproc}  # fmt: skip

    def run(self, task: dict[str, Any]) -> Outcome:
        """Run one task in a fresh scratch folder, removed afterwards."""
        payload = json.dumps({**task, "limits": self.limits, "network": self.network})
        with tempfile.TemporaryDirectory(prefix="codecurate-verify-") as scratch:
            try:
                done = subprocess.run(
                    [sys.executable, "-I", str(CHILD)], input=payload, capture_output=True,
                    text=True, cwd=scratch, env={}, timeout=self.config.wall_seconds,
                )  # fmt: skip
            except subprocess.TimeoutExpired:
                return Outcome(False, "timeout")
        return self._outcome(done)

    def _outcome(self, done: subprocess.CompletedProcess[str]) -> Outcome:
        if done.returncode in (-signal.SIGXCPU, -signal.SIGKILL):
            return Outcome(False, "timeout")  # the CPU limit's soft, then hard signal
        lines = done.stdout.strip().splitlines()
        if done.returncode != 0 or not lines:
            # a native crash under the address-space limit is, in practice, an allocation
            if done.returncode in (-signal.SIGSEGV, -signal.SIGABRT, -signal.SIGBUS):
                return Outcome(False, f"crashed: signal {-done.returncode} (memory limit?)")
            return Outcome(False, f"sandbox_error: exit {done.returncode}")
        try:
            result = json.loads(lines[-1])
        except ValueError:
            return Outcome(False, "sandbox_error: unreadable result")
        reason = result.get("reason")
        if reason:  # one line: engines' messages carry the query and a caret below it
            reason = reason.splitlines()[0][:MAX_REASON]
        return Outcome(result["ok"], reason, result.get("rows"),
                       tuple(result.get("checks", ())))  # fmt: skip
