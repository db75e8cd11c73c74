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

from modelpier._lib.ids import new_id
from modelpier.gateway.app import GatewayApp, Jobs, SyncedTableSource
from modelpier.gateway.dispatch import CacheAdapter, Dispatcher, Recorder
from modelpier.gateway.health import PassiveHealth
from modelpier.gateway.proxy import ReplicaProxy
from modelpier.gateway.reporter import TrafficReporter
from modelpier.gateway.stats import TrafficStats
from modelpier.gateway.table_client import RoutingTableClient
from modelpier.gateway.upstream import FastReplicaProxy
from modelpier.gateway.verifier import InvocationVerifier


@dataclass
class GatewayParts:
    """What runs beside the request path; each is optional."""

    verifier: InvocationVerifier | None = None
    reporter: Callable[[TrafficStats], TrafficReporter] | None = None
    cache: CacheAdapter | None = None
    recorder: Recorder | None = None
    jobs: Callable[[Dispatcher, SyncedTableSource], Jobs] | None = None
    # (start, stop) pairs run with the app's lifespan, e.g. a job runner
    services: list[tuple[Callable[[], Awaitable[None]], Callable[[], Awaitable[None]]]] = field(default_factory=list)


def build_gateway(tables: SyncedTableSource, parts: GatewayParts | None = None, *,
                  proxy: ReplicaProxy | None = None, rand: Callable[[], float] = random.random,
                  id_factory: Callable[[], str] = lambda: new_id(8), health: PassiveHealth | None = None
                  ) -> GatewayApp:
    parts = parts or GatewayParts()
    proxy = proxy or FastReplicaProxy()
    stats = TrafficStats()
    reporter = parts.reporter(stats) if parts.reporter is not None else None
    dispatcher = Dispatcher(tables, proxy, stats, health=health, rand=rand, cache=parts.cache,
                            record=parts.recorder, nudge=reporter.nudge if reporter is not None else lambda: None)
    jobs = parts.jobs(dispatcher, tables) if parts.jobs is not None else None
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
        for start, _ in parts.services:
            await start()

    async def shutdown() -> None:
        for _, stop in reversed(parts.services):
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
        if parts.verifier is not None:
            await parts.verifier.aclose()

    return GatewayApp(tables, dispatcher, verifier=parts.verifier, jobs=jobs, id_factory=id_factory,
                      health=healthz, on_startup=startup, on_shutdown=shutdown)
