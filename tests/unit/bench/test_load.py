"""The load generator against a real aiohttp server on loopback (in the test's own event loop)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
from aiohttp import web

from modelpier.bench.load import MAX_ERROR_KINDS, LoadPlan, LoadResult, Progress, probe, run_load
from modelpier.errors import InvalidInput, RemoteUnreachable

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@asynccontextmanager
async def server(handler: Handler) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post("/infer", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    await web.SockSite(runner, sock).start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/infer"
    finally:
        await runner.cleanup()


def test_bounded_by_requests_counts_every_answer_and_reuses_connections() -> None:
    peers: set[int] = set()
    bodies: list[bytes] = []

    async def handler(request: web.Request) -> web.Response:
        transport = request.transport
        assert transport is not None
        peers.add(transport.get_extra_info("peername")[1])
        bodies.append(await request.read())
        return web.json_response({"ok": True}, status=503 if len(bodies) % 10 == 0 else 200)

    async def scenario() -> tuple[LoadResult, list[Progress]]:
        async with server(handler) as url:
            seen: list[Progress] = []
            plan = LoadPlan(url=url, body=b'{"x": 1}', concurrency=4, duration_s=None, requests=200)
            return await run_load(plan, on_progress=seen.append), seen

    result, seen = asyncio.run(scenario())
    assert result.completed == 200 == len(bodies)
    assert result.statuses == {200: 180, 503: 20}
    assert result.ok == 180
    assert result.first_failure == '503: {"ok": true}'
    assert result.histogram.count == 200
    assert result.elapsed_s > 0
    assert set(bodies) == {b'{"x": 1}'}
    assert len(peers) <= 4  # keep-alive: one connection per worker, not one per request
    assert seen[-1].fraction == 1.0
    assert seen[-1].completed == 200


def test_bounded_by_duration_and_warmup_is_not_measured() -> None:
    count = 0

    async def handler(request: web.Request) -> web.Response:
        nonlocal count
        count += 1
        await asyncio.sleep(0.005)
        return web.Response(text="{}")

    async def scenario() -> LoadResult:
        async with server(handler) as url:
            return await run_load(LoadPlan(url=url, body=b"{}", concurrency=2, duration_s=0.5, warmup_s=0.3))

    result = asyncio.run(scenario())
    assert 0.5 <= result.elapsed_s < 1.5  # the window, plus at most the requests in flight at its end
    assert 0 < result.completed < count  # warm-up requests were sent, not recorded
    assert result.histogram.min_s >= 0.005


def test_chunked_answers_and_closed_connections_are_read_whole() -> None:
    async def chunked(request: web.Request) -> web.StreamResponse:
        await request.read()
        response = web.StreamResponse(status=500)  # no length: chunked transfer encoding
        await response.prepare(request)
        for part in (b"model ", b"failed ", b"x" * 1000):
            await response.write(part)
        await response.write_eof()
        return response

    async def closing(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(text="{}", headers={"Connection": "close"})

    async def scenario() -> tuple[LoadResult, LoadResult]:
        async with server(chunked) as url:
            first = await run_load(LoadPlan(url=url, body=b"{}", concurrency=2, duration_s=None, requests=20))
        async with server(closing) as url:
            second = await run_load(LoadPlan(url=url, body=b"{}", concurrency=2, duration_s=None, requests=20))
        return first, second

    first, second = asyncio.run(scenario())
    assert first.statuses == {500: 20}
    assert first.first_failure is not None
    assert first.first_failure.startswith("500: model failed xxx")
    assert len(first.first_failure) < 320  # the start of the body, not all of it
    assert second.statuses == {200: 20}
    assert second.errors == {}


def test_timeouts_are_counted_as_errors_with_no_latency() -> None:
    async def handler(request: web.Request) -> web.Response:
        await asyncio.sleep(1.0)
        return web.Response(text="{}")

    async def scenario() -> LoadResult:
        async with server(handler) as url:
            return await run_load(LoadPlan(url=url, body=b"{}", concurrency=2, duration_s=None, requests=2,
                                           timeout_s=0.05))

    result = asyncio.run(scenario())
    assert result.errors == {"timeout": 2}
    assert result.ok == 0
    assert result.histogram.count == 0


def test_probe_says_when_nothing_listens() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    with pytest.raises(RemoteUnreachable, match=f"cannot reach http://127.0.0.1:{port}/infer"):
        asyncio.run(probe(LoadPlan(url=f"http://127.0.0.1:{port}/infer", body=b"{}")))


def test_error_kinds_are_capped() -> None:
    result = LoadResult()
    for i in range(MAX_ERROR_KINDS + 5):
        result.record_error(f"kind {i}")
    assert len(result.errors) == MAX_ERROR_KINDS + 1
    assert result.errors["other errors"] == 5


def test_a_plan_must_be_bounded() -> None:
    with pytest.raises(InvalidInput, match="bound the load"):
        LoadPlan(url="http://x", body=None, duration_s=None, requests=None)
