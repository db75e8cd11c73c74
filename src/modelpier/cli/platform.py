"""``pier up``'s composition root: control plane, reconciler and local backend in this process, the
gateway in its own.

The API server (on ``control.port``) and the reconcile loop share one event loop. The reconciler
reads the plain SQL store; the API gets the same store wrapped to wake the reconciler after each
write, and serves the routing table the reconciler publishes at ``GET /api/v1/routing``. The
gateway (``pier gateway``, on ``platform.gateway_port``) is a detached child that polls that route,
so it keeps answering while this process restarts; it is adopted by the next ``pier up`` and
restarted here if it dies. On SIGINT/SIGTERM the reconciler stops first, then the API server;
replicas and the gateway keep running (``pier down`` stops them).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import uvicorn
from pydantic import SecretStr

from modelpier._lib.clock import SystemClock
from modelpier.auth.quota import Limits
from modelpier.backends.local.supervisor import LocalBackend
from modelpier.cli.daemons import PLATFORM_FILE, GatewayProcess, ProcessRecord, load_record, own_argv, save_record
from modelpier.control.app import build_auth, build_control_plane, check_protected
from modelpier.control.deployments import DeploymentService
from modelpier.control.reconciler.actions import PlanPolicy
from modelpier.control.reconciler.autoscaling import Autoscaler
from modelpier.control.reconciler.loop import Reconciler
from modelpier.control.reconciler.notify import NotifyingStore
from modelpier.control.replica_history import ReplicaHistory
from modelpier.control.routes.routing import RoutingFeed, routing_router
from modelpier.control.store import SqlDeploymentStore
from modelpier.control.traffic import TrafficStore
from modelpier.dashboard import mount_dashboard
from modelpier.errors import PierError, ServiceUnavailable
from modelpier.registry.service import Registry
from modelpier.settings import Settings
from modelpier.spec.deployment import ModelDeploymentSpec

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
    gateway_note: str = ""  # adopted or started, with the pid


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


async def _wait_for_gateway(gateway: GatewayProcess, timeout_s: float = 30.0) -> None:
    """Until the gateway answers ``/healthz``; ``ServiceUnavailable`` with its log when it cannot start."""
    import httpx

    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(timeout=1.0, trust_env=False) as client:
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(f"{gateway.url}/healthz")).status_code == 200:
                    return
            if not gateway.alive():
                break
            await asyncio.sleep(0.05)
    tail = "\n".join(gateway.log_tail(10))
    raise ServiceUnavailable(f"the gateway did not start on {gateway.url} (is port {gateway.port} in use?); "
                             f"its log ends:\n{tail}")


async def _watch_gateway(gateway: GatewayProcess, interval_s: float = 1.0) -> None:
    while True:
        await asyncio.sleep(interval_s)
        try:
            await asyncio.to_thread(gateway.check)
        except Exception:
            log.exception("checking the gateway failed; trying again in %gs", interval_s)


@dataclass(slots=True)
class _Parts:
    store: SqlDeploymentStore
    backend: LocalBackend
    reconciler: Reconciler
    api_store: NotifyingStore
    feed: RoutingFeed
    server: _Server


def _build(settings: Settings, registry: Registry, host: str, port: int, gateway_url: str,
           announce_admin_token: Callable[[str], None]) -> _Parts:
    cfg = settings.platform
    store = SqlDeploymentStore.open(settings.resolved_database_url)
    backend = LocalBackend(settings)
    auth = build_auth(settings)
    feed = RoutingFeed(auth.epoch)  # the table carries the auth epoch: gateways flush token checks on it
    policy = PlanPolicy(backoff_initial_s=cfg.restart_backoff_s, backoff_max_s=cfg.restart_backoff_max_s,
                        degraded_after=cfg.degraded_after_crashes, liveness_failures=cfg.liveness_failures,
                        liveness_period_s=cfg.liveness_period_s)
    clock = SystemClock()
    # The gateways' traffic reports feed the autoscaler (issue 5): one store, shared by API and reconciler.
    traffic = TrafficStore(clock)
    autoscaler = Autoscaler(traffic, lambda project: Limits(**auth.store.limits(project)))
    replicas = ReplicaHistory(clock)  # the charts' ready/desired replicas over time, from each pass's status
    reconciler = Reconciler(store, backend, clock, endpoint_base=gateway_url, publish=feed.publish,
                            policy=policy, interval_s=cfg.reconcile_interval_s, autoscaler=autoscaler,
                            on_status=replicas.record_status)
    api_store = NotifyingStore(store, reconciler.trigger)
    control = build_control_plane(settings, registry=registry, store=api_store, log_source=backend.logs,
                                  announce_admin_token=announce_admin_token, auth=auth, traffic=traffic,
                                  on_traffic_waiting=reconciler.trigger, autoscaler=autoscaler, clock=clock,
                                  replica_history=replicas)
    control.include_router(routing_router(feed), prefix="/api/v1")
    mount_dashboard(control, settings, gateway_url=gateway_url)
    check_protected(control)
    server = _Server(uvicorn.Config(control, host=host, port=port, log_level=settings.log_level, access_log=False))
    return _Parts(store, backend, reconciler, api_store, feed, server)


def _secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None


async def run_platform(settings: Settings, registry: Registry, *, host: str, port: int,
                       on_ready: Callable[[PlatformUrls], None], with_example: bool = True,
                       announce_admin_token: Callable[[str], None] = lambda _: None) -> None:
    """Run until stopped. On a first start the admin token minted is passed to ``announce_admin_token``
    (``pier up`` prints it and stores it for the CLI); the gateway polls the routing table with it."""
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per probe otherwise
    api_url = f"http://{host}:{port}"
    gateway = GatewayProcess(settings, api_url)
    minted: list[str] = []

    def announce(token: str) -> None:
        minted.append(token)
        announce_admin_token(token)

    parts = _build(settings, registry, host, port, gateway.url, announce)
    gateway.token = minted[0] if minted else _secret(settings.admin_token) or _secret(settings.token)
    reconciler, server = parts.reconciler, parts.server
    loop = asyncio.get_running_loop()
    reconciling = asyncio.create_task(reconciler.run(), name="reconciler")
    serving = asyncio.create_task(server.serve(), name="uvicorn")
    watching: asyncio.Task[None] | None = None
    record_path = settings.home / PLATFORM_FILE

    async def shutdown() -> None:
        parts.feed.close()  # releases the gateways' held routing polls, so the server need not wait on them
        if watching is not None:
            watching.cancel()
        reconciler.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(reconciling, 10)
        server.should_exit = True

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, lambda: asyncio.ensure_future(shutdown()))
    try:
        while not server.started:
            if serving.done():
                raise ServiceUnavailable(f"could not start the platform: is port {port} (API) already in use?")
            await asyncio.sleep(0.05)
        save_record(record_path, ProcessRecord(os.getpid(), own_argv(), api_url, time.time()))
        note = await asyncio.to_thread(gateway.ensure)
        await _wait_for_gateway(gateway)
        watching = asyncio.create_task(_watch_gateway(gateway), name="gateway watch")
        if with_example:
            service = DeploymentService(parts.api_store, registry)
            await asyncio.to_thread(deploy_example, service, settings.user)
        on_ready(PlatformUrls(api=api_url, gateway=gateway.url, gateway_note=note))
        await asyncio.gather(serving, return_exceptions=True)
    finally:
        await shutdown()
        await asyncio.gather(serving, return_exceptions=True)
        await parts.backend.close()
        parts.store.close()
        mine = load_record(record_path)
        if mine is not None and mine.pid == os.getpid():
            record_path.unlink(missing_ok=True)
