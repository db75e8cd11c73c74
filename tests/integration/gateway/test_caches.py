"""One cache contract, run against MemoryCache and RedisCache (a real redis-server); and what the
Redis cache does when its Redis goes away and comes back."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import pytest

from modelpier.gateway.cache import CachedAnswer, PredictionCache, RedisCache, cache_key
from tests.conftest import RedisServer
from tests.integration.gateway.support import eventually

ANSWER = CachedAnswer(200, (("content-type", "application/octet-stream"), ("x-model", "iris:3")), bytes(range(256)))


def key(i: int) -> str:
    return cache_key("iris:3", "POST", "/v2/models/iris/infer", "application/json", f'{{"i": {i}}}'.encode())


def test_a_stored_answer_comes_back_per_namespace(open_cache: Callable[[], PredictionCache]) -> None:
    async def scenario() -> None:
        cache = open_cache()
        assert await cache.get("acme/iris", key(1)) is None
        await cache.put("acme/iris", key(1), ANSWER, ttl_s=60, max_entries=10)
        assert await cache.get("acme/iris", key(1)) == ANSWER
        assert await cache.get("acme/other", key(1)) is None  # deployments never share answers
        assert await cache.get("acme/iris", key(2)) is None
        await cache.aclose()
    asyncio.run(scenario())


def test_answers_expire_after_their_ttl(open_cache: Callable[[], PredictionCache]) -> None:
    async def scenario() -> None:
        cache = open_cache()
        await cache.put("acme/iris", key(1), ANSWER, ttl_s=0.3, max_entries=10)
        assert await cache.get("acme/iris", key(1)) == ANSWER

        async def expired() -> bool:
            return await cache.get("acme/iris", key(1)) is None

        await eventually(expired, within=5, what="the entry to expire")
        await cache.aclose()
    asyncio.run(scenario())


def test_each_namespace_keeps_at_most_max_entries_dropping_the_oldest(
        open_cache: Callable[[], PredictionCache]) -> None:
    async def scenario() -> None:
        cache = open_cache()
        for i in range(5):
            await cache.put("acme/iris", key(i), ANSWER, ttl_s=60, max_entries=3)
        await cache.put("acme/other", key(0), ANSWER, ttl_s=60, max_entries=3)
        present = [await cache.get("acme/iris", key(i)) is not None for i in range(5)]
        assert present == [False, False, True, True, True]
        assert await cache.get("acme/other", key(0)) == ANSWER
        await cache.put("acme/iris", key(4), ANSWER, ttl_s=60, max_entries=3)  # a repeat does not count twice
        assert [await cache.get("acme/iris", key(i)) is not None for i in (2, 3, 4)] == [True, True, True]
        await cache.aclose()
    asyncio.run(scenario())


def test_a_redis_that_goes_away_makes_the_cache_miss_without_raising(
        redis_server: RedisServer, caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        cache = RedisCache(redis_server.url, retry_after_s=0)  # try Redis on every call: each one fails
        await cache.put("acme/iris", key(1), ANSWER, ttl_s=60, max_entries=10)
        assert await cache.get("acme/iris", key(1)) == ANSWER

        redis_server.stop()
        for _ in range(3):
            started = time.monotonic()
            assert await cache.get("acme/iris", key(1)) is None
            await cache.put("acme/iris", key(2), ANSWER, ttl_s=60, max_entries=10)
            assert time.monotonic() - started < 1.0  # a refused connection is not waited on
        assert not cache.available
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1  # once per outage, not once per request
        assert redis_server.url.removeprefix("redis://") in warnings[0].getMessage()

        redis_server.start()  # the same port: Redis is back, empty (no persistence)

        async def back() -> bool:
            await cache.put("acme/iris", key(3), ANSWER, ttl_s=60, max_entries=10)
            return await cache.get("acme/iris", key(3)) == ANSWER

        await eventually(back, what="the cache to use Redis again")
        assert cache.available
        assert any("answers again" in r.getMessage() for r in caplog.records)
        await cache.aclose()

    with caplog.at_level(logging.INFO, logger="modelpier.gateway.cache"):
        asyncio.run(scenario())


def test_during_an_outage_redis_is_not_asked_until_retry_after(redis_server: RedisServer) -> None:
    async def scenario() -> None:
        now = [0.0]
        cache = RedisCache(redis_server.url, retry_after_s=5, monotonic=lambda: now[0])
        await cache.put("acme/iris", key(1), ANSWER, ttl_s=60, max_entries=10)
        redis_server.stop()
        assert await cache.get("acme/iris", key(1)) is None  # fails, starts the outage
        redis_server.start()
        assert await cache.get("acme/iris", key(1)) is None  # skipped: still within retry_after_s
        assert not cache.available
        now[0] = 5.0
        await cache.put("acme/iris", key(1), ANSWER, ttl_s=60, max_entries=10)  # tried again, and reconnects
        assert await cache.get("acme/iris", key(1)) == ANSWER
        assert cache.available
        await cache.aclose()
    asyncio.run(scenario())
