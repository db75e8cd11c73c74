"""``JobRunner``: background tasks that take jobs from a ``JobStore`` and run them.

Each of ``concurrency`` workers loops: claim a job, ``execute`` it (the gateway's forwarding path,
given by the composition root), store the answer, then POST the finished job to its callback URL.
A worker with nothing to claim waits for ``wake()`` (called after a submit on this gateway) or
``poll_s`` (jobs submitted through another gateway, leases that expired), whichever comes first.

While a job runs its lease is renewed every third of ``lease_s``. ``stop()`` cancels the workers;
the interrupted jobs keep their leases, which expire, and then any runner (this gateway after a
restart, or another one) claims them again. ``stop()`` always returns: a cancellation can be lost
(3.11's ``asyncio.wait_for`` returns the result of an awaitable that finished in the same loop turn
as the cancel, and a client library may swallow one), so workers also check a stop flag at every
turn, and ``stop()`` cancels again whatever is still running until it has ended.

A job claimed more than ``max_attempts`` times (its runner kept dying under it) fails instead of
running again. Callbacks are best effort: a few tries
with backoff, each failure logged, never a reason to fail the job (its result stays readable).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import httpx

from modelpier.errors import PierError
from modelpier.gateway.jobs.model import Job, JobResult
from modelpier.gateway.jobs.store import JobStore
from modelpier.gateway.jobs.wire import job_to_wire

log = logging.getLogger("modelpier.gateway.jobs")

Execute = Callable[[Job], Awaitable[JobResult]]

_RECANCEL_S = 0.5  # how long stop() waits for a cancelled task before cancelling it again


class JobRunner:
    def __init__(self, store: JobStore, execute: Execute, *, concurrency: int = 4, lease_s: float = 30.0,
                 poll_s: float = 1.0, callback_timeout_s: float = 10.0, callback_attempts: int = 3,
                 callback_backoff_s: float = 0.5, max_attempts: int = 3, retention_s: float | None = None,
                 purge_every_s: float = 300.0, http: httpx.AsyncClient | None = None) -> None:
        if concurrency < 1 or lease_s <= 0 or poll_s <= 0:
            raise ValueError("concurrency must be >= 1, lease_s and poll_s > 0")
        self.store, self.execute = store, execute
        self.concurrency, self.lease_s, self.poll_s = concurrency, lease_s, poll_s
        self.callback_timeout_s, self.callback_attempts = callback_timeout_s, callback_attempts
        self.callback_backoff_s, self.max_attempts = callback_backoff_s, max_attempts
        self.retention_s, self.purge_every_s = retention_s, purge_every_s
        self._http, self._own_http = http, http is None
        self._wakeup = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._callbacks: set[asyncio.Task[None]] = set()
        self._store_error: str | None = None
        self._stopping = False
        self.completed = 0  # jobs this runner finished (either way), for /healthz and metrics
        self.callbacks_failed = 0

    @property
    def running(self) -> bool:
        return bool(self._tasks)

    def start(self) -> None:
        """Start the workers (and the purge loop when ``retention_s`` is set) on the running loop."""
        if self._tasks:
            return
        self._stopping = False
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=self.callback_timeout_s, trust_env=False)
        self._tasks = [asyncio.create_task(self._work(), name=f"job worker {i}") for i in range(self.concurrency)]
        if self.retention_s is not None:
            self._tasks.append(asyncio.create_task(self._purge_loop(), name="job purge"))

    def wake(self) -> None:
        """A job was submitted: idle workers claim now instead of at their next poll."""
        self._wakeup.set()

    async def stop(self) -> None:
        """Cancel workers and pending callbacks; interrupted jobs are taken over when their lease ends."""
        self._stopping = True
        tasks = {*self._tasks, *self._callbacks}
        self._tasks = []
        await _end(tasks)
        if self._http is not None and self._own_http:
            await self._http.aclose()
            self._http = None

    # -- workers -------------------------------------------------------------------------------------
    async def _work(self) -> None:
        while not self._stopping:
            self._wakeup.clear()  # before claiming: a submit from now on sets it again, no wake-up is lost
            try:
                job = await self.store.claim(self.lease_s)
            except Exception as exc:  # the loop never dies: a store outage is retried every poll
                self._store_failed(exc)
                await asyncio.sleep(self.poll_s)
                continue
            self._store_ok()
            if self._stopping:
                return  # a job claimed as we stop keeps its lease, which expires: another runner takes it
            if job is None:
                # asyncio.timeout, not wait_for: it never turns a cancel into a normal return.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.poll_s):
                        await self._wakeup.wait()
                continue
            try:
                await self._run(job)
            except Exception:  # storing the outcome failed: the lease expires and the job runs again
                log.exception("could not store the outcome of job %s; it will run again after its lease", job.id)

    async def _run(self, job: Job) -> None:
        if job.attempts > self.max_attempts:
            finished = await self.store.fail(job.id, f"gave up after {self.max_attempts} attempts: the gateway "
                                                     "running the job stopped before it finished each time")
        else:
            heartbeat = asyncio.create_task(self._renew(job.id), name=f"lease {job.id}")
            try:
                result = await self.execute(job)
            except PierError as exc:
                finished = await self.store.fail(job.id, exc.message)
            except Exception as exc:
                log.exception("job %s of %s/%s failed", job.id, job.project, job.deployment)
                finished = await self.store.fail(job.id, f"{type(exc).__name__}: {exc}")
            else:
                finished = await self.store.complete(job.id, result)
            finally:
                # Not `suppress(CancelledError): await heartbeat`: that would also swallow a cancel of this
                # worker arriving meanwhile (stop() during the wait), and the worker would loop on.
                await _end({heartbeat})
        if finished is None:
            log.info("job %s was finished by another runner first (its lease had expired); result kept", job.id)
            return
        self.completed += 1
        if finished.callback_url:
            task = asyncio.create_task(self._callback(finished), name=f"callback {job.id}")
            self._callbacks.add(task)
            task.add_done_callback(self._callbacks.discard)

    async def _renew(self, job_id: str) -> None:
        while not self._stopping:
            await asyncio.sleep(self.lease_s / 3)
            try:
                if not await self.store.renew(job_id, self.lease_s):
                    log.warning("job %s is no longer leased to this runner; another may run it too", job_id)
                    return
            except Exception as exc:
                log.warning("could not renew the lease of job %s (%s); retrying", job_id, exc)

    async def _callback(self, job: Job) -> None:
        assert job.callback_url is not None
        assert self._http is not None
        payload = job_to_wire(job)
        problem = ""
        for attempt in range(self.callback_attempts):
            if attempt:
                await asyncio.sleep(self.callback_backoff_s * 2 ** (attempt - 1))
            try:
                response = await self._http.post(job.callback_url, json=payload, timeout=self.callback_timeout_s,
                                                 headers={"x-pier-job-id": job.id})
            except httpx.HTTPError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            else:
                if response.is_success:
                    return
                problem = f"HTTP {response.status_code}"
            log.info("callback for job %s to %s failed (%s), attempt %d of %d", job.id, job.callback_url, problem,
                     attempt + 1, self.callback_attempts)
        self.callbacks_failed += 1
        log.warning("gave up the callback for job %s of %s/%s to %s after %d attempts (%s); the result stays "
                    "readable by polling the job", job.id, job.project, job.deployment, job.callback_url,
                    self.callback_attempts, problem)

    async def _purge_loop(self) -> None:
        assert self.retention_s is not None
        while not self._stopping:
            try:
                purged = await self.store.purge(self.retention_s)
            except Exception as exc:
                log.warning("could not purge finished jobs: %s", exc)
            else:
                if purged:
                    log.info("purged %d jobs finished more than %gs ago", purged, self.retention_s)
            await asyncio.sleep(self.purge_every_s)

    def _store_failed(self, exc: Exception) -> None:
        message = str(exc.message) if isinstance(exc, PierError) else f"{type(exc).__name__}: {exc}"
        if self._store_error is None:
            log.warning("cannot claim async jobs (%s); retrying every %gs", message, self.poll_s)
        self._store_error = message

    def _store_ok(self) -> None:
        if self._store_error is not None:
            log.info("the job store answers again")
        self._store_error = None


async def _end(tasks: set[asyncio.Task[None]]) -> None:
    """Cancel ``tasks`` and return once every one has ended. A task that swallowed its cancel (a client
    library can) is cancelled again every ``_RECANCEL_S``; a cancel of the caller still propagates."""
    pending = tasks
    while pending:
        for task in pending:
            task.cancel()
        done, pending = await asyncio.wait(pending, timeout=_RECANCEL_S)
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                log.error("job runner task %s failed", task.get_name(), exc_info=task.exception())
