"""JobRunner over both real stores: runs jobs, survives a stop mid-job, calls back a real HTTP server."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import pytest

from modelpier.errors import ServiceUnavailable
from modelpier.gateway.jobs import Job, JobRequest, JobResult, JobRunner, job_to_wire
from modelpier.gateway.jobs.redis_store import RedisJobStore
from modelpier.gateway.jobs.store import JobStore
from tests.conftest import RedisServer
from tests.integration.gateway.support import callback_receiver, eventually
from tests.support.procs import free_port

REQUEST = JobRequest("POST", "/v2/models/iris/infer", (("content-type", "application/json"),), b'{"inputs": [1]}')


async def echo(job: Job) -> JobResult:
    """What the gateway's forwarding path would answer: here, the request body under "echo"."""
    return JobResult(200, (("content-type", "application/json"),), b'{"echo": ' + job.request.body + b"}")


async def _true(value: bool) -> bool:
    return value


def finished(store: JobStore, job_id: str) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        job = await store.get(job_id)
        return job is not None and job.finished
    return check


def test_a_job_runs_and_its_result_is_posted_to_the_callback(open_store: Callable[[], JobStore]) -> None:
    async def scenario() -> None:
        store = open_store()
        async with callback_receiver(statuses=[503]) as receiver:  # the first delivery fails: retried
            runner = JobRunner(store, echo, concurrency=2, lease_s=5, poll_s=30, callback_backoff_s=0.05)
            runner.start()
            job = await store.submit("acme", "iris", REQUEST, callback_url=receiver.url)
            runner.wake()  # polls only every 30 s: the job must run because of the wake-up
            await eventually(lambda: _true(len(receiver.received) == 2), within=10, what="the callback")
            await runner.stop()
        done = await store.get(job.id)
        assert done is not None
        assert (done.status, done.attempts) == ("succeeded", 1)
        assert receiver.received == [job_to_wire(done)] * 2
        assert receiver.job_ids == [job.id] * 2
        assert receiver.received[0]["result"]["body"] == {"echo": {"inputs": [1]}}
        assert runner.callbacks_failed == 0
        await store.aclose()
    asyncio.run(scenario())


def test_a_job_interrupted_by_a_stop_is_taken_over_after_its_lease(open_store: Callable[[], JobStore]) -> None:
    """The restart case: the gateway that claimed the job goes away mid-way; another (or the same,
    restarted) runner picks the job up once the lease ends, and it runs to the end."""
    async def scenario() -> None:
        started = asyncio.Event()

        async def hangs(job: Job) -> JobResult:
            started.set()
            await asyncio.Event().wait()  # never answers: the gateway is stopped mid-job
            raise AssertionError("unreachable")

        first_store = open_store()
        first = JobRunner(first_store, hangs, concurrency=1, lease_s=0.6, poll_s=0.05)
        first.start()
        job = await first_store.submit("acme", "iris", REQUEST)
        await asyncio.wait_for(started.wait(), 10)
        await first.stop()
        await first_store.aclose()

        second_store = open_store()  # the gateway after its restart
        interrupted = await second_store.get(job.id)
        assert interrupted is not None
        assert (interrupted.status, interrupted.attempts) == ("running", 1)
        second = JobRunner(second_store, echo, concurrency=1, lease_s=0.6, poll_s=0.05)
        second.start()
        await eventually(finished(second_store, job.id), within=10, what="the job to be taken over")
        await second.stop()
        done = await second_store.get(job.id)
        assert done is not None
        assert (done.status, done.attempts) == ("succeeded", 2)
        await second_store.aclose()
    asyncio.run(scenario())


def test_a_long_job_keeps_its_lease(open_store: Callable[[], JobStore]) -> None:
    async def scenario() -> None:
        store, rival = open_store(), open_store()
        release, started = asyncio.Event(), asyncio.Event()

        async def slow(job: Job) -> JobResult:
            started.set()
            await release.wait()
            return await echo(job)

        runner = JobRunner(store, slow, concurrency=1, lease_s=0.3, poll_s=0.05)
        runner.start()
        job = await store.submit("acme", "iris", REQUEST)
        await asyncio.wait_for(started.wait(), 10)
        # Over several lease lengths the running job is renewed, so a rival never gets it.
        deadline = asyncio.get_running_loop().time() + 1.0
        while asyncio.get_running_loop().time() < deadline:
            assert await rival.claim(0.3) is None
            await asyncio.sleep(0.05)
        release.set()
        await eventually(finished(store, job.id), what="the job to finish")
        await runner.stop()
        done = await store.get(job.id)
        assert done is not None
        assert (done.status, done.attempts) == ("succeeded", 1)
        await store.aclose()
        await rival.aclose()
    asyncio.run(scenario())


def test_errors_of_execute_fail_the_job(open_store: Callable[[], JobStore], caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        store = open_store()

        async def broken(job: Job) -> JobResult:
            if job.request.path == "/unavailable":
                raise ServiceUnavailable("deployment acme/iris has no ready replica")
            raise RuntimeError("boom")

        async with callback_receiver() as receiver:
            runner = JobRunner(store, broken, concurrency=2, lease_s=5, poll_s=0.05)
            runner.start()
            known = await store.submit("acme", "iris", JobRequest("POST", "/unavailable", (), b""),
                                       callback_url=receiver.url)
            unknown = await store.submit("acme", "iris", REQUEST)
            for job in (known, unknown):
                await eventually(finished(store, job.id), what="the job to fail")
            await eventually(lambda: _true(len(receiver.received) == 1), what="the failure's callback")
            await runner.stop()
        one, two = await store.get(known.id), await store.get(unknown.id)
        assert one is not None
        assert two is not None
        assert (one.status, one.error) == ("failed", "deployment acme/iris has no ready replica")
        assert (two.status, two.error) == ("failed", "RuntimeError: boom")
        assert receiver.received[0]["error"] == one.error
        await store.aclose()
    with caplog.at_level(logging.ERROR, logger="modelpier.gateway.jobs"):
        asyncio.run(scenario())
    assert any("failed" in r.getMessage() for r in caplog.records)


def test_a_job_whose_runners_keep_dying_fails_after_max_attempts(open_store: Callable[[], JobStore]) -> None:
    async def scenario() -> None:
        store = open_store()
        job = await store.submit("acme", "iris", REQUEST)
        for attempt in range(1, 3):  # two runners died holding it
            claimed = None

            async def claimable() -> bool:
                nonlocal claimed
                claimed = await store.claim(0.05)
                return claimed is not None

            await eventually(claimable, what=f"claim {attempt}")
            assert claimed is not None
            assert claimed.attempts == attempt
        calls: list[str] = []

        async def never(job: Job) -> JobResult:
            calls.append(job.id)
            return await echo(job)

        runner = JobRunner(store, never, concurrency=1, lease_s=5, poll_s=0.05, max_attempts=2)
        runner.start()
        await eventually(finished(store, job.id), what="the job to be given up")
        await runner.stop()
        given_up = await store.get(job.id)
        assert given_up is not None
        assert (given_up.status, given_up.attempts) == ("failed", 3)
        assert given_up.error is not None
        assert "gave up after 2 attempts" in given_up.error
        assert calls == []
        await store.aclose()
    asyncio.run(scenario())


def test_concurrency_bounds_the_jobs_running_at_once(open_store: Callable[[], JobStore]) -> None:
    async def scenario() -> None:
        store = open_store()
        release = asyncio.Event()
        running, most = 0, 0

        async def tracked(job: Job) -> JobResult:
            nonlocal running, most
            running += 1
            most = max(most, running)
            await release.wait()
            running -= 1
            return await echo(job)

        runner = JobRunner(store, tracked, concurrency=3, lease_s=5, poll_s=0.05)
        runner.start()
        jobs = [await store.submit("acme", "iris", REQUEST) for _ in range(7)]
        runner.wake()
        await eventually(lambda: _true(running == 3), what="three jobs running")
        release.set()
        for job in jobs:
            await eventually(finished(store, job.id), what="every job to finish")
        await runner.stop()
        assert most == 3
        assert runner.completed == 7
        await store.aclose()
    asyncio.run(scenario())


def test_an_unreachable_callback_never_fails_the_job(open_store: Callable[[], JobStore],
                                                     caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        store = open_store()
        runner = JobRunner(store, echo, concurrency=1, lease_s=5, poll_s=0.05, callback_attempts=2,
                           callback_backoff_s=0.01, callback_timeout_s=2)
        runner.start()
        job = await store.submit("acme", "iris", REQUEST, callback_url=f"http://127.0.0.1:{free_port()}/gone")
        await eventually(lambda: _true(runner.callbacks_failed == 1), what="the callback to be given up")
        await runner.stop()
        done = await store.get(job.id)
        assert done is not None
        assert done.status == "succeeded"
        await store.aclose()
    with caplog.at_level(logging.WARNING, logger="modelpier.gateway.jobs"):
        asyncio.run(scenario())
    assert any("gave up the callback" in r.getMessage() for r in caplog.records)


def test_the_runner_purges_old_finished_jobs(open_store: Callable[[], JobStore]) -> None:
    async def scenario() -> None:
        store = open_store()
        runner = JobRunner(store, echo, concurrency=1, lease_s=5, poll_s=0.05, retention_s=0.01,
                           purge_every_s=0.05)
        runner.start()
        job = await store.submit("acme", "iris", REQUEST)

        async def gone() -> bool:
            return await store.get(job.id) is None

        await eventually(gone, what="the finished job to be purged")
        await runner.stop()
        await store.aclose()
    asyncio.run(scenario())


def test_a_redis_outage_refuses_submits_clearly_and_the_runner_carries_on(
        redis_server: RedisServer, caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        store = RedisJobStore(redis_server.url, timeout_s=1)
        runner = JobRunner(store, echo, concurrency=2, lease_s=5, poll_s=0.05)
        runner.start()
        redis_server.stop()
        with pytest.raises(ServiceUnavailable, match=r"job queue in Redis at 127\.0\.0\.1:\d+/0 failed to accept"):
            await store.submit("acme", "iris", REQUEST)
        await eventually(lambda: _true(any("cannot claim async jobs" in r.getMessage() for r in caplog.records)),
                         what="the runner to notice the outage")
        redis_server.start()  # back, empty: no persistence in this test server
        job = await store.submit("acme", "iris", REQUEST)
        runner.wake()
        await eventually(finished(store, job.id), what="the job submitted after the outage to run")
        await runner.stop()
        await store.aclose()

    with caplog.at_level(logging.INFO, logger="modelpier.gateway.jobs"):
        asyncio.run(scenario())
    assert sum("cannot claim async jobs" in r.getMessage() for r in caplog.records) == 1  # once per outage
    assert any("answers again" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("round_", range(12))
def test_stop_returns_whenever_it_comes(open_store: Callable[[], JobStore], round_: int) -> None:
    """Stop lands in a different phase each round (claiming, waiting, running, storing, renewing,
    calling back): it returns within a bound every time (it hung 2 runs in 16 on Redis, issue 13)."""
    async def scenario() -> None:
        store = open_store()
        async with callback_receiver() as receiver:
            runner = JobRunner(store, echo, concurrency=3, lease_s=0.3, poll_s=0.01, callback_backoff_s=0.01)
            runner.start()
            for _ in range(round_ % 4 + 1):
                await store.submit("acme", "iris", REQUEST, callback_url=receiver.url)
                runner.wake()
            await asyncio.sleep(round_ * 0.004)  # the point of the stop, not a wait for a condition
            async with asyncio.timeout(10):
                await runner.stop()
            assert not runner.running
        await store.aclose()
    asyncio.run(scenario())
