"""The cost ledger and the response cache, in one SQLite file next to the pipeline.

Every request is a row (run, record, model, tokens, cost, latency, status), written before it
is sent, at its worst-case cost, and settled to what it cost when it returns: a crash loses
nothing that was paid for, and a request that was in flight when its process died stays
booked at its worst case (it may have been billed). The cache maps a content hash of the
request (messages, model, parameters) to its answer: a rerun or a resumed run pays for no
request twice. Submitted batch jobs are kept too, so a resumed run polls them again instead
of submitting twice.

A run belongs to a job (the same requests for the same dataset): a run that resumes a killed
or unfinished one is the same job, and the job's spend is what the run cap is held to.
The raw replies of malformed and flagged answers are kept (redacted and capped by the
caller) so that anyone can read why an answer failed.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import uuid
from collections.abc import Iterable
from dataclasses import astuple, dataclass, fields
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from annotators.providers.base import Reply

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, dataset TEXT NOT NULL, provider TEXT NOT NULL, model TEXT NOT NULL,
    mode TEXT NOT NULL, started_at TEXT NOT NULL, finished_at TEXT, records INTEGER,
    budget_usd REAL, estimate_usd REAL, estimate_low_usd REAL, estimate_high_usd REAL,
    status TEXT NOT NULL DEFAULT 'running'
);
CREATE TABLE IF NOT EXISTS requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, dataset TEXT NOT NULL,
    record_id TEXT NOT NULL, task TEXT NOT NULL, provider TEXT NOT NULL, model TEXT NOT NULL,
    mode TEXT NOT NULL, status TEXT NOT NULL, cache_key TEXT,
    estimated_prompt_tokens INTEGER, prompt_tokens INTEGER, completion_tokens INTEGER,
    reserved_usd REAL, cost_usd REAL NOT NULL, latency_s REAL, error TEXT, created_at TEXT NOT NULL,
    protocol TEXT
);
CREATE INDEX IF NOT EXISTS requests_run ON requests (run_id);
CREATE INDEX IF NOT EXISTS requests_dataset ON requests (dataset);
CREATE TABLE IF NOT EXISTS cache (
    key TEXT PRIMARY KEY, model TEXT NOT NULL, text TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL, created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS replies (
    id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, record_id TEXT NOT NULL,
    path TEXT, task TEXT NOT NULL, status TEXT NOT NULL, reason TEXT NOT NULL, text TEXT NOT NULL,
    chars INTEGER NOT NULL, created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS replies_run ON replies (run_id);
CREATE TABLE IF NOT EXISTS batch_jobs (
    job_id TEXT PRIMARY KEY, run_id TEXT NOT NULL, provider TEXT NOT NULL, model TEXT NOT NULL,
    keys TEXT NOT NULL, reserved_usd REAL NOT NULL, state TEXT NOT NULL, created_at TEXT NOT NULL
);
"""
# Columns added since the first ledgers; opening an older file adds them.
_ADDED_COLUMNS = {
    "runs": {"job": "TEXT", "pid": "INTEGER", "host": "TEXT"},
    # 1 for a record's first request, 2 for the one that asks again after a malformed answer
    "requests": {"ask": "INTEGER NOT NULL DEFAULT 1", "protocol": "TEXT"},
}
# Request statuses that the ledger itself sets: written before sending, and in flight when the
# process that sent it died (both booked at their worst case).
SENT, LOST = "sent", "lost"


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def new_run_id() -> str:
    """Sortable by start time, unique across machines."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]


@dataclass(frozen=True)
class RequestRow:
    """One row of the ledger: what one request (or cache hit) cost."""

    record_id: str
    task: str
    status: str
    cost_usd: float
    cache_key: str | None = None
    estimated_prompt_tokens: int | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    reserved_usd: float | None = None
    latency_s: float | None = None
    error: str | None = None
    mode: str = "online"
    ask: int = 1
    protocol: str | None = None  # how the answer was asked for (annotators.tasks.PROTOCOLS)


_ROW_COLUMNS = [f.name for f in fields(RequestRow)]


@dataclass(frozen=True)
class KeptReply:
    """A raw reply kept for reading: why it was kept (`status` malformed or flagged, and the
    parse error or the flags as `reason`), the text, and its length before the cap."""

    record_id: str
    path: str | None
    task: str
    status: str
    reason: str
    text: str
    chars: int


class Ledger:
    """One SQLite file; a process writes to it from one thread (the runner's event loop)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        self._add_columns()

    def _add_columns(self) -> None:
        with self._db:
            for table, columns in _ADDED_COLUMNS.items():
                present = {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}
                for name, kind in columns.items():
                    if name not in present:
                        self._db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")

    def close(self) -> None:
        self._db.close()

    # runs
    def start_run(
        self, run_id: str, *, dataset: str, provider: str, model: str, mode: str, records: int,
        budget_usd: float, estimate: tuple[float, float, float], job: str | None = None,
    ) -> None:  # fmt: skip
        with self._db:
            self._db.execute(
                "INSERT INTO runs (run_id, dataset, provider, model, mode, started_at, records,"
                " budget_usd, estimate_low_usd, estimate_usd, estimate_high_usd, job, pid, host)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (run_id, dataset, provider, model, mode, now(), records, budget_usd, *estimate,
                 job, os.getpid(), socket.gethostname()),
            )  # fmt: skip

    def finish_run(self, run_id: str, status: str) -> None:
        with self._db:
            self._db.execute(
                "UPDATE runs SET finished_at = ?, status = ? WHERE run_id = ?",
                (now(), status, run_id),
            )

    def mark_killed_runs(self) -> list[str]:
        """Runs still `running` whose process on this machine is gone become `killed`; their
        requests that were in flight become `lost`, still booked at their worst case."""
        rows = self._db.execute(
            "SELECT run_id, pid FROM runs WHERE status = 'running' AND host = ? AND pid != ?",
            (socket.gethostname(), os.getpid()),
        ).fetchall()
        killed = [run_id for run_id, pid in rows if not _alive(pid)]
        with self._db:
            for run_id in killed:
                self._db.execute(
                    "UPDATE runs SET status = 'killed', finished_at = COALESCE((SELECT"
                    " MAX(created_at) FROM requests WHERE run_id = ?), started_at)"
                    " WHERE run_id = ?",
                    (run_id, run_id),
                )
                self._db.execute(
                    "UPDATE requests SET status = ?, error = ? WHERE run_id = ? AND status = ?",
                    (LOST, "in flight when its run was killed; booked at its worst case, as "
                     "it may have been billed", run_id, SENT),
                )  # fmt: skip
        return killed

    def job_spent(self, job: str) -> float:
        """USD spent by every run of a job (a killed run's requests in flight at their worst
        case)."""
        (total,) = self._db.execute(
            "SELECT COALESCE(SUM(cost_usd), 0) FROM requests"
            " WHERE run_id IN (SELECT run_id FROM runs WHERE job = ?)",
            (job,),
        ).fetchone()
        return float(total)

    # requests: a usable answer is cached in the transaction that books it (one commit)
    def record(
        self, run_id: str, dataset: str, provider: str, model: str, row: RequestRow,
        answer: Reply | None = None,
    ) -> int:  # fmt: skip
        """Write one request's outcome, durably, before anything else happens; its row id."""
        columns = ["run_id", "dataset", "provider", "model", "created_at", *_ROW_COLUMNS]
        with self._db:
            cursor = self._db.execute(
                f"INSERT INTO requests ({', '.join(columns)})"
                f" VALUES ({', '.join('?' * len(columns))})",
                (run_id, dataset, provider, model, now(), *astuple(row)),
            )
            if answer is not None:
                self._cache(row, model, answer)
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def update(
        self, request_id: int, row: RequestRow, model: str = "", answer: Reply | None = None
    ) -> None:
        """Settle a request written before it was sent to what came of it."""
        with self._db:
            self._db.execute(
                f"UPDATE requests SET {', '.join(f'{c} = ?' for c in _ROW_COLUMNS)} WHERE id = ?",
                (*astuple(row), request_id),
            )
            if answer is not None:
                self._cache(row, model, answer)

    def dataset_spent(self, dataset: str) -> float:
        """USD spent on a dataset over all its runs."""
        (total,) = self._db.execute(
            "SELECT COALESCE(SUM(cost_usd), 0) FROM requests WHERE dataset = ?", (dataset,)
        ).fetchone()
        return float(total)

    # cache
    def cached(self, key: str) -> Reply | None:
        row = self._db.execute(
            "SELECT text, prompt_tokens, completion_tokens FROM cache WHERE key = ?", (key,)
        ).fetchone()
        return Reply(*row) if row else None

    def _cache(self, row: RequestRow, model: str, reply: Reply) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO cache VALUES (?, ?, ?, ?, ?, ?)",
            (row.cache_key, model, reply.text, reply.prompt_tokens, reply.completion_tokens,
             now()),
        )  # fmt: skip

    # raw replies
    def keep_replies(self, run_id: str, replies: Iterable[KeptReply]) -> None:
        """Store raw replies of malformed or flagged answers (already redacted and capped)."""
        with self._db:
            self._db.executemany(
                "INSERT INTO replies (run_id, record_id, path, task, status, reason, text, chars,"
                " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(run_id, r.record_id, r.path, r.task, r.status, r.reason, r.text, r.chars, now())
                 for r in replies],
            )  # fmt: skip

    # batch jobs
    def add_batch_job(
        self, job_id: str, run_id: str, provider: str, model: str, keys: Iterable[str],
        reserved_usd: float,
    ) -> None:  # fmt: skip
        with self._db:
            self._db.execute(
                "INSERT INTO batch_jobs VALUES (?, ?, ?, ?, ?, ?, 'submitted', ?)",
                (job_id, run_id, provider, model, json.dumps(list(keys)), reserved_usd, now()),
            )

    def open_batch_jobs(self, provider: str, model: str) -> list[tuple[str, list[str], float]]:
        """(job id, cache keys, reserved USD) of jobs submitted and not yet collected."""
        rows = self._db.execute(
            "SELECT job_id, keys, reserved_usd FROM batch_jobs"
            " WHERE provider = ? AND model = ? AND state = 'submitted' ORDER BY created_at",
            (provider, model),
        ).fetchall()
        return [(job_id, json.loads(keys), reserved) for job_id, keys, reserved in rows]

    def close_batch_job(self, job_id: str, state: str) -> None:
        with self._db:
            self._db.execute("UPDATE batch_jobs SET state = ? WHERE job_id = ?", (state, job_id))

    # reading
    def frame(self, table: str) -> pl.DataFrame:
        """A whole table, for reports."""
        if table not in ("runs", "requests", "batch_jobs", "replies"):
            raise ValueError(f"no ledger table {table!r}")
        return pl.read_database(f"SELECT * FROM {table}", self._db, infer_schema_length=None)


def _alive(pid: int) -> bool:
    """Whether a process with this id runs on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True
