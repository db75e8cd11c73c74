"""Cache, asynchronous jobs and the prediction log on the gateway's request path (fake replicas, real stores)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx

from modelpier.gateway.app import GatewayApp, SyncedTableSource
from modelpier.gateway.async_jobs import AsyncJobs
from modelpier.gateway.cache import MemoryCache
from modelpier.gateway.caching import CacheOnPath
from modelpier.gateway.compose import GatewayParts, build_gateway
from modelpier.gateway.dispatch import Dispatcher
from modelpier.gateway.jobs.sqlite_store import SqliteJobStore
from modelpier.gateway.predlog import PredictionLogger, read_predictions
from modelpier.gateway.recording import PredictionRecorder
from modelpier.gateway.table_client import StaticTable
from modelpier.spec.routing import DeploymentRoute, PredictorRoute, ReplicaEndpoint, RoutingTable, TrafficPolicy
from tests.unit.gateway.fakes import FakeProxy, request, run

INFER = "/acme/iris/v2/models/iris/infer"


def tables(policy: TrafficPolicy, version: str = "iris:1") -> StaticTable:
    replica = ReplicaEndpoint("main-a", "http://main-a", 1, version)
    return StaticTable(RoutingTable.of([
        DeploymentRoute("acme", "iris", 1, (PredictorRoute("main", 100, (replica,)),), policy=policy),
        DeploymentRoute("acme", "other", 1, (PredictorRoute("main", 100, (replica,)),))]))


def test_identical_requests_are_answered_from_the_cache_per_model_version() -> None:
    proxy = FakeProxy()
    source = tables(TrafficPolicy(cache_ttl_s=60, cache_max_entries=100))
    app = build_gateway(source, GatewayParts(cache=CacheOnPath(MemoryCache())), proxy=proxy)

    async def go() -> list[str]:
        seen = []
        for body in (b'{"a":1}', b'{"a":1}', b'{"a":2}'):
            r = await request(app, "POST", INFER, body=body)
            await app.dispatcher.drain()  # the cache write runs beside the answer
            seen.append(r.headers["x-pier-cache"])
        source.set(tables(TrafficPolicy(cache_ttl_s=60, cache_max_entries=100), version="iris:2").get())
        seen.append((await request(app, "POST", INFER, body=b'{"a":1}')).headers["x-pier-cache"])
        return seen
    assert run(go) == ["miss", "hit", "miss", "miss"]
    assert len(proxy.calls) == 3
    assert app.dispatcher.stats.predictor("acme", "iris", "main").cache_hits == 1


def test_deployments_without_a_cache_say_nothing_about_it() -> None:
    app = build_gateway(tables(TrafficPolicy()), GatewayParts(cache=CacheOnPath(MemoryCache())), proxy=FakeProxy())
    assert "x-pier-cache" not in run(lambda: request(app, "POST", INFER)).headers


async def until_finished(app: GatewayApp, href: str, timeout_s: float = 10.0) -> dict[str, Any]:
    """Poll the job until it finished: what a caller of the async API does."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        job: dict[str, Any] = (await request(app, "GET", href)).json()
        if job["status"] in {"succeeded", "failed"} or asyncio.get_running_loop().time() > deadline:
            return job
        await asyncio.sleep(0.01)


def test_async_job_is_accepted_then_runs_and_keeps_its_result(tmp_path: Path) -> None:
    proxy = FakeProxy()

    def jobs(dispatcher: Dispatcher, source: SyncedTableSource) -> AsyncJobs:
        return AsyncJobs(SqliteJobStore(tmp_path / "jobs.db"), dispatcher, source, concurrency=1, lease_s=5)

    app = build_gateway(tables(TrafficPolicy()), GatewayParts(jobs=jobs), proxy=proxy)

    async def go() -> tuple[httpx.Response, dict[str, Any], int, int, int]:
        assert app._on_startup is not None
        assert app._on_shutdown is not None
        await app._on_startup()
        try:
            accepted = await request(app, "POST", INFER, headers={"prefer": "respond-async"})
            href = accepted.headers["location"]
            job: dict[str, Any] = await until_finished(app, href)
            other = (await request(app, "GET", href.replace("/iris/", "/other/"))).status_code
            missing = (await request(app, "GET", "/acme/iris/jobs/nope")).status_code
            bad_callback = (await request(app, "POST", "/acme/iris/async/v2/models/iris/infer",
                                          headers={"x-callback-url": "ftp://x"})).status_code
            return accepted, job, other, missing, bad_callback
        finally:
            await app._on_shutdown()
    accepted, job, other, missing, bad_callback = run(go)
    assert accepted.status_code == 202
    assert accepted.json()["status"] == "queued"
    assert job["status"] == "succeeded"
    assert job["result"]["status"] == 200
    assert job["result"]["body"]["outputs"][0]["data"] == [0]
    assert (other, missing, bad_callback) == (404, 404, 400)
    assert len(proxy.calls) == 1


def test_sampled_requests_are_written_to_the_prediction_log(tmp_path: Path) -> None:
    logger = PredictionLogger(tmp_path)
    policy = TrafficPolicy(log_sample_rate=1.0, log_sink="jsonl")
    app = build_gateway(tables(policy), GatewayParts(recorder=PredictionRecorder(logger)), proxy=FakeProxy())

    async def go() -> None:
        await request(app, "POST", INFER, headers={"x-request-id": "req-1", "content-type": "application/json"},
                      body=b'{"inputs": []}')
        await request(app, "POST", "/acme/other/v2/models/iris/infer")  # no predictionLog: not written
        await logger.aclose()
    run(go)
    records = read_predictions(tmp_path, "acme", "iris", limit=10)
    assert [(r["requestId"], r["predictor"], r["modelVersion"], r["status"]) for r in records] == [
        ("req-1", "main", "iris:1", 200)]
    assert records[0]["request"]["body"] == {"inputs": []}


def test_an_async_request_without_a_usable_body_is_refused_at_once(tmp_path: Path) -> None:
    proxy = FakeProxy()

    def jobs(dispatcher: Dispatcher, source: SyncedTableSource) -> AsyncJobs:
        return AsyncJobs(SqliteJobStore(tmp_path / "jobs.db"), dispatcher, source, concurrency=1, lease_s=5)

    app = build_gateway(tables(TrafficPolicy()), GatewayParts(jobs=jobs), proxy=proxy)
    asynchronous = {"prefer": "respond-async"}

    async def go() -> list[httpx.Response]:
        assert app._on_startup is not None
        assert app._on_shutdown is not None
        await app._on_startup()
        try:
            return [await request(app, "POST", INFER, headers=asynchronous, body=b""),  # curl -d @missing.json
                    await request(app, "POST", INFER, headers={**asynchronous, "content-type": "application/json"},
                                  body=b'{"inputs": [}'),
                    await request(app, "POST", "/acme/iris/async/v2/models/iris/infer", body=b"  \n"),
                    await request(app, "POST", INFER, headers={**asynchronous, "content-type":
                                                                "application/x-www-form-urlencoded"}, body=b"{")]
        finally:
            await app._on_shutdown()
    answers = run(go)
    assert [a.status_code for a in answers] == [400, 400, 400, 400]
    assert "the request body is empty" in answers[0].json()["error"]["message"]
    assert "nothing was queued" in answers[0].json()["error"]["message"]
    assert "not valid JSON" in answers[1].json()["error"]["message"]
    assert proxy.calls == []


def test_a_job_body_is_judged_by_its_kind() -> None:
    from modelpier.gateway.app import job_body_problem

    assert job_body_problem("POST", b'{"inputs": []}', None) is None
    assert job_body_problem("POST", b"\x00\x01", "application/octet-stream") is None  # the replica's to read
    assert job_body_problem("POST", b'{"a":1}\x00\x01', None, binary=True) is None
    assert job_body_problem("GET", b"", None) is None
    assert job_body_problem("POST", b"", "application/octet-stream") is not None
