"""``SqliteJobStore``: jobs in one SQLite file, the one-machine default (``$PIER_HOME/gateway/jobs.db``).

Every statement runs on one dedicated thread with one connection, so the event loop never blocks
on the disk and the store's calls are serialised within a process. The file is in WAL mode with
``synchronous=FULL``: a ``submit`` that returned is on disk, through a crash or a power cut.
``claim`` is one ``BEGIN IMMEDIATE`` transaction (select, then update), so gateways sharing the
file (several processes on one machine) never claim the same job. The file is created mode 0600:
it holds request bodies.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import orjson

from modelpier.errors import ServiceUnavailable, StoreBusy
from modelpier.gateway.jobs.model import Job, JobRequest, JobResult, job_status, new_job_id

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    project TEXT NOT NULL,
    deployment TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed')),
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    lease_until REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    headers TEXT NOT NULL,
    body BLOB NOT NULL,
    callback_url TEXT,
    result_status INTEGER,
    result_headers TEXT,
    result_body BLOB,
    error TEXT
);
CREATE INDEX IF NOT EXISTS jobs_by_status_created ON jobs (status, created_at);
CREATE INDEX IF NOT EXISTS jobs_by_status_lease ON jobs (status, lease_until);
CREATE INDEX IF NOT EXISTS jobs_by_status_updated ON jobs (status, updated_at);
PRAGMA user_version = 1;
"""
_SELECT = ("SELECT id, project, deployment, status, created_at, updated_at, attempts, method, path, headers, body, "
           "callback_url, result_status, result_headers, result_body, error FROM jobs WHERE id = ?")
# Finishing applies only to a running job: a second runner's late result is not stored over the first.
_COMPLETE = ("UPDATE jobs SET status = 'succeeded', result_status = ?, result_headers = ?, result_body = ?, "
             "updated_at = ?, lease_until = NULL WHERE id = ? AND status = 'running'")
_FAIL = ("UPDATE jobs SET status = 'failed', error = ?, updated_at = ?, lease_until = NULL "
         "WHERE id = ? AND status = 'running'")


def _pairs(text: str | None) -> tuple[tuple[str, str], ...]:
    return tuple((str(k), str(v)) for k, v in orjson.loads(text or "[]"))


def _job(row: tuple[Any, ...]) -> Job:
    (job_id, project, deployment, status, created_at, updated_at, attempts, method, path, headers, body,
     callback_url, result_status, result_headers, result_body, error) = row
    result = None if result_status is None else JobResult(int(result_status), _pairs(result_headers),
                                                          bytes(result_body or b""))
    return Job(job_id, project, deployment, job_status(status), float(created_at), float(updated_at),
               JobRequest(method, path, _pairs(headers), bytes(body)), callback_url, int(attempts), result, error)


class SqliteJobStore:
    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self._clock = clock
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pier-jobs")
        self._conn: sqlite3.Connection | None = None

    # -- the store's thread -----------------------------------------------------------------------
    def _open(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not self.path.exists():
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
        conn = sqlite3.connect(self.path, timeout=10.0, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.executescript(_SCHEMA)
        return conn

    def _call(self, operation: Callable[[sqlite3.Connection], T]) -> T:
        try:
            if self._conn is None:
                self._conn = self._open()
            return operation(self._conn)
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise StoreBusy(f"the job store {self.path} is locked by another writer; retry") from exc
            raise ServiceUnavailable(f"the job store {self.path} failed: {exc}") from exc
        except (sqlite3.DatabaseError, OSError) as exc:
            raise ServiceUnavailable(f"the job store {self.path} failed: {exc}") from exc

    async def _run(self, operation: Callable[[sqlite3.Connection], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._call, operation)

    @staticmethod
    def _transaction(conn: sqlite3.Connection, body: Callable[[], T]) -> T:
        conn.execute("BEGIN IMMEDIATE")  # takes the write lock first: no two claimers read the same row
        try:
            value = body()
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return value

    @staticmethod
    def _row(conn: sqlite3.Connection, job_id: str) -> Job | None:
        row = conn.execute(_SELECT, (job_id,)).fetchone()
        return None if row is None else _job(row)

    # -- the protocol -------------------------------------------------------------------------------
    async def submit(self, project: str, deployment: str, request: JobRequest, *,
                     callback_url: str | None = None) -> Job:
        now = self._clock()
        job = Job(new_job_id(), project, deployment, "queued", now, now, request, callback_url)

        def insert(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO jobs (id, project, deployment, status, created_at, updated_at, method, path, headers, "
                "body, callback_url) VALUES (?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?)",
                (job.id, project, deployment, now, now, request.method, request.path,
                 orjson.dumps(request.headers).decode(), request.body, callback_url))

        await self._run(insert)
        return job

    async def claim(self, lease_s: float) -> Job | None:
        def claim(conn: sqlite3.Connection) -> Job | None:
            def pick() -> Job | None:
                now = self._clock()
                row = conn.execute("SELECT id FROM jobs WHERE status = 'running' AND lease_until <= ? "
                                   "ORDER BY lease_until LIMIT 1", (now,)).fetchone() \
                    or conn.execute("SELECT id FROM jobs WHERE status = 'queued' "
                                    "ORDER BY created_at, rowid LIMIT 1").fetchone()
                if row is None:
                    return None
                conn.execute("UPDATE jobs SET status = 'running', attempts = attempts + 1, lease_until = ?, "
                             "updated_at = ? WHERE id = ?", (now + lease_s, now, row[0]))
                return self._row(conn, row[0])

            return self._transaction(conn, pick)

        return await self._run(claim)

    async def renew(self, job_id: str, lease_s: float) -> bool:
        def renew(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute("UPDATE jobs SET lease_until = ? WHERE id = ? AND status = 'running'",
                                  (self._clock() + lease_s, job_id))
            return cursor.rowcount == 1

        return await self._run(renew)

    async def _finish(self, job_id: str, statement: str, values: tuple[Any, ...]) -> Job | None:
        def finish(conn: sqlite3.Connection) -> Job | None:
            def update() -> Job | None:
                cursor = conn.execute(statement, (*values, self._clock(), job_id))
                return self._row(conn, job_id) if cursor.rowcount == 1 else None

            return self._transaction(conn, update)

        return await self._run(finish)

    async def complete(self, job_id: str, result: JobResult) -> Job | None:
        return await self._finish(job_id, _COMPLETE, (result.status, orjson.dumps(result.headers).decode(),
                                                      result.body))

    async def fail(self, job_id: str, error: str) -> Job | None:
        return await self._finish(job_id, _FAIL, (error,))

    async def get(self, job_id: str) -> Job | None:
        return await self._run(lambda conn: self._row(conn, job_id))

    async def purge(self, older_than_s: float) -> int:
        def purge(conn: sqlite3.Connection) -> int:
            cursor = conn.execute("DELETE FROM jobs WHERE status IN ('succeeded', 'failed') AND updated_at < ?",
                                  (self._clock() - older_than_s,))
            return cursor.rowcount

        return await self._run(purge)

    async def aclose(self) -> None:
        def close() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        await asyncio.get_running_loop().run_in_executor(self._executor, close)
        self._executor.shutdown(wait=True)
