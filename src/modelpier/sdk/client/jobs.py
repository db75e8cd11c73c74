"""Asynchronous jobs through the gateway: ``submit()`` → ``Job`` → ``wait()`` / ``result()``.

The gateway accepts a prediction sent with ``Prefer: respond-async`` with ``202`` and a job id,
runs it later through the same path as a live request, and answers ``GET /{project}/{name}/jobs/{id}``
with its state (docs/gateway-patterns.md). A job handle polls that URL with a growing interval
(50 ms up to 1 s) until the job is ``succeeded`` or ``failed``. ``result()`` decodes the stored
answer like a live one; a stored error answer (the model's 400) raises as it would have live; a
failed job raises ``RemoteError`` with the gateway's reason.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson

from modelpier.errors import DeadlineExceeded, RemoteError
from modelpier.sdk.client.core import ClientCore, Plan
from modelpier.sdk.client.failures import http_error

FINISHED = ("succeeded", "failed")
FIRST_POLL_S = 0.05
MAX_POLL_S = 1.0


@dataclass(frozen=True, slots=True)
class JobState:
    id: str
    status: str  # queued, running, succeeded, failed
    attempts: int
    doc: dict[str, Any]

    @property
    def done(self) -> bool:
        return self.status in FINISHED


def job_state(body: bytes) -> JobState:
    from modelpier.sdk.client.wire import loads

    doc = loads(body, "the job status")
    if not isinstance(doc, dict) or "id" not in doc or "status" not in doc:
        raise RemoteError(f"the gateway's job answer has no id and status: {str(doc)[:200]}")
    return JobState(str(doc["id"]), str(doc["status"]), int(doc.get("attempts") or 0), doc)


def job_answer(core: ClientCore, plan: Plan, state: JobState) -> Any:
    """The prediction a finished job holds, or the error it stands for."""
    if state.status == "failed":
        raise RemoteError(f"job {state.id} failed: {state.doc.get('error') or 'no reason given'}",
                          details={"job_id": state.id})
    result = state.doc.get("result") or {}
    headers = {str(k).lower(): str(v) for k, v in (result.get("headers") or {}).items()}
    body = result.get("body")
    if result.get("encoding") == "base64":
        raw = base64.b64decode(body or "")
    elif isinstance(body, bytes | str):
        raw = body.encode() if isinstance(body, str) else body
    else:
        raw = orjson.dumps(body)
    status = int(result.get("status") or 0)
    if status >= 300 or status == 0:
        raise http_error(status or 502, raw, headers.get("x-request-id") or plan.call.request_id,
                         headers.get("retry-after"))
    return core.answer(plan, raw, headers)


def next_poll(interval: float) -> float:
    return min(MAX_POLL_S, interval * 2)


class Job:
    """A job submitted with ``Client.submit``; thread-safe to poll."""

    def __init__(self, core: ClientCore, plan: Plan, state: JobState, fetch: Callable[[str], bytes]) -> None:
        self._core, self._plan, self._fetch = core, plan, fetch
        self.state = state
        self.url = f"{plan.route.base}/jobs/{state.id}"

    @property
    def id(self) -> str:
        return self.state.id

    def status(self) -> str:
        """Ask the gateway now; ``queued``, ``running``, ``succeeded`` or ``failed``."""
        self.state = job_state(self._fetch(self.url))
        return self.state.status

    def wait(self, timeout: float | None = None) -> Job:
        """Poll until the job finished; ``DeadlineExceeded`` after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        interval = FIRST_POLL_S
        while not self.state.done and self.status() not in FINISHED:
            if deadline is not None and time.monotonic() + interval > deadline:
                raise DeadlineExceeded(f"job {self.id} is still {self.state.status} after {timeout:g}s",
                                       details={"job_id": self.id})
            time.sleep(interval)
            interval = next_poll(interval)
        return self

    def result(self, timeout: float | None = None) -> Any:
        """The prediction (waiting for it first), as ``predict`` would have returned it."""
        self.wait(timeout)
        return job_answer(self._core, self._plan, self.state)


class AsyncJob:
    """A job submitted with ``AsyncClient.submit``."""

    def __init__(self, core: ClientCore, plan: Plan, state: JobState,
                 fetch: Callable[[str], Awaitable[bytes]]) -> None:
        self._core, self._plan, self._fetch = core, plan, fetch
        self.state = state
        self.url = f"{plan.route.base}/jobs/{state.id}"

    @property
    def id(self) -> str:
        return self.state.id

    async def status(self) -> str:
        self.state = job_state(await self._fetch(self.url))
        return self.state.status

    async def wait(self, timeout: float | None = None) -> AsyncJob:
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        interval = FIRST_POLL_S
        while not self.state.done and await self.status() not in FINISHED:
            if deadline is not None and loop.time() + interval > deadline:
                raise DeadlineExceeded(f"job {self.id} is still {self.state.status} after {timeout:g}s",
                                       details={"job_id": self.id})
            await asyncio.sleep(interval)
            interval = next_poll(interval)
        return self

    async def result(self, timeout: float | None = None) -> Any:
        await self.wait(timeout)
        return job_answer(self._core, self._plan, self.state)
