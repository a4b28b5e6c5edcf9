"""The cost ledger and the response cache, in one SQLite file next to the pipeline.

Every request is a row (run, record, model, tokens, cost, latency, status), committed as it
returns, so a crash loses nothing that was paid for. The cache maps a content hash of the
request (messages, model, parameters) to its answer: a rerun or a resumed run pays for no
request twice. Submitted batch jobs are kept too, so a resumed run polls them again instead
of submitting twice. The raw replies of malformed and flagged answers are kept (redacted and
capped by the caller) so that anyone can read why an answer failed.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
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
    protocol: str | None = None  # how the answer was asked for (annotators.tasks.PROTOCOLS)


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
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(requests)")}
        if "protocol" not in columns:  # a ledger written before answer protocols
            self._db.execute("ALTER TABLE requests ADD COLUMN protocol TEXT")

    def close(self) -> None:
        self._db.close()

    # runs
    def start_run(
        self, run_id: str, *, dataset: str, provider: str, model: str, mode: str, records: int,
        budget_usd: float, estimate: tuple[float, float, float],
    ) -> None:  # fmt: skip
        with self._db:
            self._db.execute(
                "INSERT INTO runs (run_id, dataset, provider, model, mode, started_at, records,"
                " budget_usd, estimate_low_usd, estimate_usd, estimate_high_usd)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (run_id, dataset, provider, model, mode, now(), records, budget_usd, *estimate),
            )

    def finish_run(self, run_id: str, status: str) -> None:
        with self._db:
            self._db.execute(
                "UPDATE runs SET finished_at = ?, status = ? WHERE run_id = ?",
                (now(), status, run_id),
            )

    # requests
    def record(self, run_id: str, dataset: str, provider: str, model: str, row: RequestRow) -> None:
        """Write one request's outcome, durably, before anything else happens."""
        with self._db:
            self._db.execute(
                "INSERT INTO requests (run_id, dataset, record_id, task, provider, model, mode,"
                " status, cache_key, estimated_prompt_tokens, prompt_tokens, completion_tokens,"
                " reserved_usd, cost_usd, latency_s, error, created_at, protocol)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (run_id, dataset, row.record_id, row.task, provider, model, row.mode, row.status,
                 row.cache_key, row.estimated_prompt_tokens, row.prompt_tokens,
                 row.completion_tokens, row.reserved_usd, row.cost_usd, row.latency_s, row.error,
                 now(), row.protocol),
            )  # fmt: skip

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

    def cache(self, key: str, model: str, reply: Reply) -> None:
        with self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO cache VALUES (?, ?, ?, ?, ?, ?)",
                (key, model, reply.text, reply.prompt_tokens, reply.completion_tokens, now()),
            )

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
