"""Composition root of the gateway: the parts of one gateway process, started and stopped together.

``build_gateway`` takes a table source — in its own process (``pier gateway``) a
``RoutingTableClient`` polling the control plane, in tests a ``StaticTable`` — and the optional
parts: the verifier of tokens, the reporter of traffic, the prediction cache, the job queue and the
prediction log. Never an import of the control plane.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from modelpier._lib.ids import fast_id
from modelpier.gateway.app import GatewayApp, SyncedTableSource
from modelpier.gateway.async_jobs import AsyncJobs
from modelpier.gateway.cache import open_cache
from modelpier.gateway.caching import CacheOnPath
from modelpier.gateway.dispatch import CacheAdapter, Dispatcher, Recorder
from modelpier.gateway.grpc_upstream import GrpcReplicaProxy
from modelpier.gateway.health import PassiveHealth
from modelpier.gateway.jobs import open_job_store
from modelpier.gateway.predlog import PredictionLogger
from modelpier.gateway.proxy import ReplicaProxy
from modelpier.gateway.recording import PredictionRecorder
from modelpier.gateway.reporter import TrafficReporter
from modelpier.gateway.stats import TrafficStats
from modelpier.gateway.table_client import RoutingTableClient
from modelpier.gateway.upstream import FastReplicaProxy
from modelpier.gateway.verifier import ControlPlaneVerifier, InvocationVerifier
from modelpier.settings import Settings

Service = tuple[Callable[[], Awaitable[None]], Callable[[], Awaitable[None]]]  # (start, stop)


@dataclass
class GatewayParts:
    """What runs beside the request path; each is optional."""

    verifier: InvocationVerifier | None = None
    reporter: Callable[[TrafficStats], TrafficReporter] | None = None
    cache: CacheAdapter | None = None
    recorder: Recorder | None = None
    jobs: Callable[[Dispatcher, SyncedTableSource], AsyncJobs] | None = None
    services: list[Service] = field(default_factory=list)  # run with the app's lifespan
    metrics_token: str | None = None  # gateway.metrics_token: None serves /metrics to anyone


async def _nothing() -> None:
    return None


def standard_parts(settings: Settings, control_url: str, token: str | None) -> GatewayParts:
    """What ``pier gateway`` runs: every part, configured from settings (``gateway.*``)."""
    cfg = settings.gateway
    redis_url = cfg.redis_url.get_secret_value() if cfg.redis_url else None
    cache = open_cache(redis_url, max_bytes=cfg.cache_max_bytes)
    logger = PredictionLogger(settings.home)

    def jobs(dispatcher: Dispatcher, tables: SyncedTableSource) -> AsyncJobs:
        return AsyncJobs(open_job_store(settings.home, redis_url), dispatcher, tables,
                         concurrency=cfg.job_concurrency, lease_s=cfg.job_lease_s, retention_s=cfg.job_retention_s)

    return GatewayParts(verifier=ControlPlaneVerifier(control_url, token, stale_limit_s=cfg.token_stale_limit_s),
                        reporter=lambda stats: TrafficReporter(stats, control_url, token),
                        cache=CacheOnPath(cache), recorder=PredictionRecorder(logger), jobs=jobs,
                        services=[(_nothing, cache.aclose), (_nothing, logger.aclose)],
                        metrics_token=cfg.metrics_token.get_secret_value() if cfg.metrics_token else None)


def build_gateway(tables: SyncedTableSource, parts: GatewayParts | None = None, *,
                  proxy: ReplicaProxy | None = None, rand: Callable[[], float] = random.random,
                  id_factory: Callable[[], str] = fast_id, health: PassiveHealth | None = None,
                  grpc_proxy: ReplicaProxy | None = None) -> GatewayApp:
    parts = parts or GatewayParts()
    proxy = proxy or FastReplicaProxy()
    # gRPC calls (grpc_proxy.py's ``start_grpc_gateway``) share this dispatcher; channels open on first use.
    grpc_proxy = grpc_proxy or GrpcReplicaProxy(tables.get)
    stats = TrafficStats()
    reporter = parts.reporter(stats) if parts.reporter is not None else None
    dispatcher = Dispatcher(tables, proxy, stats, health=health, rand=rand, cache=parts.cache,
                            record=parts.recorder, nudge=reporter.nudge if reporter is not None else lambda: None,
                            grpc_proxy=grpc_proxy)
    jobs = parts.jobs(dispatcher, tables) if parts.jobs is not None else None
    services = [*parts.services, *([(jobs.start, jobs.stop)] if jobs is not None else [])]
    tasks: list[asyncio.Task[None]] = []
    polling = tables if isinstance(tables, RoutingTableClient) else None

    def healthz() -> dict[str, Any]:
        body: dict[str, Any] = {}
        if polling is not None:
            body["routing"] = polling.describe()
        if reporter is not None:
            body["traffic"] = {"gateway": reporter.gateway_id, "reportsSent": reporter.sent}
        return body

    async def startup() -> None:
        if polling is not None:
            tasks.append(asyncio.create_task(polling.run(), name="routing table"))
        if reporter is not None:
            tasks.append(asyncio.create_task(reporter.run(), name="traffic reports"))
        for start, _ in services:
            await start()

    async def shutdown() -> None:
        for _, stop in reversed(services):
            with contextlib.suppress(Exception):
                await stop()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if reporter is not None:
            with contextlib.suppress(Exception):
                await reporter.send_once()  # the last counts
            await reporter.aclose()
        if polling is not None:
            await polling.aclose()
        await proxy.aclose()
        await grpc_proxy.aclose()
        if parts.verifier is not None:
            await parts.verifier.aclose()

    return GatewayApp(tables, dispatcher, verifier=parts.verifier, jobs=jobs, id_factory=id_factory,
                      health=healthz, on_startup=startup, on_shutdown=shutdown, metrics_token=parts.metrics_token)
