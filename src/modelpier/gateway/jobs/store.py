"""``JobStore``: where accepted jobs wait, run and keep their results. One contract, two stores.

Guarantees every store keeps (tests/integration/gateway/test_job_stores.py runs one suite on both):

- ``submit`` returns only once the job is stored as durably as the store can (the 202 promises it).
- ``claim`` hands each job to one runner at a time, atomically across processes and gateways: the
  oldest runnable job, where runnable means queued, or running with its lease expired (its runner
  stopped or crashed; this is how a job accepted before a gateway restart still runs). Expired
  leases go first. Claiming counts an attempt and starts a lease of ``lease_s``.
- ``renew`` extends the lease of a job that is still running; a runner renews while it works, so a
  long job is not taken over.
- ``complete`` / ``fail`` finish a running job and return it; they return None when the job is not
  running any more (another runner finished it first after a lease expired: the first result wins).
  Execution is therefore at least once: a job whose runner stalled past its lease may run twice.
- ``purge`` deletes finished jobs last updated more than ``older_than_s`` ago.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from modelpier.gateway.jobs.model import Job, JobRequest, JobResult


class JobStore(Protocol):
    async def submit(self, project: str, deployment: str, request: JobRequest, *,
                     callback_url: str | None = None) -> Job: ...

    async def claim(self, lease_s: float) -> Job | None: ...

    async def renew(self, job_id: str, lease_s: float) -> bool: ...

    async def complete(self, job_id: str, result: JobResult) -> Job | None: ...

    async def fail(self, job_id: str, error: str) -> Job | None: ...

    async def get(self, job_id: str) -> Job | None: ...

    async def purge(self, older_than_s: float) -> int: ...

    async def aclose(self) -> None: ...


def default_jobs_path(home: Path) -> Path:
    return home / "gateway" / "jobs.db"


def open_job_store(home: Path, redis_url: str | None) -> JobStore:
    """Redis when a URL is configured (settings ``gateway.redis_url``), else SQLite under ``home``."""
    if redis_url:
        from modelpier.gateway.jobs.redis_store import RedisJobStore

        return RedisJobStore(redis_url)
    from modelpier.gateway.jobs.sqlite_store import SqliteJobStore

    return SqliteJobStore(default_jobs_path(home))
