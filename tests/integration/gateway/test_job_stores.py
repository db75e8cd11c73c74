"""One contract, run against SqliteJobStore (a real file) and RedisJobStore (a real redis-server)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from modelpier.gateway.jobs import JobRequest, JobResult
from modelpier.gateway.jobs.store import JobStore
from tests.integration.gateway.support import eventually

REQUEST = JobRequest("POST", "/v2/models/iris/infer?x=1", (("content-type", "application/json"), ("x-a", "b")),
                     b'{"inputs": []}')
RESULT = JobResult(200, (("content-type", "application/json"),), b'{"outputs": []}')


def test_a_submitted_job_is_stored_queued(open_store: Callable[[], JobStore]) -> None:
    async def scenario() -> None:
        store = open_store()
        before = time.time()
        job = await store.submit("acme", "iris", REQUEST, callback_url="http://127.0.0.1:1/hook")
        assert (job.status, job.attempts, job.result, job.error) == ("queued", 0, None, None)
        assert before - 1 <= job.created_at <= time.time() + 1
        stored = await store.get(job.id)
        assert stored == job
        assert stored is not None
        assert (stored.project, stored.deployment, stored.request) == ("acme", "iris", REQUEST)
        assert await store.get("no-such-job") is None
        await store.aclose()
    asyncio.run(scenario())


def test_binary_bodies_and_headers_round_trip(open_store: Callable[[], JobStore]) -> None:
    async def scenario() -> None:
        store = open_store()
        request = JobRequest("PUT", "/p", (("content-type", "application/octet-stream"), ("x-é", "ü")),
                             bytes(range(256)) * 4)
        job = await store.submit("acme", "iris", request)
        claimed = await store.claim(30)
        assert claimed is not None
        assert claimed.request == request
        result = JobResult(201, (("x-b", "1"), ("x-b", "2")), bytes(reversed(range(256))))
        done = await store.complete(job.id, result)
        assert done is not None
        assert done.result == result
        assert (await store.get(job.id)) == done
        await store.aclose()
    asyncio.run(scenario())


def test_claims_go_oldest_first_and_count_attempts(open_store: Callable[[], JobStore]) -> None:
    async def scenario() -> None:
        store = open_store()
        ids = [(await store.submit("acme", "iris", REQUEST)).id for _ in range(3)]
        claimed = [await store.claim(30) for _ in range(3)]
        assert [j.id for j in claimed if j is not None] == ids
        assert all(j is not None and (j.status, j.attempts) == ("running", 1) for j in claimed)
        assert await store.claim(30) is None
        await store.aclose()
    asyncio.run(scenario())


def test_complete_and_fail_finish_a_running_job_once(open_store: Callable[[], JobStore]) -> None:
    async def scenario() -> None:
        store = open_store()
        one = await store.submit("acme", "iris", REQUEST)
        two = await store.submit("acme", "iris", REQUEST)
        assert await store.complete(one.id, RESULT) is None  # still queued: nothing to finish
        await store.claim(30)
        await store.claim(30)
        done = await store.complete(one.id, RESULT)
        assert done is not None
        assert (done.status, done.result, done.error) == ("succeeded", RESULT, None)
        assert done.updated_at >= done.created_at
        failed = await store.fail(two.id, "no replica answered")
        assert failed is not None
        assert (failed.status, failed.result, failed.error) == ("failed", None, "no replica answered")
        # The first outcome wins: a late runner cannot overwrite it.
        assert await store.fail(one.id, "late") is None
        assert await store.complete(two.id, RESULT) is None
        assert (await store.get(one.id)) == done
        assert await store.renew(one.id, 30) is False
        assert await store.claim(30) is None
        await store.aclose()
    asyncio.run(scenario())


def test_an_expired_lease_lets_another_runner_take_the_job(open_store: Callable[[], JobStore]) -> None:
    async def scenario() -> None:
        first, second = open_store(), open_store()
        job = await first.submit("acme", "iris", REQUEST)
        claimed = await first.claim(0.3)
        assert claimed is not None
        assert await second.claim(0.3) is None  # leased
        assert await first.renew(job.id, 0.3) is True
        taken = None

        async def taken_over() -> bool:
            nonlocal taken
            taken = await second.claim(30)
            return taken is not None

        await eventually(taken_over, within=10, what="the lease to expire")
        assert taken is not None
        assert (taken.id, taken.status, taken.attempts) == (job.id, "running", 2)
        assert await second.complete(job.id, RESULT) is not None
        assert await first.complete(job.id, JobResult(500, (), b"late")) is None
        stored = await first.get(job.id)
        assert stored is not None
        assert stored.result == RESULT
        await first.aclose()
        await second.aclose()
    asyncio.run(scenario())


def test_accepted_jobs_survive_reopening_the_store(open_store: Callable[[], JobStore]) -> None:
    async def scenario() -> None:
        store = open_store()
        job = await store.submit("acme", "iris", REQUEST)
        await store.aclose()
        reopened = open_store()
        assert await reopened.get(job.id) == job
        claimed = await reopened.claim(30)
        assert claimed is not None
        assert claimed.id == job.id
        await reopened.aclose()
    asyncio.run(scenario())


def test_concurrent_claims_never_hand_one_job_to_two_runners(open_store: Callable[[], JobStore]) -> None:
    async def scenario() -> None:
        gateways = [open_store(), open_store()]  # two gateways on one SQLite file or one Redis
        submitted = {(await gateways[i % 2].submit("acme", "iris", REQUEST)).id for i in range(40)}
        claims: list[str] = []

        async def claimer(store: JobStore) -> None:
            while (job := await store.claim(30)) is not None:
                claims.append(job.id)

        await asyncio.gather(*(claimer(gateways[i % 2]) for i in range(8)))
        assert sorted(claims) == sorted(submitted)  # every job once, none twice
        for store in gateways:
            await store.aclose()
    asyncio.run(scenario())


def test_purge_deletes_only_old_finished_jobs(open_store: Callable[[], JobStore]) -> None:
    async def scenario() -> None:
        store = open_store()
        done, failed, waiting = [await store.submit("acme", "iris", REQUEST) for _ in range(3)]
        await store.claim(30)
        await store.claim(30)
        await store.complete(done.id, RESULT)
        await store.fail(failed.id, "x")
        assert await store.purge(3600) == 0
        purged = 0

        async def all_purged() -> bool:
            nonlocal purged
            purged += await store.purge(0)
            return purged == 2

        await eventually(all_purged, what="both finished jobs to be purged")
        assert await store.get(done.id) is None
        assert await store.get(failed.id) is None
        assert await store.get(waiting.id) is not None
        await store.aclose()
    asyncio.run(scenario())
