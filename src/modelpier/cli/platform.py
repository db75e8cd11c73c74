"""``pier up``'s composition root: control plane, gateway, reconciler and local backend, one process.

Two uvicorn servers (API on ``control.port``, gateway on ``platform.gateway_port``) and the
reconcile loop share one event loop. The reconciler reads the plain SQL store; the API gets the
same store wrapped to wake the reconciler after each write; the gateway reads the routing table
the reconciler publishes into a shared cell. On SIGINT/SIGTERM the reconciler stops first, then the
servers; replicas keep running, and the next ``pier up`` adopts them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import uvicorn

from modelpier._lib.clock import SystemClock
from modelpier.backends.local.supervisor import LocalBackend
from modelpier.control.app import build_control_plane
from modelpier.control.deployments import DeploymentService
from modelpier.control.reconciler.actions import PlanPolicy
from modelpier.control.reconciler.loop import Reconciler
from modelpier.control.reconciler.notify import NotifyingStore
from modelpier.control.store import SqlDeploymentStore
from modelpier.errors import PierError, ServiceUnavailable
from modelpier.gateway.app import build_gateway
from modelpier.registry.service import Registry
from modelpier.settings import Settings
from modelpier.spec.deployment import ModelDeploymentSpec
from modelpier.spec.routing import RoutingTableCell

log = logging.getLogger("modelpier.platform")

EXAMPLE_PROJECT = "default"
EXAMPLE_DEPLOYMENT = "iris"


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signals to the platform, which stops things in order."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass(frozen=True, slots=True)
class PlatformUrls:
    api: str
    gateway: str


def example_spec(replicas: int = 1) -> ModelDeploymentSpec:
    return ModelDeploymentSpec.model_validate(
        {"predictors": [{"name": "main", "model": "iris:production", "replicas": replicas}]})


def deploy_example(service: DeploymentService, user: str) -> None:
    """Deploy ``iris:production`` as ``default/iris`` unless a deployment of that name exists."""
    service.store.ensure_project(EXAMPLE_PROJECT)
    try:
        service.get(EXAMPLE_PROJECT, EXAMPLE_DEPLOYMENT)
        return
    except PierError:
        pass
    service.apply(EXAMPLE_PROJECT, example_spec(), user, name=EXAMPLE_DEPLOYMENT)


async def run_platform(settings: Settings, registry: Registry, *, host: str, port: int,
                       on_ready: Callable[[PlatformUrls], None], with_example: bool = True) -> None:
    cfg = settings.platform
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per probe and proxied request otherwise
    urls = PlatformUrls(api=f"http://{host}:{port}", gateway=f"http://{cfg.gateway_host}:{cfg.gateway_port}")
    store = SqlDeploymentStore.open(settings.resolved_database_url)
    backend = LocalBackend(settings)
    table = RoutingTableCell()
    policy = PlanPolicy(backoff_initial_s=cfg.restart_backoff_s, backoff_max_s=cfg.restart_backoff_max_s,
                        degraded_after=cfg.degraded_after_crashes)
    reconciler = Reconciler(store, backend, SystemClock(), endpoint_base=urls.gateway, publish=table.set,
                            policy=policy, interval_s=cfg.reconcile_interval_s)
    api_store = NotifyingStore(store, reconciler.trigger)
    control = build_control_plane(settings, registry=registry, store=api_store, log_source=backend.logs)
    gateway = build_gateway(table.get)
    servers = [
        _Server(uvicorn.Config(control, host=host, port=port, log_level=settings.log_level, access_log=False)),
        _Server(uvicorn.Config(gateway, host=cfg.gateway_host, port=cfg.gateway_port,
                               log_level=settings.log_level, access_log=False)),
    ]
    loop = asyncio.get_running_loop()
    reconciling = asyncio.create_task(reconciler.run(), name="reconciler")
    serving = [asyncio.create_task(s.serve(), name=f"uvicorn {i}") for i, s in enumerate(servers)]

    async def shutdown() -> None:
        reconciler.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(reconciling, 10)
        for s in servers:
            s.should_exit = True

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, lambda: asyncio.ensure_future(shutdown()))
    try:
        while not all(s.started for s in servers):
            if any(t.done() for t in serving):
                raise ServiceUnavailable(f"could not start the platform: is port {port} (API) or "
                                         f"{cfg.gateway_port} (gateway) already in use?")
            await asyncio.sleep(0.05)
        if with_example:
            service = DeploymentService(api_store, registry)
            await asyncio.to_thread(deploy_example, service, settings.user)
        on_ready(urls)
        await asyncio.gather(*serving, return_exceptions=True)
    finally:
        await shutdown()
        for task in serving:
            with contextlib.suppress(BaseException):
                await task
        await backend.close()
        store.close()
