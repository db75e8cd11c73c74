"""``JobRunner.stop()`` returns whatever phase the workers are in, even when a cancel is swallowed.

A store stub parks a worker in one phase (claiming, running, renewing a lease, storing the outcome,
calling back) and stop() must return within a bound. Each phase is hit after 0..3 extra loop turns,
so the cancel lands at different points of the same phase (the race that hung `make test`: 3.11's
``wait_for`` returns normally when its awaitable finishes in the turn the cancel arrives). The runner
over the real stores is in tests/integration/gateway/test_job_runner.py.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import httpx
import pytest

from modelpier.gateway.jobs import Job, JobRequest, JobResult, JobRunner
from modelpier.gateway.jobs.model import new_job_id

REQUEST = JobRequest("POST", "/v2/models/iris/infer", (), b"{}")
STOP_BOUND_S = 5.0


@dataclass
class ParkingStore:
    """A JobStore with one queued job whose methods block forever in the phase named ``park``;
    ``swallow`` makes a blocked call swallow its cancel and return, as a buggy client library does."""

    park: str
    swallow: bool = False
    calls: dict[str, int] = field(default_factory=dict)
    entered: asyncio.Event = field(default_factory=asyncio.Event)
    queued: bool = True
    claims_wanted: int = 0
    claims_seen: asyncio.Event = field(default_factory=asyncio.Event)

    async def _maybe_park(self, phase: str) -> None:
        self.calls[phase] = self.calls.get(phase, 0) + 1
        if phase == "claim" and self.calls[phase] >= self.claims_wanted:
            self.claims_seen.set()
        if phase != self.park:
            return
        self.entered.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            if not self.swallow:
                raise

    async def claim(self, lease_s: float) -> Job | None:
        await self._maybe_park("claim")
        if not self.queued:
            return None
        self.queued = False
        return Job(id=new_job_id(), project="acme", deployment="iris", request=REQUEST, status="running",
                   created_at=0.0, updated_at=0.0, attempts=1, callback_url="http://127.0.0.1:9/hook")

    async def renew(self, job_id: str, lease_s: float) -> bool:
        await self._maybe_park("renew")
        return True

    async def complete(self, job_id: str, result: JobResult) -> Job | None:
        await self._maybe_park("complete")
        return Job(id=job_id, project="acme", deployment="iris", request=REQUEST, status="succeeded",
                   created_at=0.0, updated_at=0.0, attempts=1, result=result, callback_url="http://127.0.0.1:9/hook")

    async def fail(self, job_id: str, error: str) -> Job | None:
        await self._maybe_park("fail")
        return None

    async def purge(self, older_than_s: float) -> int:
        await self._maybe_park("purge")
        return 0


def _runner(store: ParkingStore, *, lease_s: float = 30.0) -> JobRunner:
    async def execute(job: Job) -> JobResult:
        if store.park == "execute":
            store.entered.set()
            await asyncio.Event().wait()
        elif store.park == "renew":
            await asyncio.Event().wait()  # runs while the lease is renewed
        return JobResult(200, (), b"{}")

    async def hang(request: httpx.Request) -> httpx.Response:
        store.entered.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    http = httpx.AsyncClient(transport=httpx.MockTransport(hang))
    return JobRunner(store, execute, concurrency=2, lease_s=lease_s, poll_s=0.01, retention_s=60,  # type: ignore[arg-type]
                     http=http)


@pytest.mark.parametrize("turns", [0, 1, 2, 3])
@pytest.mark.parametrize(("park", "swallow"), [
    ("idle", False), ("claim", False), ("claim", True), ("execute", False), ("renew", False), ("renew", True),
    ("complete", False), ("complete", True), ("callback", False), ("purge", True),
])
def test_stop_returns_in_every_phase(park: str, swallow: bool, turns: int) -> None:
    async def scenario() -> None:
        store = ParkingStore(park, swallow)
        runner = _runner(store, lease_s=0.03 if park == "renew" else 30.0)
        runner.start()
        if park == "idle":
            store.queued, store.claims_wanted = False, 3
            async with asyncio.timeout(STOP_BOUND_S):
                await store.claims_seen.wait()  # the workers are polling an empty store
        else:
            async with asyncio.timeout(STOP_BOUND_S):
                await store.entered.wait()
        for _ in range(turns):
            await asyncio.sleep(0)
        async with asyncio.timeout(STOP_BOUND_S):
            await runner.stop()
        assert not runner.running
        claims = store.calls.get("claim", 0)
        await asyncio.sleep(0.05)  # five polls of a live worker: none may claim after stop()
        assert store.calls.get("claim", 0) == claims
    asyncio.run(scenario())


@pytest.mark.parametrize("turns", range(6))
def test_stop_right_after_a_wake_up(turns: int) -> None:
    """The wake-up and the cancel land in the same loop turn (the hang of issue 13, item 10)."""
    async def scenario() -> None:
        store = ParkingStore("none", queued=False, claims_wanted=4)
        runner = JobRunner(store, _never, concurrency=4, lease_s=30, poll_s=60)  # type: ignore[arg-type]
        runner.start()
        async with asyncio.timeout(STOP_BOUND_S):
            await store.claims_seen.wait()  # every worker has found nothing and waits for a wake-up
        for _ in range(2):
            await asyncio.sleep(0)
        runner.wake()
        for _ in range(turns):
            await asyncio.sleep(0)
        async with asyncio.timeout(STOP_BOUND_S):
            await runner.stop()
    asyncio.run(scenario())


async def _never(job: Job) -> JobResult:
    raise AssertionError("no job is queued")
