"""Asynchronous inference at the gateway: accept now (202 + job id), run through the same path later.

``submit`` stores the request (the caller's token is not stored: it was checked at submission, and
the job runs with the gateway's standing); the ``JobRunner`` calls ``execute``, which sends the
request through the ``Dispatcher`` like a live one. A job that meets a full deployment (503: no
ready replica, ``limits.maxInFlight``, a cold start) waits and tries again for up to ``patience_s``
— riding out load is what a queue is for — then fails with the reason; any other answer, a model's
4xx included, is the job's result.
"""

from __future__ import annotations

import asyncio
from typing import Any

from modelpier._lib.ids import new_id
from modelpier.errors import NotFound, ServiceUnavailable
from modelpier.gateway.app import SyncedTableSource
from modelpier.gateway.dispatch import Call, Dispatcher
from modelpier.gateway.jobs import Job, JobRequest, JobResult, JobRunner, JobStore, job_to_wire, validate_callback_url
from modelpier.spec.routing import DeploymentRoute


class AsyncJobs:
    def __init__(self, store: JobStore, dispatcher: Dispatcher, tables: SyncedTableSource, *, concurrency: int = 4,
                 lease_s: float = 30.0, retention_s: float | None = 86_400.0, patience_s: float = 120.0) -> None:
        self.store, self.dispatcher, self.tables = store, dispatcher, tables
        self.patience_s = patience_s
        self.runner = JobRunner(store, self.execute, concurrency=concurrency, lease_s=lease_s,
                                retention_s=retention_s)

    async def start(self) -> None:
        self.runner.start()

    async def stop(self) -> None:
        await self.runner.stop()
        await self.store.aclose()

    async def submit(self, route: DeploymentRoute, call: Call, callback_url: str | None) -> dict[str, Any]:
        if callback_url is not None:
            validate_callback_url(callback_url)
        headers = tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in call.headers)
        job = await self.store.submit(route.project, route.deployment,
                                      JobRequest(call.method, call.path, headers, call.body), callback_url=callback_url)
        self.runner.wake()
        return job_to_wire(job)

    async def status(self, project: str, deployment: str, job_id: str) -> dict[str, Any] | None:
        job = await self.store.get(job_id)
        if job is None or (job.project, job.deployment) != (project, deployment):
            return None  # another deployment's job is as unknown as a missing one
        return job_to_wire(job)

    async def execute(self, job: Job) -> JobResult:
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self.patience_s
        headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in job.request.headers]
        call = Call(job.request.method, job.request.path, headers, job.request.body, f"job-{job.id[:8]}-{new_id(4)}")
        while not self.tables.synced:  # a gateway just started: no table yet says nothing of the deployment
            if loop.time() > give_up:
                raise ServiceUnavailable("this gateway has not loaded the routing table from the control plane")
            await self.tables.wait_change(1.0)
        delay = 0.5
        while True:
            route = self.tables.get().get(job.project, job.deployment)
            if route is None:
                raise NotFound(f"deployment {job.project}/{job.deployment} no longer exists")
            served = await self.dispatcher.serve(route, call)
            answer = served.answer
            if answer.status != 503:
                return JobResult(answer.status, tuple((k.decode("latin-1"), v.decode("latin-1"))
                                                      for k, v in answer.headers), answer.body)
            if loop.time() + delay > give_up:
                raise ServiceUnavailable(f"{job.project}/{job.deployment} stayed unavailable for "
                                         f"{self.patience_s:g}s: {answer.body[:300].decode(errors='replace')}")
            await asyncio.sleep(delay)  # the deployment is full or starting: back off, then try again
            delay = min(delay * 2, 10.0)
