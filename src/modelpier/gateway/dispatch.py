"""One request through a deployment: predictor, limits, cache, replica, retry, shadow, log, counters.

The transport (``app.py``) has resolved the deployment, checked the caller and read the body; the
asynchronous job runner calls the same ``serve`` for accepted jobs. Every outcome is an ``Answer``
(never an exception): the gateway's own refusals use the platform's error envelope and status codes
(503 + Retry-After when no replica can take the request or ``limits.maxInFlight`` is reached, 504
when the deployment's timeout passes, 502 when a replica's answer is unusable).

Order of work, and why: the predictor is chosen first (routes, sticky key, weights) because the
cache key and the prediction log need its model version; the in-flight limit is checked before any
waiting (a scaled-to-zero predictor's cold start) so an overloaded deployment refuses at once; the
shadow copy starts alongside the primary so it sees the same moment's traffic, but nothing the
shadow does is awaited on the caller's path.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

import orjson

from modelpier.errors import DeadlineExceeded, Overloaded, PierError, RemoteError, ServiceUnavailable, http_status
from modelpier.gateway.compare import compare_answers
from modelpier.gateway.health import PassiveHealth
from modelpier.gateway.proxy import Answer, AnswerTooLarge, Headers, ReplicaProxy, Retryable, UpstreamTimeout
from modelpier.gateway.routing import choose_predictor, mirror_to, pick_replica
from modelpier.gateway.stats import PredictorStats, TrafficStats
from modelpier.spec.routing import DeploymentRoute, PredictorRoute, ReplicaEndpoint, RoutingTable

log = logging.getLogger("modelpier.gateway")

_ATTEMPTS = 2  # the first replica, and one other when the first failed before answering
JSON = b"application/json"


class TableSource(Protocol):
    def get(self) -> RoutingTable: ...

    async def wait_change(self, timeout_s: float) -> None: ...


@dataclass(frozen=True, slots=True)
class Call:
    method: str
    path: str  # what follows /{project}/{deployment}, with the query: "/v2/models/iris/infer?x=1"
    headers: Headers  # as received (ASGI: lower-cased names), the caller's token already removed
    body: bytes
    request_id: str
    # "grpc": ``path`` is a V2 gRPC method ("/inference.GRPCInferenceService/ModelInfer"), sent with the
    # dispatcher's ``grpc_proxy`` to replicas that have a ``grpc_url``; ``body`` is the protobuf message.
    protocol: str = "http"
    prediction: bool = True  # cache, shadow and prediction log apply (gRPC: ModelInfer only)

    def header(self, name: str) -> str | None:
        key = name.encode("latin-1")
        return next((v.decode("latin-1") for k, v in self.headers if k == key), None)


@dataclass(frozen=True, slots=True)
class Served:
    answer: Answer
    predictor: PredictorRoute | None = None
    replica: ReplicaEndpoint | None = None
    cache: str | None = None  # "hit" / "miss" when the deployment caches
    latency_s: float = 0.0
    shadowed: bool = False  # a copy went to the shadow predictor


@dataclass(frozen=True, slots=True)
class ShadowResult:
    predictor: PredictorRoute
    replica: ReplicaEndpoint | None
    answer: Answer | None  # None: it failed before answering
    latency_s: float


def error_answer(error: PierError, *, retry_after: int | None = None) -> Answer:
    headers: Headers = [(b"content-type", JSON)]
    if retry_after is not None:
        headers.append((b"retry-after", str(retry_after).encode()))
    return Answer(http_status(error), headers, orjson.dumps(error.to_dict()))


def model_version_of(predictor: PredictorRoute) -> str:
    """The version a predictor serves ("iris:3"); its name when unknown (a bundle, an old replica)."""
    versions = {r.model_version for r in predictor.replicas if r.model_version}
    return min(versions) if len(versions) == 1 else predictor.name + "@" + ",".join(sorted(versions))


class Dispatcher:
    def __init__(self, tables: TableSource, proxy: ReplicaProxy, stats: TrafficStats, *,
                 health: PassiveHealth | None = None, rand: Callable[[], float] = random.random,
                 clock: Callable[[], float] = time.perf_counter, nudge: Callable[[], None] = lambda: None,
                 cache: CacheAdapter | None = None, record: Recorder | None = None,
                 grpc_proxy: ReplicaProxy | None = None) -> None:
        self.tables, self.proxy, self.stats = tables, proxy, stats
        self.grpc_proxy = grpc_proxy  # for ``Call.protocol == "grpc"``; None: no gRPC calls
        self.health = health or PassiveHealth()
        self.rand, self.clock, self.nudge = rand, clock, nudge
        self.cache, self.record = cache, record
        self.outstanding: Counter[str] = Counter()  # per replica id, for least-outstanding balancing
        self.in_flight: Counter[tuple[str, str]] = Counter()  # per deployment, for limits.maxInFlight
        self._background: set[asyncio.Task[None]] = set()

    # -- the request path -------------------------------------------------------------------------
    async def serve(self, route: DeploymentRoute, call: Call) -> Served:
        started = self.clock()
        deadline = started + route.timeout_s
        predictor, _ = choose_predictor(route, call.header, self.rand())
        if predictor is None:
            return Served(error_answer(ServiceUnavailable(
                f"deployment {route.project}/{route.deployment} has no ready replica yet",
                details={"revision": route.revision}), retry_after=1))
        stats = self.stats.predictor(route.project, route.deployment, predictor.name)
        key = (route.project, route.deployment)
        limit = route.policy.max_in_flight
        if limit is not None and self.in_flight[key] >= limit:
            stats.rejected += 1
            answer = error_answer(Overloaded(
                f"deployment {route.project}/{route.deployment} has {limit} requests in flight (limits.maxInFlight);"
                " retry shortly", details={"maxInFlight": limit}), retry_after=1)
            stats.observe(answer.status, self.clock() - started)
            return Served(answer, predictor)
        self.in_flight[key] += 1
        stats.in_flight += 1
        try:
            served = await self._serve(route, predictor, stats, call, started=started, deadline=deadline)
        finally:
            stats.in_flight -= 1
            self.in_flight[key] -= 1
        stats.observe(served.answer.status, served.latency_s)
        # With ``shadow.log`` the shadow task writes the pair once both answers are in.
        if self.record is not None and not (served.shadowed and route.policy.shadow_log):
            self.record.record(route, call, served, None)
        return served

    async def _serve(self, route: DeploymentRoute, predictor: PredictorRoute, stats: PredictorStats, call: Call, *,
                     started: float, deadline: float) -> Served:
        if not predictor.replicas:
            woken = await self._wait_for_replicas(route, predictor, stats, deadline)
            if isinstance(woken, Answer):
                return Served(woken, predictor, latency_s=self.clock() - started)
            predictor = woken
        cache_state: str | None = None
        cache_key = ""
        if (self.cache is not None and route.policy.cache_ttl_s is not None and call.method == "POST"
                and call.prediction):
            cache_key = self.cache.key(model_version_of(predictor), call)
            hit = await self.cache.get(route, cache_key)
            if hit is not None:
                stats.cache_hits += 1
                return Served(hit, predictor, cache="hit", latency_s=self.clock() - started)
            cache_state = "miss"
        shadow = mirror_to(route, predictor, self.rand()) if call.prediction else None
        primary: asyncio.Future[Served | None] | None = None
        if shadow is not None:
            primary = asyncio.get_running_loop().create_future()
            self._spawn(self._shadow(route, shadow, call, primary, deadline))
        try:
            answer, replica = await self._forward(route, predictor, stats, call, deadline)
        except BaseException:
            if primary is not None and not primary.done():
                primary.set_result(None)
            raise
        served = Served(answer, predictor, replica, cache_state, self.clock() - started, shadowed=primary is not None)
        if primary is not None:
            primary.set_result(served)
        if cache_state == "miss" and answer.status == 200 and self.cache is not None:
            self._spawn(self.cache.put(route, cache_key, answer))
        return served

    async def _forward(self, route: DeploymentRoute, predictor: PredictorRoute, stats: PredictorStats, call: Call,
                       deadline: float) -> tuple[Answer, ReplicaEndpoint | None]:
        """Least-outstanding replica; on a connection failure before any answer, once more on another."""
        headers = [*call.headers, (b"x-request-id", call.request_id.encode("latin-1")),
                   (b"x-forwarded-prefix", f"/{route.project}/{route.deployment}".encode())]
        replicas = self._replicas(call, predictor)
        if predictor.replicas and not replicas:
            return error_answer(ServiceUnavailable(
                f"no replica of {route.project}/{route.deployment} (predictor {predictor.name}) serves gRPC: they were "
                "started without a gRPC port; restart them (a new revision) to add one"), retry_after=1), None
        tried = list(self.health.ejected(r.replica_id for r in replicas))
        failure = ""
        delivered = False  # a replica may have received the request (and run the model)
        for attempt in range(_ATTEMPTS):
            replica = pick_replica(replicas, self.outstanding, self.rand(), exclude=tried)
            if replica is None:
                break
            if attempt:
                stats.retries += 1
            tried.append(replica.replica_id)
            remaining = deadline - self.clock()
            if remaining <= 0:
                break
            self.outstanding[replica.replica_id] += 1
            stats.replicas[replica.replica_id] = stats.replicas.get(replica.replica_id, 0) + 1
            try:
                answer = await self._send(call, replica, headers, remaining)
            except Retryable as exc:
                failure = f"replica {replica.replica_id} failed before answering ({exc})"
                delivered = delivered or exc.delivered
                if self.health.failed(replica.replica_id):
                    self.stats.ejections += 1
                    log.warning("replica %s of %s/%s ejected after repeated connection failures", replica.replica_id,
                                route.project, route.deployment)
                log.info("%s; request %s", failure, call.request_id)
                continue
            except UpstreamTimeout as exc:
                return error_answer(DeadlineExceeded(
                    f"replica {replica.replica_id} of {route.project}/{route.deployment}: {exc} "
                    f"(timeouts.requestSeconds={route.timeout_s:g})")), replica
            except AnswerTooLarge as exc:
                return error_answer(RemoteError(f"replica {replica.replica_id}: {exc}")), replica
            finally:
                self.outstanding[replica.replica_id] -= 1
                stats.replicas[replica.replica_id] -= 1
            self.health.succeeded(replica.replica_id)
            return answer, replica
        if self.clock() >= deadline:
            return error_answer(DeadlineExceeded(f"{route.project}/{route.deployment}: no answer within "
                                                 f"timeouts.requestSeconds={route.timeout_s:g}")), None
        # Retry-After invites the caller to send the request again: only when no replica can have run it.
        return error_answer(ServiceUnavailable(
            f"no replica of {route.project}/{route.deployment} answered: {failure or 'none is ready'}"),
            retry_after=None if delivered else 1), None

    async def _wait_for_replicas(self, route: DeploymentRoute, predictor: PredictorRoute, stats: PredictorStats,
                                 deadline: float) -> PredictorRoute | Answer:
        """Hold the request while a scaled-to-zero predictor starts (a cold start), up to the deadline."""
        stats.waiting += 1
        self.nudge()  # the control plane's autoscaler acts on ``waiting`` at once
        try:
            while (remaining := deadline - self.clock()) > 0:
                await self.tables.wait_change(remaining)
                current = self.tables.get().get(route.project, route.deployment)
                found = next((p for p in current.predictors if p.name == predictor.name), None) if current else None
                if found is None:
                    return error_answer(ServiceUnavailable(
                        f"predictor {predictor.name} of {route.project}/{route.deployment} is gone"), retry_after=1)
                if found.replicas:
                    return found
            return error_answer(DeadlineExceeded(
                f"predictor {predictor.name} of {route.project}/{route.deployment} is scaled to zero and did not "
                f"start within timeouts.requestSeconds={route.timeout_s:g}"))
        finally:
            stats.waiting -= 1

    # -- shadow -----------------------------------------------------------------------------------
    async def _shadow(self, route: DeploymentRoute, shadow: PredictorRoute, call: Call,
                      primary: Awaitable[Served | None], deadline: float) -> None:
        """Send the copy, then compare with the primary's answer; nothing here reaches the caller."""
        counters = self.stats.shadow(route.project, route.deployment, shadow.name)
        counters.mirrored += 1
        replica = pick_replica(self._replicas(call, shadow), self.outstanding, self.rand())
        started = self.clock()
        answer: Answer | None = None
        if replica is not None:
            self.outstanding[replica.replica_id] += 1
            try:
                answer = await self._send(call, replica,
                                          [*call.headers, (b"x-request-id", call.request_id.encode("latin-1")),
                                           (b"x-pier-shadow", b"1")], max(deadline - self.clock(), 0.001))
            except (Retryable, UpstreamTimeout, AnswerTooLarge) as exc:
                log.info("shadow %s failed for request %s: %s", shadow.name, call.request_id, exc)
            finally:
                self.outstanding[replica.replica_id] -= 1
        latency = self.clock() - started
        if answer is None or answer.status != 200:
            counters.failed += 1
        served = await primary
        theirs = served.answer if served is not None else None
        if answer is not None and answer.status == 200 and theirs is not None and theirs.status == 200:
            comparison = compare_answers(theirs.body, answer.body, protocol=call.protocol)
            if comparison is not None:
                counters.compared += 1
                if comparison.kind == "class":
                    counters.agreed += comparison.agreed
                else:
                    counters.numeric += 1
                    counters.abs_error_sum += comparison.abs_error
        if self.record is not None and served is not None and route.policy.shadow_log:
            self.record.record(route, call, served, ShadowResult(shadow, replica, answer, latency))

    # -- protocols --------------------------------------------------------------------------------
    def _replicas(self, call: Call, predictor: PredictorRoute) -> tuple[ReplicaEndpoint, ...]:
        """The replicas that can take this call: for gRPC, those with a gRPC address."""
        if call.protocol != "grpc":
            return predictor.replicas
        return tuple(r for r in predictor.replicas if r.grpc_url) if self.grpc_proxy is not None else ()

    def _send(self, call: Call, replica: ReplicaEndpoint, headers: Headers, timeout_s: float) -> Awaitable[Answer]:
        if call.protocol == "grpc" and self.grpc_proxy is not None and replica.grpc_url:
            return self.grpc_proxy.send(call.method, replica.grpc_url + call.path, headers, call.body,
                                        timeout_s=timeout_s)
        return self.proxy.send(call.method, replica.url + call.path, headers, call.body, timeout_s=timeout_s)

    # -- housekeeping -----------------------------------------------------------------------------
    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background work failed: %s", task.exception(), exc_info=task.exception())

    async def drain(self, timeout_s: float = 5.0) -> None:
        """Let shadows and cache writes finish (on shutdown)."""
        if self._background:
            await asyncio.wait(list(self._background), timeout=timeout_s)


class CacheAdapter(Protocol):
    """Keys and stores answers per deployment; see ``gateway.caching``."""

    def key(self, model_version: str, call: Call) -> str: ...

    async def get(self, route: DeploymentRoute, key: str) -> Answer | None: ...

    async def put(self, route: DeploymentRoute, key: str, answer: Answer) -> None: ...


class Recorder(Protocol):
    """Writes sampled requests to the prediction log; see ``gateway.recording``."""

    def record(self, route: DeploymentRoute, call: Call, served: Served, shadow: ShadowResult | None) -> None: ...
