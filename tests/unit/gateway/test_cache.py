"""The prediction cache: what goes into a key, what may be cached, and the in-memory LRU with TTL.

The same behaviour against Redis (and MemoryCache through the same suite) is in
tests/integration/gateway/test_caches.py.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest

from modelpier.errors import InvalidInput
from modelpier.gateway.cache import (
    CachedAnswer,
    MemoryCache,
    RedisCache,
    cache_key,
    cacheable_answer,
    decode_answer,
    encode_answer,
    open_cache,
)

BASE = ("iris:3", "POST", "/v2/models/iris/infer", "application/json", b'{"inputs": []}')


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def answer(body: bytes = b'{"outputs": []}') -> CachedAnswer:
    return CachedAnswer(200, (("content-type", "application/json"),), body)


def test_identical_requests_share_a_key_of_sha256_hex() -> None:
    assert cache_key(*BASE) == cache_key(*BASE)
    assert re.fullmatch(r"[0-9a-f]{64}", cache_key(*BASE))


@pytest.mark.parametrize(("index", "other"), [
    (0, "iris:4"), (1, "PUT"), (2, "/v2/models/iris/infer?x=1"), (3, "application/octet-stream"),
    (4, b'{"inputs": [1]}')])
def test_everything_that_changes_the_answer_changes_the_key(index: int, other: object) -> None:
    changed: list[Any] = list(BASE)
    changed[index] = other
    assert cache_key(*changed) != cache_key(*BASE)


def test_parts_cannot_run_into_each_other() -> None:
    assert cache_key("iris:3", "POST", "/a", "x", b"") != cache_key("iris:3/a", "POST", "", "x", b"")
    assert cache_key("a", "POST", "/p", "json", b"") != cache_key("a", "POST", "/pj", "son", b"")


def test_method_and_content_type_case_do_not_matter() -> None:
    assert cache_key("v", "post", "/p", " Application/JSON", b"x") == cache_key("v", "POST", "/p", "application/json",
                                                                             b"x")


def test_a_200_is_cached_without_its_per_response_headers() -> None:
    cached = cacheable_answer(200, [("Content-Type", "application/json"), ("Date", "now"), ("x-request-id", "r1"),
                                    ("Content-Length", "2"), ("x-pier-replica", "r"), ("x-model", "m")], b"{}")
    assert cached == CachedAnswer(200, (("content-type", "application/json"), ("x-model", "m")), b"{}")


@pytest.mark.parametrize(("status", "headers", "body"), [
    (500, [], b"{}"), (404, [], b"{}"), (503, [], b""),
    (200, [("Cache-Control", "no-store")], b"{}"), (200, [("cache-control", "max-age=0, private")], b"{}"),
    (200, [("Set-Cookie", "a=b")], b"{}"), (200, [], b"x" * (1024 * 1024 + 1))])
def test_what_is_never_cached(status: int, headers: list[tuple[str, str]], body: bytes) -> None:
    assert cacheable_answer(status, headers, body) is None


def test_answers_round_trip_through_their_compact_encoding() -> None:
    original = CachedAnswer(200, (("content-type", "application/octet-stream"), ("x-a", "é")), bytes(range(256)))
    encoded = encode_answer(original)
    assert decode_answer(encoded) == original
    assert len(encoded) < len(original.body) + 100
    with pytest.raises(ValueError, match="not a cached answer"):
        decode_answer(b"garbage")


def test_memory_cache_hits_until_the_ttl_passes() -> None:
    async def scenario() -> None:
        clock = Clock()
        cache = MemoryCache(monotonic=clock)
        assert await cache.get("acme/iris", "k") is None
        await cache.put("acme/iris", "k", answer(), ttl_s=60, max_entries=10)
        assert await cache.get("acme/iris", "k") == answer()
        clock.now += 59.9
        assert await cache.get("acme/iris", "k") == answer()
        clock.now += 0.1
        assert await cache.get("acme/iris", "k") is None
        assert len(cache) == 0
        assert cache.bytes_used == 0
    asyncio.run(scenario())


def test_memory_cache_evicts_the_least_recently_used_per_namespace() -> None:
    async def scenario() -> None:
        cache = MemoryCache(monotonic=Clock())
        for key in ("a", "b", "c"):
            await cache.put("acme/iris", key, answer(key.encode()), ttl_s=60, max_entries=3)
        await cache.put("acme/other", "x", answer(), ttl_s=60, max_entries=1)
        assert await cache.get("acme/iris", "a") is not None  # a is now the most recently used
        await cache.put("acme/iris", "d", answer(b"d"), ttl_s=60, max_entries=3)
        assert await cache.get("acme/iris", "b") is None
        assert [await cache.get("acme/iris", k) is not None for k in ("a", "c", "d")] == [True, True, True]
        assert await cache.get("acme/other", "x") is not None  # another deployment's bound is its own
        assert len(cache) == 4
    asyncio.run(scenario())


def test_memory_cache_bounds_bytes_across_namespaces() -> None:
    async def scenario() -> None:
        size = answer(b"x" * 1000).size
        cache = MemoryCache(max_bytes=3 * size, monotonic=Clock())
        await cache.put("p/one", "a", answer(b"x" * 1000), ttl_s=60, max_entries=100)
        await cache.put("p/two", "b", answer(b"y" * 1000), ttl_s=60, max_entries=100)
        await cache.put("p/one", "c", answer(b"z" * 1000), ttl_s=60, max_entries=100)
        await cache.get("p/one", "a")
        await cache.put("p/two", "d", answer(b"w" * 1000), ttl_s=60, max_entries=100)
        assert await cache.get("p/two", "b") is None  # least recently used overall, from either deployment
        assert cache.bytes_used == 3 * size
        await cache.put("p/one", "huge", answer(b"h" * 4 * size), ttl_s=60, max_entries=100)
        assert await cache.get("p/one", "huge") is None  # bigger than the whole cache: not stored
        assert len(cache) == 3
    asyncio.run(scenario())


def test_memory_cache_replaces_an_entry_and_ignores_a_zero_ttl() -> None:
    async def scenario() -> None:
        cache = MemoryCache(monotonic=Clock())
        await cache.put("p/d", "k", answer(b"1"), ttl_s=60, max_entries=5)
        await cache.put("p/d", "k", answer(b"22"), ttl_s=60, max_entries=5)
        assert await cache.get("p/d", "k") == answer(b"22")
        assert (len(cache), cache.bytes_used) == (1, answer(b"22").size)
        await cache.put("p/d", "z", answer(), ttl_s=0, max_entries=5)
        assert await cache.get("p/d", "z") is None
        await cache.aclose()
        assert len(cache) == 0
    asyncio.run(scenario())


def test_open_cache_picks_memory_or_redis() -> None:
    async def scenario() -> None:
        memory = open_cache(None)
        assert isinstance(memory, MemoryCache)
        redis = open_cache("redis://127.0.0.1:1/0")  # not contacted until used
        assert isinstance(redis, RedisCache)
        assert redis.location == "127.0.0.1:1/0"
        await redis.aclose()
    asyncio.run(scenario())


def test_a_url_that_is_not_redis_names_the_setting() -> None:
    with pytest.raises(InvalidInput, match=r"PIER_GATEWAY__REDIS_URL.*is not a Redis URL"):
        open_cache("http://cache.internal:6379")
