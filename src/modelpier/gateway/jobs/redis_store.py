"""``RedisJobStore``: jobs in Redis, shared by every gateway that names the same Redis.

Layout (``P`` is the prefix, a hash tag so every key shares one Redis Cluster slot):

- ``{P}:job:{id}``   a hash: the request, status, times, attempts, result or error;
- ``{P}:queued``     a sorted set of queued ids scored by a submit sequence (``{P}:seq``): FIFO;
- ``{P}:running``    a sorted set of running ids scored by lease expiry (ms);
- ``{P}:finished``   a sorted set of finished ids scored by finish time (ms), for ``purge``.

Every state change is one Lua script, so it is atomic across gateways: two gateways claiming at once
get different jobs. Times come from Redis's clock (``TIME``), so gateways with skewed clocks agree
on leases. Durability is Redis's: with ``appendonly yes`` and ``appendfsync always`` an accepted job
survives a Redis crash; with ``everysec`` up to a second of submissions may be lost
(docs/gateway-patterns.md).
"""

from __future__ import annotations

from typing import Any

import orjson

from modelpier.errors import ServiceUnavailable
from modelpier.gateway.cache import redis_client, redis_location
from modelpier.gateway.jobs.model import Job, JobRequest, JobResult, job_status, new_job_id

_NOW = """
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local now_s = t[1] .. '.' .. string.format('%06d', tonumber(t[2]))
"""

# KEYS: job, queued, seq. ARGV: id, project, deployment, method, path, headers, body, callback ('' = none).
_SUBMIT = _NOW + """
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'project', ARGV[2], 'deployment', ARGV[3], 'method', ARGV[4],
  'path', ARGV[5], 'headers', ARGV[6], 'body', ARGV[7], 'callback_url', ARGV[8], 'status', 'queued',
  'created_at', now_s, 'updated_at', now_s, 'attempts', 0)
redis.call('ZADD', KEYS[2], redis.call('INCR', KEYS[3]), ARGV[1])
return now_s
"""

# KEYS: queued, running. ARGV: lease (ms), job key prefix. Expired leases first, then the oldest queued.
_CLAIM = _NOW + """
for _ = 1, 16 do
  local id = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now_ms, 'LIMIT', 0, 1)[1]
  if not id then
    id = redis.call('ZRANGE', KEYS[1], 0, 0)[1]
    if not id then return false end
    redis.call('ZREM', KEYS[1], id)
  end
  local key = ARGV[2] .. id
  if redis.call('EXISTS', key) == 1 then
    redis.call('ZADD', KEYS[2], now_ms + tonumber(ARGV[1]), id)
    redis.call('HINCRBY', key, 'attempts', 1)
    redis.call('HSET', key, 'status', 'running', 'updated_at', now_s)
    return redis.call('HGETALL', key)
  end
  redis.call('ZREM', KEYS[2], id)  -- an index entry whose job is gone: drop it, try the next
end
return false
"""

# KEYS: job, running. ARGV: id, lease (ms).
_RENEW = _NOW + """
if redis.call('HGET', KEYS[1], 'status') ~= 'running' then return 0 end
redis.call('ZADD', KEYS[2], 'XX', now_ms + tonumber(ARGV[2]), ARGV[1])
return 1
"""

# KEYS: job, running, finished. ARGV: id, status, then field/value pairs to set.
_FINISH = _NOW + """
if redis.call('HGET', KEYS[1], 'status') ~= 'running' then return false end
redis.call('HSET', KEYS[1], 'status', ARGV[2], 'updated_at', now_s, unpack(ARGV, 3))
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZADD', KEYS[3], now_ms, ARGV[1])
return redis.call('HGETALL', KEYS[1])
"""

# KEYS: finished. ARGV: age (ms), job key prefix, batch size. Returns how many were deleted.
_PURGE = _NOW + """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now_ms - tonumber(ARGV[1]), 'LIMIT', 0, tonumber(ARGV[3]))
for _, id in ipairs(ids) do redis.call('DEL', ARGV[2] .. id) end
if #ids > 0 then redis.call('ZREM', KEYS[1], unpack(ids)) end
return #ids
"""
_PURGE_BATCH = 500
# KEYS: job. A script rather than HGETALL, so the answer is the same flat list as the others'.
_GET = "return redis.call('HGETALL', KEYS[1])"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _pairs(value: Any) -> tuple[tuple[str, str], ...]:
    return tuple((str(k), str(v)) for k, v in orjson.loads(value or b"[]"))


def _job(flat: list[Any]) -> Job:
    fields = {_text(flat[i]): flat[i + 1] for i in range(0, len(flat), 2)}
    result = None
    if fields.get("result_status") is not None:
        result = JobResult(int(fields["result_status"]), _pairs(fields.get("result_headers")),
                           bytes(fields.get("result_body") or b""))
    callback = _text(fields.get("callback_url") or b"") or None
    error = fields.get("error")
    return Job(_text(fields["id"]), _text(fields["project"]), _text(fields["deployment"]),
               job_status(_text(fields["status"])),
               float(fields["created_at"]), float(fields["updated_at"]),
               JobRequest(_text(fields["method"]), _text(fields["path"]), _pairs(fields.get("headers")),
                          bytes(fields.get("body") or b"")),
               callback, int(fields["attempts"]), result, None if error is None else _text(error))


class RedisJobStore:
    def __init__(self, url: str, *, prefix: str = "pier:jobs", timeout_s: float = 5.0) -> None:
        # A dropped connection is retried twice, briefly: a submit should ride out a Redis failover blip.
        self._redis, self._errors = redis_client(url, timeout_s=timeout_s, retries=2)
        self.location = redis_location(url)
        tag = "{" + prefix + "}"
        self._job_prefix = f"{tag}:job:"
        self._queued, self._running, self._finished, self._seq = (
            f"{tag}:queued", f"{tag}:running", f"{tag}:finished", f"{tag}:seq")
        register = self._redis.register_script
        self._submit, self._claim, self._renew, self._finish_script, self._purge, self._get = (
            register(_SUBMIT), register(_CLAIM), register(_RENEW), register(_FINISH), register(_PURGE), register(_GET))

    async def _call(self, what: str, script: Any, keys: list[str], args: list[Any]) -> Any:
        try:
            return await script(keys=keys, args=args)
        except self._errors as exc:
            raise ServiceUnavailable(f"the job queue in Redis at {self.location} failed to {what}: "
                                     f"{type(exc).__name__}: {exc}") from exc

    async def submit(self, project: str, deployment: str, request: JobRequest, *,
                     callback_url: str | None = None) -> Job:
        job_id = new_job_id()
        now = float(await self._call("accept a job", self._submit, [self._job_prefix + job_id, self._queued, self._seq],
                                     [job_id, project, deployment, request.method, request.path,
                                      orjson.dumps(request.headers), request.body, callback_url or ""]))
        return Job(job_id, project, deployment, "queued", now, now, request, callback_url)

    async def claim(self, lease_s: float) -> Job | None:
        flat = await self._call("claim a job", self._claim, [self._queued, self._running],
                                [max(1, int(lease_s * 1000)), self._job_prefix])
        return _job(flat) if flat else None

    async def renew(self, job_id: str, lease_s: float) -> bool:
        renewed = await self._call("renew a lease", self._renew, [self._job_prefix + job_id, self._running],
                                   [job_id, max(1, int(lease_s * 1000))])
        return bool(renewed)

    async def _finish_job(self, job_id: str, status: str, fields: list[Any]) -> Job | None:
        flat = await self._call("store a job's outcome", self._finish_script,
                                [self._job_prefix + job_id, self._running, self._finished], [job_id, status, *fields])
        return _job(flat) if flat else None

    async def complete(self, job_id: str, result: JobResult) -> Job | None:
        return await self._finish_job(job_id, "succeeded", [
            "result_status", result.status, "result_headers", orjson.dumps(result.headers),
            "result_body", result.body])

    async def fail(self, job_id: str, error: str) -> Job | None:
        return await self._finish_job(job_id, "failed", ["error", error])

    async def get(self, job_id: str) -> Job | None:
        flat = await self._call("read a job", self._get, [self._job_prefix + job_id], [])
        return _job(flat) if flat else None

    async def purge(self, older_than_s: float) -> int:
        total = 0
        while True:
            deleted = int(await self._call("purge finished jobs", self._purge, [self._finished],
                                           [int(older_than_s * 1000), self._job_prefix, _PURGE_BATCH]))
            total += deleted
            if deleted < _PURGE_BATCH:
                return total

    async def aclose(self) -> None:
        await self._redis.aclose()
