"""The prediction cache on the request path: keys from the call, answers to and from ``PredictionCache``.

Answers are cached per deployment (the namespace ``project/deployment``, with the deployment's own
``cache.maxEntries`` and ``cache.ttlSeconds``) and per model version: the key hashes the version the
predictor serves, so a rollout never answers from the previous version's entries.
"""

from __future__ import annotations

from modelpier.gateway.cache import CachedAnswer, PredictionCache, cache_key, cacheable_answer
from modelpier.gateway.dispatch import Call
from modelpier.gateway.proxy import Answer
from modelpier.spec.routing import DeploymentRoute


def _namespace(route: DeploymentRoute) -> str:
    return f"{route.project}/{route.deployment}"


class CacheOnPath:
    def __init__(self, cache: PredictionCache) -> None:
        self.cache = cache

    def key(self, model_version: str, call: Call) -> str:
        return cache_key(model_version, call.method, call.path, call.header("content-type") or "", call.body)

    async def get(self, route: DeploymentRoute, key: str) -> Answer | None:
        hit = await self.cache.get(_namespace(route), key)
        if hit is None:
            return None
        return Answer(hit.status, [(k.encode("latin-1"), v.encode("latin-1")) for k, v in hit.headers], hit.body)

    async def put(self, route: DeploymentRoute, key: str, answer: Answer) -> None:
        policy = route.policy
        if policy.cache_ttl_s is None:
            return
        kept: CachedAnswer | None = cacheable_answer(
            answer.status, [(k.decode("latin-1"), v.decode("latin-1")) for k, v in answer.headers], answer.body)
        if kept is not None:
            await self.cache.put(_namespace(route), key, kept, ttl_s=policy.cache_ttl_s,
                                 max_entries=policy.cache_max_entries)
