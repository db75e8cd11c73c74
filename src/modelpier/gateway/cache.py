"""The gateway's prediction cache: identical requests to the same model version answered once.

A deployment opts in with ``spec.cache`` (``TrafficPolicy.cache_ttl_s`` / ``cache_max_entries``).
The gateway computes ``cache_key`` from everything that can change the answer, asks ``get`` before
forwarding, and ``put``s what ``cacheable_answer`` accepts afterwards. Entries live in a namespace
per deployment ("project/deployment"), each bounded by the deployment's ``maxEntries``.

Two stores share the ``PredictionCache`` protocol: ``MemoryCache`` (one gateway's LRU, bounded in
entries per namespace and in bytes overall) and ``RedisCache`` (shared by every gateway naming the
same Redis; expiry by Redis, a per-namespace bound by insertion order). A cache is an optimisation,
never a dependency: when Redis is unreachable every ``get`` misses and every ``put`` is skipped,
with one warning per outage, and requests go to the replicas as if no cache were configured.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

import orjson

from modelpier.errors import InvalidInput

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger("modelpier.gateway.cache")


@dataclass(frozen=True, slots=True)
class CachedAnswer:
    """A replica's answer as the gateway replays it: status, the headers to send again, the body."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes

    @property
    def size(self) -> int:
        """Bytes the answer takes, roughly: body, headers and a fixed overhead per entry."""
        return len(self.body) + sum(len(k) + len(v) for k, v in self.headers) + 200


def cache_key(model_version: str, method: str, path: str, content_type: str, body: bytes) -> str:
    """sha256 hex of everything that can change the answer.

    ``model_version`` names what would answer (``iris:3``; a predictor and revision when replicas
    report no version), ``path`` is the path after ``/{project}/{deployment}`` with its query
    (it picks the model and the protocol). Each text part is length-prefixed, so no two different
    tuples hash the same bytes.
    """
    digest = hashlib.sha256()
    for part in (model_version, method.upper(), path, content_type.strip().lower()):
        encoded = part.encode()
        digest.update(len(encoded).to_bytes(4, "big"))
        digest.update(encoded)
    digest.update(body)
    return digest.hexdigest()


# Headers that belong to one response (or one hop), not to the answer; replaying them would lie.
_PER_RESPONSE = frozenset({
    "date", "server", "x-request-id", "x-pier-replica", "content-length", "connection", "keep-alive",
    "transfer-encoding", "trailer", "upgrade", "proxy-authenticate", "age",
})


def cacheable_answer(status: int, headers: Iterable[tuple[str, str]], body: bytes, *,
                     max_body_bytes: int = 1024 * 1024) -> CachedAnswer | None:
    """What to cache of a replica's answer, or None when it must not be cached.

    Only a complete 200 is cached (an error may be transient, a 4xx is cheap to repeat), never an
    answer the model marked ``Cache-Control: no-store``/``private`` or one that sets a cookie, and
    never a body over ``max_body_bytes`` (one huge answer would evict many small ones).
    """
    if status != 200 or len(body) > max_body_bytes:
        return None
    kept: list[tuple[str, str]] = []
    for name, value in headers:
        lowered = name.lower()
        if lowered == "set-cookie":
            return None
        if lowered == "cache-control" and any(
                d.strip().split("=")[0] in {"no-store", "private"} for d in value.lower().split(",")):
            return None
        if lowered not in _PER_RESPONSE:
            kept.append((lowered, value))
    return CachedAnswer(status, tuple(kept), body)


def encode_answer(answer: CachedAnswer) -> bytes:
    """Compact bytes for Redis: a version byte, the length of a small JSON head, the head, the raw body."""
    head = orjson.dumps([answer.status, answer.headers])
    return b"\x01" + len(head).to_bytes(4, "big") + head + answer.body


def decode_answer(data: bytes) -> CachedAnswer:
    """The inverse of ``encode_answer``; ``ValueError`` on bytes it did not write."""
    if len(data) < 5 or data[0] != 1:
        raise ValueError("not a cached answer of this format")
    size = int.from_bytes(data[1:5], "big")
    status, headers = orjson.loads(data[5:5 + size])
    return CachedAnswer(int(status), tuple((str(k), str(v)) for k, v in headers), data[5 + size:])


class PredictionCache(Protocol):
    async def get(self, namespace: str, key: str) -> CachedAnswer | None: ...

    async def put(self, namespace: str, key: str, answer: CachedAnswer, *, ttl_s: float, max_entries: int) -> None:
        ...

    async def aclose(self) -> None: ...


@dataclass(slots=True)
class _Entry:
    answer: CachedAnswer
    expires_at: float


class MemoryCache:
    """LRU per namespace with a TTL per entry, and a least-recently-used bound on bytes overall.

    Every operation is O(1) and never awaits, so it is safe on the event loop. Two orders are kept:
    one per namespace (evicts past that deployment's ``max_entries``) and one across namespaces
    (evicts past ``max_bytes``, whichever deployment used the entry least recently). Expired
    entries are dropped when met; until then they count against the bounds and go first by LRU.
    """

    def __init__(self, *, max_bytes: int = 256 * 1024 * 1024,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.max_bytes = max_bytes
        self._monotonic = monotonic
        self._spaces: dict[str, OrderedDict[str, _Entry]] = {}
        self._lru: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._lru)

    @property
    def bytes_used(self) -> int:
        return self._bytes

    async def get(self, namespace: str, key: str) -> CachedAnswer | None:
        space = self._spaces.get(namespace)
        entry = space.get(key) if space is not None else None
        if entry is None or space is None:
            return None
        if entry.expires_at <= self._monotonic():
            self._remove(namespace, key)
            return None
        space.move_to_end(key)
        self._lru.move_to_end((namespace, key))
        return entry.answer

    async def put(self, namespace: str, key: str, answer: CachedAnswer, *, ttl_s: float, max_entries: int) -> None:
        if ttl_s <= 0 or max_entries <= 0 or answer.size > self.max_bytes:
            return
        self._remove(namespace, key)
        space = self._spaces.setdefault(namespace, OrderedDict())
        space[key] = _Entry(answer, self._monotonic() + ttl_s)
        self._lru[(namespace, key)] = None
        self._bytes += answer.size
        while len(space) > max_entries:
            self._remove(namespace, next(iter(space)))
        while self._bytes > self.max_bytes:
            self._remove(*next(iter(self._lru)))

    def _remove(self, namespace: str, key: str) -> None:
        space = self._spaces.get(namespace)
        entry = space.pop(key, None) if space is not None else None
        if entry is None:
            return
        del self._lru[(namespace, key)]
        self._bytes -= entry.answer.size
        if not space:
            del self._spaces[namespace]

    async def aclose(self) -> None:
        self._spaces.clear()
        self._lru.clear()
        self._bytes = 0


# Stores one entry and bounds its namespace, atomically. The index is a sorted set of keys scored by
# expiry time (in microseconds, so puts within one millisecond keep their order; Redis's own clock,
# so gateways with skewed clocks agree): members past their expiry are dropped, then the
# soonest-expiring ones (the oldest, for a deployment's one TTL) until at most max_entries remain.
# The index lives as long as its longest entry.
_PUT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local ttl = tonumber(ARGV[2])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
redis.call('ZADD', KEYS[2], now + ttl * 1000, ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local extra = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[3])
if extra > 0 then
  for _, member in ipairs(redis.call('ZRANGE', KEYS[2], 0, extra - 1)) do
    redis.call('DEL', ARGV[5] .. member)
  end
  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, extra - 1)
end
if redis.call('PTTL', KEYS[2]) < ttl then
  redis.call('PEXPIRE', KEYS[2], ttl)
end
return 1
"""


def redis_location(url: str) -> str:
    """``host:port/db`` of a Redis URL, for messages: never the password."""
    try:
        parts = urlsplit(url)
        return f"{parts.hostname or 'localhost'}:{parts.port or 6379}{parts.path or ''}"
    except ValueError:
        return "(a URL that does not parse)"


def redis_client(url: str, *, timeout_s: float, retries: int = 0) -> tuple[Redis, tuple[type[Exception], ...]]:
    """A ``redis.asyncio`` client (it connects on first use) and the errors its calls raise.

    ``retries`` > 0 retries a dropped connection or a timeout that many times, briefly (50 ms doubling
    to 0.5 s); 0 never retries. ``InvalidInput`` naming the setting when the ``redis`` extra is
    missing or the URL is not a Redis URL.
    """
    try:
        from redis.asyncio import Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import ExponentialBackoff, NoBackoff
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import RedisError
        from redis.exceptions import TimeoutError as RedisTimeoutError
    except ImportError as exc:
        raise InvalidInput("gateway.redis_url (PIER_GATEWAY__REDIS_URL) is set, but the Redis client is not "
                           "installed: pip install 'modelpier[redis]'") from exc
    options: dict[str, Any] = {"socket_timeout": timeout_s, "socket_connect_timeout": timeout_s,
                               "retry": Retry(NoBackoff(), 0)}
    if retries > 0:
        options["retry"] = Retry(ExponentialBackoff(cap=0.5, base=0.05), retries)
        options["retry_on_error"] = [RedisConnectionError, RedisTimeoutError]
    try:
        client = Redis.from_url(url, **options)
    except ValueError as exc:
        raise InvalidInput(f"gateway.redis_url (PIER_GATEWAY__REDIS_URL) {redis_location(url)!r} is not a Redis "
                           f"URL: {exc}") from None
    return client, (RedisError, OSError)


class RedisCache:
    """The cache in Redis, shared by gateways. Keys: ``{prefix}{namespace}:v:{key}`` (the answer, with
    a Redis expiry) and ``{prefix}{namespace}:idx`` (the bound's index); the namespace is a hash tag,
    so one deployment's keys share a Redis Cluster slot.

    An unreachable or failing Redis turns the cache off, not the requests: the failing call returns
    a miss, and for ``retry_after_s`` afterwards no call is tried at all, so an outage costs no
    latency per request. Commands time out after ``timeout_s`` and are not retried.
    """

    def __init__(self, url: str, *, prefix: str = "pier:cache:", timeout_s: float = 0.5,
                 retry_after_s: float = 1.0, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._redis, self._errors = redis_client(url, timeout_s=timeout_s)
        self._put = self._redis.register_script(_PUT)
        self.location = redis_location(url)
        self._prefix = prefix
        self._retry_after_s = retry_after_s
        self._monotonic = monotonic
        self._down_until: float | None = None
        self._outage: str | None = None  # the error that started the current outage

    @property
    def available(self) -> bool:
        """False during an outage; the next call after ``retry_after_s`` tries Redis again."""
        return self._outage is None

    def _keys(self, namespace: str, key: str) -> tuple[str, str, str]:
        base = f"{self._prefix}{{{namespace}}}:"
        return f"{base}v:{key}", f"{base}idx", f"{base}v:"

    def _skipping(self) -> bool:
        return self._down_until is not None and self._monotonic() < self._down_until

    def _failed(self, exc: Exception) -> None:
        self._down_until = self._monotonic() + self._retry_after_s
        if self._outage is None:
            log.warning("the prediction cache in Redis at %s is unreachable (%s: %s); answering without "
                        "the cache until it is back", self.location, type(exc).__name__, exc)
            self._outage = f"{type(exc).__name__}: {exc}"

    def _succeeded(self) -> None:
        if self._outage is not None:
            log.info("the prediction cache in Redis at %s answers again", self.location)
        self._outage, self._down_until = None, None

    async def get(self, namespace: str, key: str) -> CachedAnswer | None:
        if self._skipping():
            return None
        try:
            data = await self._redis.get(self._keys(namespace, key)[0])
        except self._errors as exc:
            self._failed(exc)
            return None
        self._succeeded()
        if not isinstance(data, bytes):  # None: a miss (the client returns bytes, not decoded text)
            return None
        try:
            return decode_answer(data)
        except (ValueError, TypeError):
            return None  # written by something else under our prefix: a miss, overwritten by the next put

    async def put(self, namespace: str, key: str, answer: CachedAnswer, *, ttl_s: float, max_entries: int) -> None:
        ttl_ms = int(ttl_s * 1000)
        if ttl_ms <= 0 or max_entries <= 0 or self._skipping():
            return
        value_key, index_key, value_prefix = self._keys(namespace, key)
        try:
            await self._put(keys=[value_key, index_key],
                            args=[encode_answer(answer), ttl_ms, max_entries, key, value_prefix])
        except self._errors as exc:
            self._failed(exc)
            return
        self._succeeded()

    async def aclose(self) -> None:
        await self._redis.aclose()


def open_cache(redis_url: str | None, *, max_bytes: int = 256 * 1024 * 1024) -> PredictionCache:
    """Redis when a URL is configured (settings ``gateway.redis_url``), else this gateway's memory."""
    if redis_url:
        return RedisCache(redis_url)
    return MemoryCache(max_bytes=max_bytes)
